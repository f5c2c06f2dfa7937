"""What runs in a batch worker process: set up once, then one study per call.

:func:`run_study` is the job of both backends (a process-pool worker or a Ray worker): it fuses
with :func:`medfuse.fusion.run.fuse_pair` (the call ``medfuse fuse`` makes), replacing the old
output when the batch decided to redo it (:mod:`medfuse.batch.resume`). It never raises for a
failing study: the result dict says ``failed``. The heavy imports (MONAI, SimpleITK, highdicom)
happen once per process, before its first study, and are timed apart (``worker_setup``).

Signals in a local worker (see :func:`init_worker`): SIGINT is ignored (the batch process decides),
SIGTERM stops the study in progress (its temporary output is removed) and makes the worker return
``interrupted`` for every later study; a worker whose batch process died stops the same way.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import traceback
from typing import Any

from medfuse.batch.backends.results import STOPPED_AFTER, record_stamp

__all__ = ["init_worker", "setup_process", "run_study", "STATUSES"]

#: a study's status in results and reports.
STATUSES = ("ok", "skipped", "failed", "interrupted")

_STOP = False  # set by SIGTERM: finish nothing more
_RUNNING = False  # a study is being fused in this process
_SETUP = False
_STOPPED = "stopped while running; its temporary output was removed"

#: modules fuse_volumes imports on its first call (a worker imports them before its first study).
_PRELOAD = (
    "medfuse.fusion.run",
    "medfuse.fusion.pipeline",
    "medfuse.fusion.folders",
    "medfuse.fusion.slices",
    "medfuse.io",
    "medfuse.io.writers",
    "medfuse.registration",
    "medfuse.transforms",
    "medfuse.transforms.colour",
)


def setup_process(threads: int | None) -> None:
    """Once per worker process: torch threads and the network cache (weights load once)."""
    global _SETUP
    if _SETUP:
        return
    _thread_env(threads)
    import importlib

    import torch

    for mod in _PRELOAD:  # the heavy imports (MONAI, SimpleITK, highdicom) once, not per study
        importlib.import_module(mod)
    from medfuse.fusion.base import enable_method_cache, list_methods

    if threads:
        torch.set_num_threads(threads)
    list_methods()  # registers the methods
    enable_method_cache()
    _SETUP = True


def _on_term(signum: int, frame: Any) -> None:
    global _STOP
    _STOP = True
    if _RUNNING:  # unwinds the study: AtomicOutputDir removes its temp folder
        from medfuse.io.interrupts import request_exit

        request_exit(128 + signum)  # waits while the output folder is created or moved


def _watch_parent(parent: int) -> None:
    """Stop like SIGTERM when the batch process is gone (e.g. killed with SIGKILL)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    if _RUNNING:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(600):  # let the study unwind and remove its temporary output
            if not _RUNNING:
                break
            time.sleep(0.1)
    os._exit(128 + signal.SIGTERM)


def init_worker(threads: int | None, parent: int) -> None:
    """Initializer of a local pool worker.

    Args:
        threads: torch threads per study (None: torch's default).
        parent: PID of the batch process (the worker stops when it is gone).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _thread_env(threads)


def _thread_env(threads: int | None) -> None:
    """OpenMP/MKL thread counts for torch (effective when set before torch is imported)."""
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)


def run_study(study: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """Fuse one study; never raises for a failing study.

    Args:
        study: :meth:`medfuse.batch.manifest.Study.to_dict` plus ``overwrite`` (replace the old
            output) and ``note`` (what the resume check found, for the report).
        threads: torch threads (applied once per process).

    Returns:
        ``{"row", "id", "out", "status", "error", "exit_code", "note", "timings_s", "host",
        "pid"}``; ``status`` one of :data:`STATUSES`; ``timings_s`` has ``total`` (this study),
        ``fuse`` (the stages from run.json) and, for a worker's first study, ``worker_setup``.
    """
    global _RUNNING
    t0 = time.perf_counter()  # reset after a worker's one-off setup
    res: dict[str, Any] = {
        "row": study["row"], "id": study["id"], "out": study["out"], "status": "failed",
        "error": None, "exit_code": None, "note": study.get("note"), "timings_s": {},
        "host": socket.gethostname(), "pid": os.getpid(),
    }

    def done(status: str, **kw: Any) -> dict[str, Any]:
        res.update(status=status, **kw)
        res["timings_s"]["total"] = round(time.perf_counter() - t0, 4)
        return res

    if _STOP:
        return done("interrupted", error="not started: the batch was stopped")
    from medfuse.errors import MedfuseError

    before: tuple[int, int] | None = None
    try:
        _RUNNING = True  # inside the try: a SIGTERM from here on is reported as interrupted
        if not _SETUP:
            setup_process(threads)
            res["timings_s"]["worker_setup"] = round(time.perf_counter() - t0, 4)
            t0 = time.perf_counter()
        from medfuse.fusion.run import fuse_pair, options_from_flags

        opts = options_from_flags(**study["flags"], quiet=True)
        opts.overwrite = bool(study.get("overwrite"))
        before = record_stamp(study["out"])
        run = fuse_pair(study["a"], study["b"], study["out"], opts)
        res["timings_s"]["fuse"] = run.get("timings_s", {})
        return done("ok")
    except (KeyboardInterrupt, SystemExit):
        if before is not None and record_stamp(study["out"]) not in ((0, 0), before):
            return done("ok", note=STOPPED_AFTER)  # stopped after its output was moved in place
        return done("interrupted", error=_STOPPED)
    except MedfuseError as exc:
        if _STOP:  # e.g. SimpleITK turns the SIGTERM it sees mid-registration into an error
            return done("interrupted", error=_STOPPED)
        return done("failed", error=str(exc), exit_code=exc.exit_code)
    except Exception as exc:  # a bug: keep the other studies going, report it
        line = " ".join(str(exc).split())[:300]
        return done("failed", error=f"internal error: {type(exc).__name__}: {line}", exit_code=1,
                    traceback=traceback.format_exc(limit=8))
    finally:
        _RUNNING = False
