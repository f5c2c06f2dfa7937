"""The Ray batch backend (``--backend ray [--address ADDR]``): the same studies as Ray tasks.

Without an address, Ray starts a private local instance (``address="local"``) on 127.0.0.1 with
``workers`` CPUs, no dashboard and a small object store, and stops it at the end. With
``--address`` (what ``ray start --head`` prints) the tasks run on that cluster; every node then
needs medfuse installed and must see the manifest's paths at the same place (a shared file
system). A task asks for ``threads`` CPUs and, when its study fuses on CUDA (``--device cuda``, or
``auto`` on a cluster that has GPUs), one GPU. Ray reuses its worker processes, and each process
keeps a network it has loaded (:func:`medfuse.fusion.base.enable_method_cache`), so weights load
once per worker. ``ray`` is imported only here, when this backend is chosen.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from medfuse.batch.backends.results import STOPPED_AFTER, not_started, record_stamp
from medfuse.errors import InputError, RemoteError

__all__ = ["RayBackend", "ray_study"]

#: object store of a local instance (results are small dicts).
LOCAL_OBJECT_STORE_BYTES = 128 * 1024**2


def ray_study(study: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """The Ray task: :func:`medfuse.batch.worker.run_study` in a Ray worker process.

    Ray cancels a running task by a simulated Ctrl-C (``_thread.interrupt_main``, which calls the
    SIGINT handler); the handler set here makes it wait while the study's output folder is being
    created or moved into place (:mod:`medfuse.io.interrupts`).
    """
    import signal

    from medfuse.batch.worker import run_study

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_cancel)
    return run_study(study, threads)


def _on_cancel(signum: int, frame: Any) -> None:
    from medfuse.io.interrupts import request_interrupt

    request_interrupt()


class RayBackend:
    """Ray backend.

    Args:
        workers: CPUs of the local instance (ignored with ``address``).
        threads: CPUs (torch threads) per task.
        address: a running cluster (``ray://HOST:10001`` or ``HOST:6379``); None starts Ray locally.
    """

    name = "ray"

    def __init__(
        self, workers: int, threads: int | None, address: str | None = None
    ) -> None:
        self.workers = workers
        self.threads = threads or 1
        self.address = address
        self._ray: Any = None
        self._gpus = 0.0

    def start(self) -> None:
        """Connect to the cluster, or start a local instance."""
        try:
            import ray
        except ImportError:
            raise InputError(
                "--backend ray needs the ray package: pip install 'medfuse[ray]'"
            ) from None
        common = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        try:
            if self.address:
                ray.init(address=self.address, **common)
            else:
                ray.init(
                    address="local",
                    num_cpus=max(self.workers * self.threads, 1),
                    object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                    _node_ip_address="127.0.0.1",
                    **common,
                )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local instance"
            hint = (
                "; a cluster started by `ray start` uses token authentication: set "
                "RAY_AUTH_MODE=token and copy its ~/.ray/auth_token (docs/batch.md)"
                if self.address and "RAY_AUTH_MODE" not in os.environ else ""
            )
            raise RemoteError(
                f"ray: cannot start or reach {where} ({' '.join(str(exc).split())[:200]}){hint}"
            ) from None
        self._ray = ray
        self._gpus = float(ray.cluster_resources().get("GPU", 0))

    def describe(self) -> dict[str, Any]:
        """For the report."""
        return {
            "backend": self.name,
            "address": self.address or "local",
            "workers": None if self.address else self.workers,
            "threads_per_worker": self.threads,
            "cluster_gpus": self._gpus,
        }

    def _wants_gpu(self, study: dict[str, Any]) -> bool:
        device = str(study["flags"].get("device") or "auto")
        return device.startswith("cuda") or (device == "auto" and self._gpus >= 1)

    def run(
        self,
        studies: list[dict[str, Any]],
        on_result: Callable[[dict[str, Any]], None],
        stop: threading.Event,
    ) -> None:
        """Run every study; see :mod:`medfuse.batch.backends`."""
        ray = self._ray
        task = ray.remote(ray_study)
        refs = {}  # ref -> (study, its run.json stamp before the task)
        for s in studies:
            opts = task.options(
                num_cpus=self.threads, num_gpus=1 if self._wants_gpu(s) else 0, max_retries=0
            )
            before = record_stamp(s["out"])  # before the task can commit its output
            refs[opts.remote(s, self.threads)] = (s, before)
        pending = list(refs)
        stopping = False
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=0.25)
            for ref in done:
                on_result(self._result(ref, *refs[ref]))
            if stop.is_set() and not stopping:
                stopping = True
                for ref in pending:
                    ray.cancel(ref)  # a running task gets KeyboardInterrupt: temp folder removed

    def _result(self, ref: Any, study: dict[str, Any], before: tuple[int, int]) -> dict[str, Any]:
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            # The cancel can race the task's end: Ray may report a task cancelled that had already
            # moved its output into place (the SIGINT handler defers the cancel past the move).
            # The output folder tells: a new run.json means the study's output is complete.
            if record_stamp(study["out"]) not in ((0, 0), before):
                return {**not_started(study, None, status="ok"), "note": STOPPED_AFTER}
            return not_started(study)
        except ray.exceptions.RayError as exc:
            line = " ".join(str(exc).split())[:300]
            return not_started(study, f"ray: {type(exc).__name__}: {line}", "failed", 7)

    def close(self) -> None:
        """Disconnect (and stop the local instance this backend started)."""
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None
