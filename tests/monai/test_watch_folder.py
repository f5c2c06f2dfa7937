"""examples/watch_folder.py --once on real study folders: fused atomically, incomplete and broken
studies left alone or reported, a rerun does nothing twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

from tests.helpers import run_python

SCRIPT = "examples/watch_folder.py"


def test_watch_folder_once(tmp_path: Path, nifti_pair):
    a, b = nifti_pair
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    for name in ("study1", "incomplete", "broken"):
        (inbox / name).mkdir(parents=True)
    shutil.copy(a, inbox / "study1" / "1_t1.nii.gz")
    shutil.copy(b, inbox / "study1" / "2_flair.nii.gz")
    shutil.copy(a, inbox / "incomplete" / "1_t1.nii.gz")
    shutil.copy(b, inbox / "broken" / "2_flair.nii.gz")
    (inbox / "broken" / "1_t1.nii.gz").write_bytes(b"truncated copy")
    args = [SCRIPT, str(inbox), str(outbox), "--once", "--settle", "0", "--method", "average",
            "--format", "nifti", "--device", "cpu"]

    res = run_python(*args)
    assert res.returncode == 1, res.stderr  # one study failed
    assert "study1: fused into" in res.stdout and "broken: failed: " in res.stdout, res.stdout
    assert "Traceback" not in res.stdout + res.stderr
    assert sorted(p.name for p in outbox.iterdir()) == ["broken.error.txt", "study1"]
    assert "1_t1.nii.gz" in (outbox / "broken.error.txt").read_text()
    run = json.loads((outbox / "study1" / "run.json").read_text())
    assert run["method"]["method"] == "average" and run["reference_grid"] == "b"
    fused = nib.load(outbox / "study1" / "fused.nii.gz")
    np.testing.assert_allclose(fused.affine, nib.load(b).affine, atol=1e-5)
    data = np.asarray(fused.dataobj)
    assert data.shape == (83, 107, 6) and data.dtype == np.uint8 and data.max() > 100

    # rerun: nothing left to do (done study kept, the failure not retried with the same files)
    before = (outbox / "study1" / "fused.nii.gz").stat().st_mtime_ns
    res = run_python(*args)
    assert res.returncode == 0 and res.stdout == "", res.stdout + res.stderr
    assert (outbox / "study1" / "fused.nii.gz").stat().st_mtime_ns == before

    # the incomplete study gets its second series, the broken one a good copy: both fused
    shutil.copy(b, inbox / "incomplete" / "2_flair.nii.gz")
    shutil.copy(a, inbox / "broken" / "1_t1.nii.gz")
    res = run_python(*args)
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted(p.name for p in outbox.iterdir()) == ["broken", "incomplete", "study1"]
    # no temporary leftovers (the marker of a medfuse output is not one)
    assert not [p for p in outbox.rglob(".*") if p.name != ".medfuse-output"]


def test_watch_folder_leaves_studies_still_being_copied(tmp_path: Path, nifti_pair):
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    (inbox / "s").mkdir(parents=True)
    for src, name in zip(nifti_pair, ("1_t1.nii.gz", "2_flair.nii.gz")):
        shutil.copy(src, inbox / "s" / name)
    res = run_python(SCRIPT, str(inbox), str(outbox), "--once", "--settle", "3600",
                     "--method", "average")
    assert res.returncode == 0 and list(outbox.iterdir()) == []
    res = run_python(SCRIPT, str(tmp_path / "nope"), str(outbox), "--once")
    assert res.returncode == 3 and res.stderr.strip() == (
        f"watch_folder: error: {tmp_path / 'nope'}: no such folder")
