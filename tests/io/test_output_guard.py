"""The output guard (issue 14): medfuse never deletes or replaces what is not its own output.

Real runs of ``medfuse fuse`` on the bundled demo pair; disk full on a real, tiny tmpfs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medfuse.data import demo_pair
from medfuse.io.atomic import check_output_dir
from medfuse.io.guard import MARKER, is_uid
from tests.helpers import cli_env, demo_study, run_cli, tree_hashes

FAST = ("--method", "average", "--register", "none", "-q")


def _one_line_error(r: subprocess.CompletedProcess, code: int, *words: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code, r.stderr
    assert len(lines) == 1 and lines[0].startswith("medfuse: error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return demo_study(tmp_path / "x")


@pytest.mark.parametrize("out", ["x", "x/ct", "x/ct/sub", "xlink", "xlink/mr"])
def test_overwrite_never_touches_the_inputs(study: Path, out: str):
    (study.parent / "xlink").symlink_to(study)  # the same folder through a symlink
    before = tree_hashes(study)
    r = run_cli("fuse", str(study / "ct"), str(study / "mr"), "-o", str(study.parent / out),
                "--overwrite", *FAST)
    _one_line_error(r, 5, "input", "choose another folder")
    assert tree_hashes(study) == before
    assert not [p for p in study.parent.rglob(".*tmp-*")]


@pytest.mark.parametrize("out", [".", "..", "/"])
def test_current_folder_its_parents_and_the_root_are_refused(tmp_path: Path, out: str):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("mine\n")
    ct, mr = demo_pair()
    r = run_cli("fuse", str(ct), str(mr), "-o", out, "--overwrite", *FAST, cwd=work)
    _one_line_error(r, 5, "refusing")
    assert sorted(p.name for p in work.iterdir()) == ["keep.txt"]


def test_overwrite_replaces_only_a_folder_medfuse_marked(tmp_path: Path):
    ct, mr = demo_pair()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work\n")
    r = run_cli("fuse", str(ct), str(mr), "-o", str(foreign), "--overwrite", *FAST)
    _one_line_error(r, 5, "not a medfuse output", "remove it yourself")
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]

    out = tmp_path / "out"
    assert run_cli("fuse", str(ct), str(mr), "-o", str(out), *FAST).returncode == 0
    marker = json.loads((out / MARKER).read_text())
    assert set(marker) == {"tool", "version", "command", "created"}
    assert (marker["tool"], marker["command"]) == ("medfuse", "fuse")
    run = json.loads((out / "run.json").read_text())
    assert marker["version"] == run["versions"]["medfuse"]
    (out / MARKER).unlink()  # an output of a medfuse older than the marker: run.json names it
    assert check_output_dir(out, overwrite=True) == out
    (out / "run.json").write_text(json.dumps({"note": "not medfuse's"}))
    with pytest.raises(Exception, match="not a medfuse output"):
        check_output_dir(out, overwrite=True)


def test_sigkilled_run_leaves_a_temporary_folder_the_next_run_removes(tmp_path: Path):
    ct, mr = demo_pair()
    out = tmp_path / "out"
    stranger = tmp_path / ".out.tmp-mine"  # same name pattern, not medfuse's: kept
    stranger.mkdir()
    (stranger / "data.txt").write_text("mine\n")
    proc = subprocess.Popen([sys.executable, "-m", "medfuse", "fuse", str(ct), str(mr), "-o",
                             str(out), *FAST], env=cli_env(), stderr=subprocess.DEVNULL)
    try:
        for _ in range(6000):  # wait for the state (the marked temporary folder), not a time
            temps = [p for p in tmp_path.glob(".out.tmp-*") if (p / MARKER).is_file()]
            if temps or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert temps, "the run never created its temporary folder"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and temps[0].is_dir() and not out.exists()
    assert run_cli("fuse", str(ct), str(mr), "-o", str(out), *FAST).returncode == 0
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".out.tmp-mine", "out"] and (stranger / "data.txt").is_file()


def _tmpfs(folder: Path, size: str) -> None:
    folder.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")


@pytest.mark.parametrize("fmt,name", [("dicom", "SC_0"), ("nifti", "fused.nii.gz"),
                                      ("png", "preview.png")])
def test_disk_full_is_one_line_exit_5_and_leaves_nothing(tmp_path: Path, fmt: str, name: str):
    disk = tmp_path / "disk"
    _tmpfs(disk, "600k")  # a real file system that fills up during the write
    try:
        ct, mr = demo_pair()
        r = run_cli("fuse", str(ct), str(mr), "-o", str(disk / "out"), "--format", fmt, *FAST)
        _one_line_error(r, 5, str(disk / "out"), name, "No space left on device")
        assert ".tmp-" not in r.stderr  # names the real output, not the temporary folder
        assert list(disk.iterdir()) == []  # nothing partial
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_uid_check():
    good = ["1.2.840.10008.5.1.4.1.1.7", "0", "1.0.3", "9" * 64]
    bad = ["", "1/../../victim", "1..2", ".1", "1.", "01.2", "1.2a", "9" * 65, "../x", "1.2 "]
    assert [is_uid(u) for u in good] == [True] * len(good)
    assert [is_uid(u) for u in bad] == [False] * len(bad)


def test_committed_bundles_count_as_medfuse_outputs(tmp_path: Path):
    """Bundles of an export-bundle older than the marker may still be regenerated in place."""
    from tests.helpers import REPO

    copy = tmp_path / "b"
    shutil.copytree(REPO / "pipelines" / "bundles" / "ecfusion_ct-mri", copy)
    assert not (copy / MARKER).exists() and check_output_dir(copy, overwrite=True) == copy
    (copy / "configs" / "metadata.json").write_text("{}")
    with pytest.raises(Exception, match="not a medfuse output"):
        check_output_dir(copy, overwrite=True)
