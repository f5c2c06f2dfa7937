"""The default batch backend: a pool of local worker processes (``--workers N``).

Workers are started with ``spawn`` (no fork of a process holding threads), run
:func:`medfuse.batch.worker.init_worker` once (torch threads = ``threads``; a network's weights are
loaded once per worker) and then one study per task. On stop, queued studies are cancelled and the
workers get SIGTERM, which stops the study in progress cleanly (its temporary folder is removed).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from medfuse.batch.backends.results import not_started

__all__ = ["LocalBackend"]


class LocalBackend:
    """Process-pool backend.

    Args:
        workers: parallel studies (worker processes).
        threads: torch threads per worker.
    """

    name = "local"

    def __init__(self, workers: int, threads: int | None) -> None:
        self.workers = workers
        self.threads = threads
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Create the pool (workers start with the first studies)."""
        import multiprocessing as mp

        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=mp.get_context("spawn"),
            initializer=_init,
            initargs=(self.threads, os.getpid()),
        )

    def describe(self) -> dict[str, Any]:
        """For the report."""
        return {"backend": self.name, "workers": self.workers, "threads_per_worker": self.threads}

    def run(
        self,
        studies: list[dict[str, Any]],
        on_result: Callable[[dict[str, Any]], None],
        stop: threading.Event,
    ) -> None:
        """Run every study; see the package docstring."""
        from medfuse.batch.worker import run_study

        assert self._pool is not None
        futures: dict[Future, dict[str, Any]] = {
            self._pool.submit(run_study, s, self.threads): s for s in studies
        }
        pending = set(futures)
        stopping = False
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            for f in done:
                on_result(_result(f, futures[f]))
            if stop.is_set() and not stopping:
                stopping = True
                for f in pending:
                    f.cancel()
                self._signal_workers(signal.SIGTERM)

    def _signal_workers(self, signum: int) -> None:
        # the pool keeps its worker processes in a private mapping (stable since Python 3.3)
        for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
            try:
                os.kill(proc.pid, signum)
            except (ProcessLookupError, TypeError):
                pass

    def close(self) -> None:
        """Shut the pool down (waits for the workers to exit)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _init(threads: int | None, parent: int) -> None:
    from medfuse.batch.worker import init_worker

    init_worker(threads, parent)


def _result(f: Future, study: dict[str, Any]) -> dict[str, Any]:
    if f.cancelled():
        return not_started(study)
    exc = f.exception()
    if exc is None:
        return f.result()
    line = " ".join(str(exc).split())[:300]
    return not_started(study, f"worker failed: {type(exc).__name__}: {line}", "failed", 1)
