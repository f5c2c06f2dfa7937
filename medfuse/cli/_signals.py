"""SIGTERM and Ctrl-C for the writing commands: unwind, exit ``128 + signum`` whatever the stage.

A stopped run raises :class:`SystemExit` from the handler, so ``finally`` blocks and the atomic
output folder remove the temporary output (never mid-way through creating or moving that folder:
:mod:`medfuse.io.interrupts`). Ctrl-C goes the same way, so it too exits 130 instead of click's
"Aborted!" with 1. Some libraries (SimpleITK's Python callbacks, for one) catch that exception and
turn it into their own error, which medfuse would then report as an input or registration failure
with its exit code; :func:`terminated` lets the CLI see that the run was really stopped by a signal
and exit ``128 + signum`` instead.
"""

from __future__ import annotations

import signal

from medfuse.io.interrupts import request_exit

__all__ = ["install_stop_signals", "terminated"]

_received: list[int] = []


def _on_stop(signum: int, frame: object) -> None:
    _received.append(signum)
    request_exit(128 + signum)  # waits while the output folder is created or moved


def install_stop_signals() -> None:
    """Make SIGTERM and SIGINT unwind the run (temporary outputs removed); exit 143 / 130."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _on_stop)


def terminated() -> int | None:
    """The exit status of a run stopped by a signal (``128 + signum``), else None."""
    return 128 + _received[0] if _received else None
