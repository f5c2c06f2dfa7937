"""The result records of studies that did not run, shared by the backends."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["not_started", "skipped", "record_stamp", "STOPPED_AFTER"]

#: the note of a study stopped (SIGTERM, Ctrl-C, a Ray cancel) after its output was complete.
STOPPED_AFTER = "stopped after its output was complete"


def record_stamp(out: str) -> tuple[int, int]:
    """Identity of ``out``'s run.json (inode, mtime), ``(0, 0)`` when there is none.

    A new output is moved into place by renaming its folder, so the stamp changes exactly when
    a study's output was committed.
    """
    try:
        st = os.stat(os.path.join(out, "run.json"))
    except OSError:
        return (0, 0)
    return (st.st_ino, st.st_mtime_ns)


def not_started(
    study: dict[str, Any],
    why: str | None = "not started: the batch was stopped",
    status: str = "interrupted",
    exit_code: int | None = None,
) -> dict[str, Any]:
    """The result of a study that did not run (``interrupted``, or ``failed`` with ``why``)."""
    return {
        "row": study["row"], "id": study["id"], "out": study["out"], "status": status,
        "error": why, "exit_code": exit_code, "note": None, "timings_s": {}, "host": None,
        "pid": None,
    }


def skipped(study: dict[str, Any], note: str) -> dict[str, Any]:
    """The result of a study whose output was already complete."""
    return {**not_started(study, None, status="skipped"), "note": note}
