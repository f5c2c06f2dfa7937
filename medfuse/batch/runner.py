"""``run_batch``: check a manifest, run its studies on a backend, report.

Flow: :func:`~medfuse.batch.manifest.load_manifest` checks every row before anything runs;
:func:`~medfuse.batch.resume.decide_all` skips complete outputs (no worker starts for them); the
backend runs :func:`~medfuse.batch.worker.run_study` per study (in parallel); a progress bar counts
studies; the JSON report is rewritten after every finished study (so a killed batch still leaves
one) and the summary table is printed at the end. SIGINT/SIGTERM stop the batch cleanly: studies
in progress are stopped and their temporary folders removed, finished ones stay complete, the
report marks the rest ``interrupted``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["run_batch", "default_workers", "default_report_path"]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(n_studies: int, cpus: int | None = None) -> tuple[int, int]:
    """``(workers, threads per worker)``: half the cores (at least 1, at most one per study),
    and the cores shared out between the workers (no oversubscription)."""
    cpus = cpus or _cpus()
    workers = max(1, min(n_studies, cpus // 2 or 1))
    return workers, max(1, cpus // workers)


def default_report_path(manifest: str | os.PathLike) -> Path:
    """``MANIFEST_FOLDER/<manifest stem>.report.json``."""
    m = Path(manifest)
    return m.with_name(f"{m.stem}.report.json")


@contextmanager
def _stop_on_signals(stop: threading.Event, got: list[str]) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (main thread only) instead of killing the batch."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        got.append(signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_batch(
    manifest: str | os.PathLike,
    *,
    defaults: dict[str, Any] | None = None,
    backend: str = "local",
    workers: int | None = None,
    threads: int | None = None,
    address: str | None = None,
    force: bool = False,
    report_path: str | os.PathLike | None = None,
    progress: bool = True,
    console: Any = None,
) -> dict[str, Any]:
    """Run every study of ``manifest`` (see docs/batch.md).

    Args:
        manifest: CSV or JSON manifest (:mod:`medfuse.batch.manifest`).
        defaults: fuse options for every row (from the ``batch`` command line).
        backend: "local" (process pool) or "ray".
        workers: parallel studies (default: :func:`default_workers`).
        threads: torch threads per study (default: cores // workers; Ray cluster: 1).
        address: Ray cluster address (``--backend ray``); None starts Ray locally.
        force: redo studies whose output is complete.
        report_path: JSON report (default: :func:`default_report_path`).
        progress: show a progress bar and the summary table.
        console: a ``rich.console.Console`` (default: one on stderr).

    Returns:
        the report dict (also written to ``report_path``), with ``report_path`` added.

    Raises:
        InputError: a bad manifest (nothing ran). RemoteError: Ray unreachable.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from medfuse.batch.backends import get_backend
    from medfuse.batch.manifest import load_manifest
    from medfuse.batch.report import build_report, summary_table, write_report
    from medfuse.batch.resume import plan

    studies = [s.to_dict() for s in load_manifest(manifest, defaults)]
    workers = workers or default_workers(len(studies))[0]
    if threads is None and not (backend == "ray" and address):
        threads = max(1, _cpus() // workers)
    report_file = Path(report_path) if report_path else default_report_path(manifest)
    console = console or Console(stderr=True)
    bk = get_backend(backend, workers=workers, threads=threads,
                     **({"address": address} if backend == "ray" else {}))
    results: dict[int, dict[str, Any]] = {}
    stop, got = threading.Event(), []
    started, t0 = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.perf_counter()

    def report(final: bool) -> dict[str, Any]:
        meta = {
            "manifest": str(Path(manifest).absolute()),
            "backend": bk.describe(),
            "force": force,
            "started": started,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z") if final else None,
            "elapsed_s": round(time.perf_counter() - t0, 3),
            "interrupted": got[0] if got else None,
        }
        rep = build_report(meta, studies, results)
        write_report(rep, report_file)
        return rep

    bar = Progress(
        TextColumn("batch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"), console=console, disable=not progress, transient=False,
    )
    task = bar.add_task("studies", total=len(studies), counts="")

    def record(res: dict[str, Any]) -> None:
        results[res["row"]] = res
        c = {k: sum(r["status"] == k for r in results.values())
             for k in ("ok", "skipped", "failed")}
        bar.update(task, advance=1, counts=", ".join(f"{v} {k}" for k, v in c.items() if v))

    def on_result(res: dict[str, Any]) -> None:
        record(res)
        report(final=False)

    with _stop_on_signals(stop, got), bar:
        settled, to_run = plan(studies, force, threads=max(workers, 4))
        for res in settled:
            record(res)
        report(final=False)
        if to_run and not stop.is_set():
            bk.start()
            try:
                with _stop_on_signals(stop, got):  # again: ray.init sets its own SIGTERM handler
                    bk.run(to_run, on_result, stop)
            finally:
                bk.close()
    rep = report(final=True)
    if progress:
        console.print(summary_table(rep))
        console.print(f"report: {report_file}")
    rep["report_path"] = str(report_file)
    return rep
