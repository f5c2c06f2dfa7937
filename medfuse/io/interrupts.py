"""Stop-by-signal that never lands inside a critical step of writing the output.

The writing commands (``medfuse fuse``, a batch worker) stop on SIGTERM by raising
:class:`SystemExit` from the signal handler, so the run unwinds and the atomic output folder removes
its temporary copy. Python runs a handler between any two bytecodes, so that exception could land
while the temporary folder is being created (after ``mkdtemp``, before the context manager has
returned it: nothing would remove it) or while the finished folder is being moved into place.

Handlers call :func:`request_exit` instead of raising. Outside a :func:`critical` section it
raises at once; inside one the exit waits, and is raised when the outermost section ends, after
the section's own clean-up. A section that completes the output (the final rename) can keep the
exit pending instead (``raise_pending=False``): the output is complete, and the caller stops at its
next :func:`checkpoint` or when it returns.

Example::

    with critical(on_exit=lambda: shutil.rmtree(tmp)):
        tmp = make_the_folder()
    # a SIGTERM during the block: the folder is removed, then SystemExit(143) is raised here
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["request_exit", "request_interrupt", "critical", "checkpoint", "pending", "clear"]

_depth = 0
_pending: list[BaseException] = []


def _stop(exc: BaseException) -> None:
    if _depth:
        _pending.append(exc)
        return
    raise exc


def request_exit(code: int) -> None:
    """Raise ``SystemExit(code)`` now, or when the current critical section ends.

    Args:
        code: the exit status (``128 + signum`` for a signal).
    """
    _stop(SystemExit(code))


def request_interrupt() -> None:
    """Raise :class:`KeyboardInterrupt` now, or when the current critical section ends.

    For code that is stopped by a simulated Ctrl-C (Ray cancels a running task with
    ``_thread.interrupt_main()``) and expects that exception.
    """
    _stop(KeyboardInterrupt())


def pending() -> int | None:
    """The exit status of a stop a critical section deferred and nobody raised yet, else None
    (130 for an interrupt)."""
    if not _pending:
        return None
    exc = _pending[0]
    return exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 130


def clear() -> None:
    """Forget a deferred stop."""
    _pending.clear()


def _take() -> BaseException:
    exc = _pending[0]
    _pending.clear()
    return exc


def checkpoint() -> None:
    """Raise a deferred stop, if there is one."""
    if _pending and not _depth:
        raise _take()


@contextmanager
def critical(
    on_exit: Callable[[], None] | None = None, raise_pending: bool = True
) -> Iterator[None]:
    """A block that a signal's :func:`request_exit` (or :func:`request_interrupt`) does not cut.

    Args:
        on_exit: clean-up to run before a deferred stop is raised (whether the block completed
            or failed; a failing block cleans up after itself as usual).
        raise_pending: raise a deferred stop when the block completes (False: the block finished
            the work, so the stop stays pending for :func:`checkpoint`).

    Raises:
        SystemExit: an exit requested during the block (when the outermost block ends);
            KeyboardInterrupt for an interrupt.
    """
    global _depth
    _depth += 1
    ok = False
    try:
        yield
        ok = True
    finally:
        _depth -= 1
        if _depth == 0 and _pending and (raise_pending or not ok):
            if on_exit is not None:
                on_exit()
            raise _take()  # the deferred signal wins over an error of the block
