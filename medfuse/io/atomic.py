"""Atomic output folders: write everything into a temporary sibling, then rename into place.

A failed run leaves nothing behind; an existing non-empty output is never replaced unless
``overwrite`` is set (then the old folder is swapped out and removed only after the new one is in
place).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from medfuse.errors import OutputError

__all__ = ["AtomicOutputDir", "check_output_dir"]


def check_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Fail early (before any heavy work) if ``path`` cannot become the output folder.

    Raises:
        OutputError: ``path`` is a file, is a non-empty folder and ``overwrite`` is False, or its
            parent cannot be created or written.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(f"{out}: output folder exists and is not empty (use --overwrite)")
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
        overwrite: replace an existing non-empty folder.
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        self.path = check_output_dir(path, overwrite)
        self.overwrite = overwrite
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        parent = self.path.absolute().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.tmp-", dir=parent))
        except OSError as exc:
            raise OutputError(
                f"{self.path}: cannot write the output folder ({exc.strerror})"
            ) from None
        return self.tmp

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:
            self._commit()
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
                old = out.with_name(f".{out.name}.old-{os.getpid()}")
                out.rename(old)
            else:
                out.rmdir()
        os.rename(self.tmp, out)
        os.chmod(out, 0o777 & ~_umask())
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
