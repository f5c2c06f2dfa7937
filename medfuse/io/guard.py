"""The output guard: where medfuse may write and what it may delete.

Every command that writes or deletes (``fuse`` incl. folder mode, ``batch``, ``pull``,
``export-bundle``, ``train``) checks its output folder with :func:`check_output_place` before any
work. The folder, resolved with symlinks followed, must not

- be, contain, or sit inside any input (or the manifest of ``batch``);
- be the current folder or one of its parents;
- be a filesystem root (``/``) or the home folder.

medfuse marks every output folder it creates with a :data:`MARKER` file (a small JSON: tool,
version, command, creation time; no patient data). An existing non-empty folder is only ever
replaced (``--overwrite``, ``batch --force``) or cleared of stale temporaries when it is
medfuse's own (:func:`is_medfuse_output`). Outputs of medfuse versions without the marker are
recognised by their ``run.json`` holding ``versions.medfuse`` (bundles: ``configs/metadata.json``
requiring a medfuse version).

Paths built from remote answers (PACS UIDs) are checked with :func:`is_uid` before they touch
the disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from medfuse.errors import OutputError

__all__ = ["MARKER", "check_output_place", "check_replace", "write_marker",
           "is_medfuse_output", "is_uid", "clear_stale_temps", "inside",
           "os_reason"]

#: name of the marker file inside every output folder medfuse creates.
MARKER = ".medfuse-output"
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def os_reason(exc: BaseException) -> OSError | None:
    """The OSError with an errno behind ``exc`` (pydicom re-raises it wrapped), else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def is_uid(value: str) -> bool:
    """True when ``value`` is a DICOM UID: digits and dots, <= 64 characters, no empty part."""
    return isinstance(value, str) and len(value) <= 64 and _UID.fullmatch(value) is not None


def inside(child: Path, parent: Path) -> bool:
    """True when ``child`` is ``parent`` or lies below it (both already resolved)."""
    return child == parent or parent in child.parents


def check_output_place(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (),
                       what: str = "input") -> Path:
    """Refuse an output folder that would put inputs, the working folder or a root at risk.

    Args:
        out: the output folder (need not exist).
        inputs: files or folders the command reads (missing ones are still compared).
        what: how to call the inputs in the message (e.g. "the manifest").

    Returns:
        ``out`` resolved (symlinks followed).

    Raises:
        OutputError: one line naming the folder and the conflict.
    """
    res = Path(out).expanduser().resolve()
    if res == Path(res.anchor) or res == Path.home().resolve():
        raise OutputError(f"{out}: refusing to write into a filesystem root or the home folder")
    if inside(Path.cwd().resolve(), res):
        raise OutputError(f"{out}: refusing to write into the current folder or one of its "
                          "parents; choose a new folder")
    for inp in inputs:
        ri = Path(inp).expanduser().resolve()
        if inside(res, ri) or inside(ri, res):
            rel = "is" if res == ri else "is inside" if inside(res, ri) else "contains"
            raise OutputError(f"{out}: output folder {rel} {what} {inp}; choose another folder")
    return res


def is_medfuse_output(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds the :data:`MARKER`, or is an output of a medfuse older than it.

    Older outputs: a ``run.json`` naming a medfuse version (``versions.medfuse``), or a MONAI
    bundle of ``export-bundle`` (``configs/metadata.json`` requiring a medfuse version).
    """
    f = Path(folder)
    if (f / MARKER).is_file():
        return True
    for rel, keys in (("run.json", ("versions", "medfuse")),  # fuse, batch outputs
                      ("configs/metadata.json", ("required_packages_version", "medfuse"))):
        try:
            rec = json.loads((f / rel).read_text())
        except (OSError, ValueError):
            continue
        for k in keys:
            rec = rec.get(k) if isinstance(rec, dict) else None
        if rec:
            return True
    return False


def check_replace(out: str | os.PathLike) -> None:
    """Refuse to replace an existing non-empty folder medfuse did not mark as its output.

    Raises:
        OutputError: ``out`` is a non-empty folder without the marker.
    """
    o = Path(out)
    if o.is_dir() and any(o.iterdir()) and not is_medfuse_output(o):
        raise OutputError(f"{out}: folder is not a medfuse output (no {MARKER}); refusing to "
                          "replace it: remove it yourself or choose another folder")


def write_marker(folder: str | os.PathLike, command: str) -> None:
    """Write the :data:`MARKER` into ``folder`` (tool, version, command, UTC creation time)."""
    from medfuse import __version__

    info = {"tool": "medfuse", "version": __version__, "command": command,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (Path(folder) / MARKER).write_text(json.dumps(info) + "\n")


def clear_stale_temps(out: str | os.PathLike) -> int:
    """Remove the temporary siblings of ``out`` a killed run left (``.NAME.tmp-*``/``.old-*``).

    Only folders medfuse marked as its own are removed; names are compared as text (``out`` is
    never a glob pattern) and symlinks are never followed.

    Returns:
        how many were removed.
    """
    o = Path(out)
    try:
        entries = list(o.parent.iterdir())
    except OSError:
        return 0
    prefixes = (f".{o.name}.tmp-", f".{o.name}.old-")
    n = 0
    for p in entries:
        if (p.name.startswith(prefixes) and not p.is_symlink() and p.is_dir()
                and is_medfuse_output(p)):
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n
