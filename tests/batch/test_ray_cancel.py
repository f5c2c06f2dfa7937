"""A Ray cancel racing a study's end: the report follows what is on disk.

Ray can report a task cancelled (``TaskCancelledError``) although the task had already moved its
output into place: the cancel is a simulated Ctrl-C that medfuse defers past the move, and the
driver then learns only that the task was cancelled. The driver compares the study's run.json
before and after, as a local worker does after a SIGTERM.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from medfuse.batch.backends.results import STOPPED_AFTER
from tests.batch.conftest import (
    assert_complete,
    netns_prefix,
    tagged_pids,
    temp_leftovers,
    wait_gone,
    write_csv,
)
from tests.helpers import cli_env, run_python

SCRIPT = Path(__file__).with_name("ray_cancel_after_output.py")


def test_ray_cancel_after_the_output_is_complete_reports_ok(
    tmp_path: Path, stroke_dir: Path, tag: str
):
    prefix = netns_prefix()
    if prefix is None:
        pytest.skip("unshare/ip cannot make a private network namespace (util-linux, iproute2)")
    pytest.importorskip("ray", reason="ray is not installed (pip install 'medfuse[ray]')")
    m = write_csv(tmp_path / "cohort.csv", [{
        "id": "s1", "a": str(stroke_dir / "T2.nii.gz"), "b": str(stroke_dir / "T1.nii.gz"),
        "out": "out/s1", "register": "none", "method": "average", "format": "nifti",
    }])
    result = tmp_path / "result.json"
    ray_tmp = tempfile.mkdtemp(prefix="mfray", dir="/tmp")  # short: Ray's socket paths are limited
    try:
        res = run_python(str(SCRIPT), str(m), str(result), timeout=600,
                         env=cli_env(RAY_TMPDIR=ray_tmp, MEDFUSE_TEST_TAG=tag), prefix=prefix)
        left = wait_gone(tag, 60)
    finally:
        for pid in tagged_pids(tag):  # only on failure: never leave Ray processes behind
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert left == [], "Ray processes left running"
    # the task itself had finished its study, unstopped: the output is complete
    returned = json.loads((tmp_path / "out" / "s1.returned").read_text())
    assert returned["status"] == "ok" and returned["note"] is None, returned
    assert_complete(tmp_path / "out" / "s1")
    assert temp_leftovers(tmp_path / "out") == []
    (got,) = json.loads(result.read_text())
    assert got["id"] == "s1" and got["status"] == "ok", got
    assert got["note"] == STOPPED_AFTER and got["error"] is None, got
