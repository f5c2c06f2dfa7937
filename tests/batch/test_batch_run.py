"""``medfuse batch`` on real pairs: local pool, Ray in a private network namespace, kill + resume.

Pairs: the CT/MR demo shipped in the package (registered rigidly), the co-registered stroke NIfTI
set (``--register none``), and broken rows (a missing file, a file that is no image). Every run
uses ``--method average`` (or laplacian, to make a study last long enough to be killed in).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medfuse.data import demo_pair
from tests.batch.conftest import (
    assert_complete,
    netns_prefix,
    report_by_id,
    run_private_ray,
    tagged_pids,
    temp_leftovers,
    wait_gone,
    write_csv,
)
from tests.helpers import REPO, cli_env, run_cli

pytestmark = pytest.mark.slow


def _stroke_rows(stroke_dir: Path, pairs: list[tuple[str, str, str]], **opts: str) -> list[dict]:
    return [{"id": i, "a": str(stroke_dir / f"{a}.nii.gz"), "b": str(stroke_dir / f"{b}.nii.gz"),
             "out": f"out/{i}", "register": "none", **opts} for i, a, b in pairs]


def test_local_pool_real_pairs_broken_rows_and_resume(tmp_path: Path, stroke_dir: Path):
    ct, mr = demo_pair()
    (tmp_path / "notimage.nii.gz").write_text("this is not a NIfTI file\n")
    rows = [
        {"id": "demo", "a": str(ct), "b": str(mr), "out": "out/demo"},
        *_stroke_rows(stroke_dir, [("stroke", "FLAIR", "T1")]),
        {"id": "missing", "a": "no_such_ct", "b": str(mr), "out": "out/missing"},
        {"id": "notimage", "a": "notimage.nii.gz", "b": str(stroke_dir / "T1.nii.gz"),
         "out": "out/notimage", "register": "none"},
    ]
    m = write_csv(tmp_path / "cohort.csv", rows)
    res = run_cli("batch", str(m), "--method", "average", "--workers", "2")
    assert res.returncode == 8, res.stderr  # some studies failed, the others ran
    assert "medfuse: error: 2 of 4 studies failed" in res.stderr
    assert "Traceback" not in res.stderr
    assert "medfuse batch: 2 ok, 0 skipped, 2 failed" in res.stderr  # the summary table
    rep = json.loads((tmp_path / "cohort.report.json").read_text())
    assert rep["counts"] == {"ok": 2, "skipped": 0, "failed": 2, "interrupted": 0}
    assert rep["backend"]["backend"] == "local" and rep["backend"]["workers"] == 2
    by = {s["id"]: s for s in rep["studies"]}
    assert [s["row"] for s in rep["studies"]] == [1, 2, 3, 4]
    assert by["missing"]["exit_code"] == by["notimage"]["exit_code"] == 3
    assert "no_such_ct: no such file or folder" in by["missing"]["error"]
    assert "notimage.nii.gz: unreadable" in by["notimage"]["error"]
    for sid in ("demo", "stroke"):
        assert by[sid]["status"] == "ok" and by[sid]["error"] is None
        assert set(by[sid]["timings_s"]["fuse"]) >= {"load", "register", "fuse", "write", "total"}
    out = tmp_path / "out"
    demo = assert_complete(out / "demo")
    assert demo["registration"]["kind"] == "rigid" and demo["method"]["method"] == "average"
    assert sum(k.startswith("dicom/") for k in demo["output_sha256"]) == 20
    stroke = assert_complete(out / "stroke")
    assert sorted(stroke["output_sha256"]) == [
        "fused.nii.gz", "preview.png", "review.png", "transform.tfm"]
    assert sorted(p.name for p in out.iterdir()) == ["demo", "stroke"]  # nothing for failed rows

    # rerun: the complete study is skipped untouched, the corrupt one redone, failures retried
    demo_run = (out / "demo" / "run.json").read_bytes()
    with open(out / "stroke" / "fused.nii.gz", "r+b") as f:
        f.truncate(1000)
    res = run_cli("batch", str(m), "--method", "average", "--workers", "1", "-q")
    assert res.returncode == 8, res.stderr
    by = report_by_id(tmp_path / "cohort.report.json")
    assert by["demo"]["status"] == "skipped"
    assert by["stroke"]["status"] == "ok" and "fused.nii.gz changed" in by["stroke"]["note"]
    assert by["missing"]["status"] == by["notimage"]["status"] == "failed"
    assert (out / "demo" / "run.json").read_bytes() == demo_run
    assert_complete(out / "stroke")
    assert temp_leftovers(out) == []


def test_ray_local_instance_in_private_network(tmp_path: Path, stroke_dir: Path, tag: str):
    prefix = netns_prefix()
    if prefix is None:
        pytest.skip("unshare/ip cannot make a private network namespace (util-linux, iproute2)")
    pytest.importorskip("ray", reason="ray is not installed (pip install 'medfuse[ray]')")
    studies = _stroke_rows(stroke_dir, [("t1flair", "FLAIR", "T1"), ("t1t2", "T2", "T1")])
    for s in studies:
        del s["register"]
    studies.append({"id": "missing", "a": "nope.nii.gz", "b": "nope2.nii.gz", "out": "out/missing"})
    m = tmp_path / "cohort.json"
    m.write_text(json.dumps({"defaults": {"method": "average", "register": "none"},
                             "studies": studies}))
    res, left = run_private_ray(
        ("-m", "medfuse", "batch", str(m), "--backend", "ray", "--workers", "2", "-q"), tag, prefix
    )
    assert res.returncode == 8, res.stderr
    assert left == [], "Ray processes left running"
    rep = json.loads((tmp_path / "cohort.report.json").read_text())
    assert rep["backend"]["backend"] == "ray" and rep["backend"]["address"] == "local"
    by = {s["id"]: s for s in rep["studies"]}
    assert by["missing"]["status"] == "failed" and "nope.nii.gz" in by["missing"]["error"]
    for sid in ("t1flair", "t1t2"):
        assert by[sid]["status"] == "ok", by[sid]
        run = assert_complete(tmp_path / "out" / sid)
        assert run["method"]["method"] == "average" and run["registration"]["kind"] == "none"
    assert temp_leftovers(tmp_path / "out") == []


def _three_studies(tmp_path: Path, stroke_dir: Path) -> tuple[Path, list[Path]]:
    rows = _stroke_rows(stroke_dir, [("s1", "FLAIR", "T1")], method="average") + _stroke_rows(
        stroke_dir, [("s2", "T2", "T1"), ("s3", "FLAIR", "T2")], method="laplacian"
    )
    return write_csv(tmp_path / "cohort.csv", rows), [tmp_path / "out" / r["id"] for r in rows]


def _signal_after_first_study(m: Path, outs: list[Path], tag: str, signum: int) -> int:
    """Run the batch (one worker), send ``signum`` once a study is complete; its return code."""
    with open(m.with_suffix(".log"), "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "medfuse", "batch", str(m), "--workers", "1"],
            cwd=REPO, env=cli_env(MEDFUSE_TEST_TAG=tag), stdout=log, stderr=log,
        )
        try:
            end = time.monotonic() + 600
            while not any((o / "run.json").exists() for o in outs) and proc.poll() is None:
                assert time.monotonic() < end, "no study finished"
                time.sleep(0.05)
            proc.send_signal(signum)
            proc.wait(120)
            assert wait_gone(tag, 120) == [], "worker processes kept running"
        finally:
            for pid in tagged_pids(tag):
                os.kill(pid, signal.SIGKILL)
    return proc.returncode


def test_killed_batch_resumes_every_study_exactly_once(tmp_path: Path, stroke_dir: Path, tag: str):
    m, outs = _three_studies(tmp_path, stroke_dir)
    # SIGKILL: the batch process dies without any clean-up; its workers notice and stop
    assert _signal_after_first_study(m, outs, tag, signal.SIGKILL) == -signal.SIGKILL
    done_before = {}
    for o in outs:  # each output is either absent or complete, never partial
        if o.exists():
            done_before[o.name] = (assert_complete(o), (o / "run.json").read_bytes())
    assert "s1" in done_before

    res = run_cli("batch", str(m), "--workers", "1", "-q")
    assert res.returncode == 0, res.stderr
    by = report_by_id(tmp_path / "cohort.report.json")
    for o in outs:
        assert_complete(o)
        assert by[o.name]["status"] == ("skipped" if o.name in done_before else "ok"), by[o.name]
        if o.name in done_before:
            assert (o / "run.json").read_bytes() == done_before[o.name][1]
    # no temporary folder, no second copy
    assert sorted(p.name for p in outs[0].parent.iterdir()) == ["s1", "s2", "s3"]
    assert json.loads((outs[1] / "run.json").read_text())["method"]["method"] == "laplacian"

    res = run_cli("batch", str(m), "--workers", "1", "-q")
    assert res.returncode == 0, res.stderr
    rep = json.loads((tmp_path / "cohort.report.json").read_text())
    assert rep["counts"] == {"ok": 0, "skipped": 3, "failed": 0, "interrupted": 0}


def test_sigterm_stops_cleanly_and_reports(tmp_path: Path, stroke_dir: Path, tag: str):
    m, outs = _three_studies(tmp_path, stroke_dir)
    assert _signal_after_first_study(m, outs, tag, signal.SIGTERM) == 128 + signal.SIGTERM
    log = m.with_suffix(".log").read_text()
    assert "medfuse: error: batch stopped by SIGTERM" in log and "Traceback" not in log
    rep = json.loads((tmp_path / "cohort.report.json").read_text())
    assert rep["interrupted"] == "SIGTERM" and rep["finished"]
    for s in rep["studies"]:  # finished ones are complete, the others left nothing
        o = Path(s["out"])
        if s["status"] == "ok":
            assert_complete(o)
        else:
            assert s["status"] == "interrupted" and not o.exists(), s
    assert rep["counts"]["ok"] >= 1
    assert temp_leftovers(outs[0].parent) == []
