"""SIGTERM for the writing commands: unwind like Ctrl-C, and exit 143 whatever the stage.

A terminated run raises :class:`SystemExit` from the handler, so ``finally`` blocks and the atomic
output folder remove the temporary output (never mid-way through creating or moving that folder:
:mod:`medfuse.io.interrupts`). Some libraries (SimpleITK's Python callbacks, for one)
catch that exception and turn it into their own error, which medfuse would then report as an input
or registration failure with its exit code; :func:`terminated` lets the CLI see that the run was
really stopped by a signal and exit ``128 + SIGTERM`` instead.
"""

from __future__ import annotations

import signal

from medfuse.io.interrupts import request_exit

__all__ = ["install_sigterm", "terminated"]

_received: list[int] = []


def _on_term(signum: int, frame: object) -> None:
    _received.append(signum)
    request_exit(128 + signum)  # waits while the output folder is created or moved


def install_sigterm() -> None:
    """Make SIGTERM unwind the run (temporary outputs removed) and exit 143."""
    signal.signal(signal.SIGTERM, _on_term)


def terminated() -> int | None:
    """The exit status of a run stopped by a signal (``128 + signum``), else None."""
    return 128 + _received[0] if _received else None
