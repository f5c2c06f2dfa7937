"""SHA-256 checksums of output folders: written into run.json, checked before a study is skipped.

``run.json`` of ``medfuse fuse`` lists ``output_sha256``: every file of the output folder (paths
relative to it, ``/``-separated) but run.json itself, with its hex SHA-256. An output folder is
*complete* when its run.json parses and every listed file is present with that hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .guard import MARKER

__all__ = ["file_sha256", "output_hashes", "verify_outputs", "RUN_JSON"]

#: the run record inside every output folder.
RUN_JSON = "run.json"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def output_hashes(
    folder: str | os.PathLike, exclude: tuple[str, ...] = (RUN_JSON, MARKER)
) -> dict[str, str]:
    """``{relative/path: sha256}`` of every file under ``folder`` (sorted), but ``exclude``.

    The default leaves out ``run.json`` (it holds the map) and the output marker (bookkeeping of
    :mod:`medfuse.io.guard`, with its own creation time).
    """
    root = Path(folder)
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in exclude:
            out[rel] = file_sha256(p)
    return out


def verify_outputs(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` is not a complete medfuse output, or None when it is.

    Complete: ``run.json`` parses, holds a non-empty ``output_sha256`` map, and every file it lists
    exists with that SHA-256.
    """
    root = Path(folder)
    run_path = root / RUN_JSON
    if not run_path.is_file():
        return "no run.json"
    try:
        run = json.loads(run_path.read_text())
    except (OSError, ValueError):
        return "run.json unreadable"
    hashes = run.get("output_sha256") if isinstance(run, dict) else None
    if not isinstance(hashes, dict) or not hashes:
        return "run.json lists no output hashes"
    for rel, digest in hashes.items():
        p = root / rel
        if not p.is_file():
            return f"{rel} missing"
        if file_sha256(p) != digest:
            return f"{rel} changed (hash mismatch)"
    return None
