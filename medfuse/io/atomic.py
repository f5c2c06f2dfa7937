"""Atomic output folders: write everything into a temporary sibling, then rename into place.

A failed run leaves nothing behind; an existing non-empty output is never replaced unless
``overwrite`` is set (then the old folder is swapped out and removed only after the new one is in
place). The temporary folder holds the :data:`~medfuse.io.guard.MARKER` from the start, so the
output is recognisably medfuse's and a temporary folder a killed run left can be cleared safely;
the placement rules (not an input, not the current folder, not a root) are
:func:`medfuse.io.guard.check_output_place`'s.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from medfuse.errors import OutputError
from medfuse.io.guard import (
    check_output_place,
    check_replace,
    clear_stale_temps,
    os_reason,
    write_marker,
)
from medfuse.io.interrupts import critical

__all__ = ["AtomicOutputDir", "check_output_dir"]


def check_output_dir(path: str | os.PathLike, overwrite: bool = False,
                     inputs: tuple[str | os.PathLike, ...] = (), what: str = "input") -> Path:
    """Fail early (before any heavy work) if ``path`` cannot become the output folder.

    Args:
        path: the output folder.
        overwrite: an existing non-empty folder may be replaced (only a medfuse output).
        inputs: what the command reads; the output must not be, contain or sit inside any.
        what: how the message calls the inputs.

    Raises:
        OutputError: ``path`` is a file, is a non-empty folder and ``overwrite`` is False (or it is
            not a medfuse output), its parent cannot be created or written, or the guard of
            :func:`~medfuse.io.guard.check_output_place` refuses the place.
    """
    out = Path(path)
    check_output_place(out, inputs, what)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"{out}: output folder exists and is not empty (use --overwrite)")
    if overwrite:
        check_replace(out)
    parent = out.absolute().parent
    probe = parent
    while not probe.exists():  # the nearest existing ancestor must be a writable folder
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{out}: cannot create the output folder ({probe} is not a folder)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: cannot write the output folder ({probe} is not writable)")
    return out


class AtomicOutputDir:
    """Context manager yielding a temporary folder that becomes ``path`` on success.

    Example::

        with AtomicOutputDir("out", overwrite=False) as tmp:
            (tmp / "run.json").write_text("{}")
        # out/run.json now exists; on an exception nothing is left behind

    Args:
        path: the final output folder.
        overwrite: replace an existing non-empty folder (only one medfuse marked as its own).
        inputs: what the command reads (see :func:`check_output_dir`).
        command: recorded in the marker file.

    Raises:
        OutputError: on entry, the folder cannot be used; on exit, any error of the operating
            system while writing in the temporary folder (disk full, quota, read-only) becomes
            one line (the temporary folder is removed).
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False,
                 inputs: tuple[str | os.PathLike, ...] = (), command: str = "medfuse") -> None:
        self.path = check_output_dir(path, overwrite, inputs)
        self.overwrite = overwrite
        self.command = command
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        parent = self.path.absolute().parent
        # a SIGTERM here waits (medfuse.io.interrupts): raised at once, it would leave the new
        # temporary folder behind, since __exit__ does not run when __enter__ fails
        with critical(on_exit=self._drop_tmp):
            try:
                parent.mkdir(parents=True, exist_ok=True)
                clear_stale_temps(self.path)
                self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.tmp-", dir=parent))
                write_marker(self.tmp, self.command)
            except OSError as exc:
                self._drop_tmp()
                raise OutputError(
                    f"{self.path}: cannot write the output folder ({exc.strerror})"
                ) from None
        assert self.tmp is not None
        return self.tmp

    def _drop_tmp(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # a SIGTERM while removing or moving the folder waits until that is done (every failure
        # of _finish removes the temporary folder itself); after a complete move it stays pending
        # (medfuse.io.interrupts.checkpoint): the output is whole
        with critical(raise_pending=exc_type is not None):
            self._finish(exc_type, exc)

    def _finish(self, exc_type: type[BaseException] | None, exc: BaseException | None) -> None:
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if isinstance(exc, OSError) and _is_write_error(exc, self.tmp):
                root = os_reason(exc)
                why = root.strerror if root is not None else str(exc).splitlines()[0]
                raise OutputError(f"{self.path}: cannot write the output ({why}); "
                                  "nothing was written") from None
            if isinstance(exc, OutputError) and str(self.tmp) in str(exc):  # name the real place
                raise OutputError(str(exc).replace(str(self.tmp), str(self.path))) from None
            return
        try:
            self._commit()
        except OutputError:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        except OSError as err:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise OutputError(
                f"{self.path}: cannot move the results into place ({err.strerror})"
            ) from None

    def _commit(self) -> None:
        assert self.tmp is not None
        out = self.path
        old: Path | None = None
        if out.exists():
            if any(out.iterdir()):
                if not self.overwrite:  # appeared while we worked
                    raise OSError(17, "output folder appeared and is not empty")
                check_replace(out)  # never replace a folder that is not medfuse's
                old = out.with_name(f".{out.name}.old-{os.getpid()}")
                out.rename(old)
            else:
                out.rmdir()
        os.rename(self.tmp, out)
        os.chmod(out, 0o777 & ~_umask())
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


def _is_write_error(exc: OSError, tmp: Path) -> bool:
    """True for an error of writing the output (full disk, quota, ...; or a path in ``tmp``)."""
    root = os_reason(exc)
    if root is not None and root.errno in _WRITE_ERRNOS:
        return True
    names = [str(n) for n in (exc.filename, exc.filename2) if n]
    return any(n.startswith(str(tmp)) for n in names)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
