"""The result records of studies that did not run, shared by the backends."""

from __future__ import annotations

from typing import Any

__all__ = ["not_started", "skipped"]


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
