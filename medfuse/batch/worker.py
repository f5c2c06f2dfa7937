"""What runs in a batch worker process: set up once, then one study per call.

:func:`run_study` is the job of both backends (a process-pool worker or a Ray worker). It skips a
study whose output is complete (run.json present, every output hash matching, same inputs and
options), clears temporary folders a killed run left beside the output, and otherwise fuses with
:func:`medfuse.fusion.run.fuse_pair` (the call ``medfuse fuse`` makes), replacing a partial or
corrupt output. It never raises for a failing study: the result dict says ``failed``.

Signals in a local worker (see :func:`init_worker`): SIGINT is ignored (the batch process decides),
SIGTERM stops the study in progress (its temporary output is removed) and makes the worker return
``interrupted`` for every later study; a worker whose batch process died stops the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["init_worker", "setup_process", "run_study", "clear_stale_temps", "STATUSES"]

#: a study's status in results and reports.
STATUSES = ("ok", "skipped", "failed", "interrupted")

_STOP = False  # set by SIGTERM: finish nothing more
_RUNNING = False  # a study is being fused in this process
_SETUP = False

#: modules fuse_volumes imports on its first call (a worker imports them when it starts).
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
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
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
    if _RUNNING:
        raise SystemExit(128 + signum)  # unwinds the study: AtomicOutputDir removes its temp folder


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
    setup_process(threads)


def clear_stale_temps(out: str | os.PathLike) -> list[str]:
    """Remove the temporary siblings of ``out`` a killed run left (``.NAME.tmp-*``, ``.NAME.old-*``).

    Only one batch may write an output folder at a time (the manifest check makes rows distinct).
    """
    o = Path(out)
    if not o.parent.is_dir():
        return []
    gone = []
    for pattern in (f".{o.name}.tmp-*", f".{o.name}.old-*"):
        for p in o.parent.glob(pattern):
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p.name)
    return gone


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def _stale(run: dict[str, Any], opts: Any, a: str, b: str) -> str | None:
    """Why a complete output was made differently (other inputs or options), else None."""
    from dataclasses import asdict

    drop = ("progress", "overwrite")
    want = {k: v for k, v in _jsonable(asdict(opts)).items() if k not in drop}
    if want.get("method") == "auto" and want.get("weights"):  # fuse_volumes records it so
        want["method"] = "network"
    have = {k: v for k, v in (run.get("options") or {}).items() if k not in drop}
    if want != have:
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        return f"made with other options ({', '.join(diff)})"
    inputs = run.get("inputs")
    paths = (
        [i.get("path") for i in inputs] if isinstance(inputs, list)
        else [inputs.get("a"), inputs.get("b")] if isinstance(inputs, dict) else []
    )
    if [str(p) for p in paths] != [a, b]:
        return "made from other inputs"
    return None


def _check_existing(out: Path, opts: Any, a: str, b: str, force: bool) -> tuple[str, str | None]:
    """("skip" | "new" | "redo" | "refuse", reason)."""
    from medfuse.io.checksums import RUN_JSON, verify_outputs

    if not out.is_dir() or not any(out.iterdir()):
        return "new", None
    if force:
        return "redo", "--force"
    if not (out / RUN_JSON).is_file():
        return "refuse", (
            f"{out}: output folder exists, is not empty and holds no run.json (not a medfuse "
            "output); move it away or use --force"
        )
    reason = verify_outputs(out)
    if reason is None:
        reason = _stale(json.loads((out / RUN_JSON).read_text()), opts, a, b)
        if reason is None:
            return "skip", None
    return "redo", reason


def run_study(study: dict[str, Any], force: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Run one study (see the module docstring); never raises for a failing study.

    Args:
        study: :meth:`medfuse.batch.manifest.Study.to_dict`.
        force: redo a complete output.
        threads: torch threads (applied once per process).

    Returns:
        ``{"row", "id", "out", "status", "error", "exit_code", "note", "timings_s", "host",
        "pid"}``; ``status`` one of :data:`STATUSES`, ``timings_s`` has ``total`` (this call) and
        ``fuse`` (the stages from run.json) when fused.
    """
    global _RUNNING
    t0 = time.perf_counter()  # reset after a worker's one-off setup
    res: dict[str, Any] = {
        "row": study["row"], "id": study["id"], "out": study["out"], "status": "failed",
        "error": None, "exit_code": None, "note": None, "timings_s": {},
        "host": socket.gethostname(), "pid": os.getpid(),
    }

    def done(status: str, **kw: Any) -> dict[str, Any]:
        res.update(status=status, **kw)
        res["timings_s"]["total"] = round(time.perf_counter() - t0, 4)
        return res

    if _STOP:
        return done("interrupted", error="not started: the batch was stopped")
    from medfuse.errors import MedfuseError

    _RUNNING = True
    try:
        if not _SETUP:  # the first study of a worker: imports, torch threads (timed apart)
            setup_process(threads)
            res["timings_s"]["worker_setup"] = round(time.perf_counter() - t0, 4)
            t0 = time.perf_counter()
        from medfuse.fusion.run import fuse_pair, options_from_flags

        out = Path(study["out"])
        cleared = clear_stale_temps(out)
        opts = options_from_flags(**study["flags"], quiet=True)
        action, reason = _check_existing(out, opts, study["a"], study["b"], force)
        notes = [f"removed {len(cleared)} temporary folder(s) of an interrupted run"] if cleared else []
        if action == "skip":
            return done("skipped", note="; ".join([*notes, "output complete (hashes match)"]))
        if action == "refuse":
            return done("failed", error=reason, exit_code=5, note="; ".join(notes) or None)
        if action == "redo":
            notes.append(f"redone: {reason}")
            opts.overwrite = True
        run = fuse_pair(study["a"], study["b"], out, opts)
        res["timings_s"]["fuse"] = run.get("timings_s", {})
        return done("ok", note="; ".join(notes) or None)
    except MedfuseError as exc:
        return done("failed", error=str(exc), exit_code=exc.exit_code)
    except (KeyboardInterrupt, SystemExit):
        return done("interrupted", error="stopped while running; its temporary output was removed")
    except Exception as exc:  # a bug: keep the other studies going, report it
        line = " ".join(str(exc).split())[:300]
        return done("failed", error=f"internal error: {type(exc).__name__}: {line}", exit_code=1,
                    traceback=traceback.format_exc(limit=8))
    finally:
        _RUNNING = False
