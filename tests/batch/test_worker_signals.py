"""A batch worker's SIGTERM at the edges of a study: the report says what is on disk.

The worker's own handler is installed in this process and the signal is sent from inside the step
under test (a real ``os.kill``), so it always lands there, however loaded the machine is.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medfuse.batch import worker
from medfuse.batch.manifest import load_manifest
from medfuse.io import atomic, interrupts
from tests.batch.conftest import assert_complete, temp_leftovers, write_csv


@pytest.fixture
def worker_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """SIGTERM handled as in a pool worker, for one test."""
    monkeypatch.setattr(worker, "_STOP", False)
    old = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, worker._on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
        interrupts.clear()


def _term_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):  # bytecodes for Python to run the handler in
        pass


def _study(tmp_path: Path, stroke_dir: Path) -> dict[str, Any]:
    m = write_csv(tmp_path / "cohort.csv", [{
        "id": "s1", "a": str(stroke_dir / "T2.nii.gz"), "b": str(stroke_dir / "T1.nii.gz"),
        "out": "out/s1", "register": "none", "method": "average", "format": "nifti",
    }])
    return load_manifest(m)[0].to_dict()


def test_sigterm_as_the_output_folder_is_made_reports_interrupted_and_leaves_nothing(
    tmp_path: Path, stroke_dir: Path, monkeypatch: pytest.MonkeyPatch, worker_handler: None
):
    real = atomic.write_marker

    def marker_then_signal(folder: Path, command: str) -> None:
        real(folder, command)
        _term_self()

    monkeypatch.setattr(atomic, "write_marker", marker_then_signal)
    res = worker.run_study(_study(tmp_path, stroke_dir))
    assert res["status"] == "interrupted", res
    assert temp_leftovers(tmp_path / "out") == [] and not (tmp_path / "out" / "s1").exists()
    # every later study of this worker is not started
    assert worker.run_study(_study(tmp_path, stroke_dir))["status"] == "interrupted"


def test_sigterm_after_the_output_is_in_place_reports_ok(
    tmp_path: Path, stroke_dir: Path, monkeypatch: pytest.MonkeyPatch, worker_handler: None
):
    from medfuse.fusion import run as run_mod

    real = run_mod.fuse_pair

    def fuse_then_signal(*args: Any, **kw: Any) -> dict[str, Any]:
        record = real(*args, **kw)
        _term_self()  # after the rename, before the study returns
        return record

    monkeypatch.setattr(run_mod, "fuse_pair", fuse_then_signal)
    res = worker.run_study(_study(tmp_path, stroke_dir))
    assert res["status"] == "ok" and res["note"] == worker.STOPPED_AFTER, res
    assert_complete(tmp_path / "out" / "s1")
    assert temp_leftovers(tmp_path / "out") == []


def test_ray_cancel_as_the_output_folder_is_made_leaves_nothing(
    tmp_path: Path, stroke_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """Ray cancels a running task with ``_thread.interrupt_main()``: simulated here, in-process."""
    import _thread

    from medfuse.batch.backends.ray_tasks import ray_study

    real = atomic.write_marker

    def marker_then_cancel(folder: Path, command: str) -> None:
        real(folder, command)
        _thread.interrupt_main()  # what ray.cancel does in the worker
        for _ in range(1000):
            pass

    monkeypatch.setattr(atomic, "write_marker", marker_then_cancel)
    monkeypatch.setattr(worker, "_STOP", False)
    old = signal.getsignal(signal.SIGINT)
    try:
        res = ray_study(_study(tmp_path, stroke_dir), None)
    finally:
        signal.signal(signal.SIGINT, old)
        interrupts.clear()
    assert res["status"] == "interrupted", res
    assert temp_leftovers(tmp_path / "out") == [] and not (tmp_path / "out" / "s1").exists()
