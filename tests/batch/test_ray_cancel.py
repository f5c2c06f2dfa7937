"""A Ray cancel racing a study's end: the report follows what is on disk.

Ray can report a task cancelled (``TaskCancelledError``) although the task had already moved its
output into place: the cancel is a simulated Ctrl-C that medfuse defers past the move, and the
driver then learns only that the task was cancelled. The driver compares the study's run.json
before and after, as a local worker does after a SIGTERM.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medfuse.batch.backends.results import STOPPED_AFTER
from tests.batch.conftest import (
    assert_complete,
    netns_prefix,
    run_private_ray,
    temp_leftovers,
    write_csv,
)

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
    res, left = run_private_ray((str(SCRIPT), str(m), str(result)), tag, prefix)
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
