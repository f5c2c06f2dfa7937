"""The patient check of ``medfuse fuse`` (issue 14, defect 7): A and B must be one patient.

The demo pair (medfuse/data/demo) is one patient; a copy of its MR with another PatientID or
PatientBirthDate stands for another patient's scan.
"""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from medfuse.errors import InputError
from medfuse.fusion.pipeline import FuseOptions, fuse_volumes
from tests.helpers import run_cli

DEMO = Path(__file__).resolve().parents[2] / "medfuse" / "data" / "demo"
OTHER_ID = "OTHER-PATIENT-4711"


def _relabelled_mr(dst: Path, **values: str) -> Path:
    """A copy of the demo MR series with the given patient attributes replaced in every file."""
    dst.mkdir()
    for f in sorted((DEMO / "mr").glob("*.dcm")):
        ds = pydicom.dcmread(f)
        for key, value in values.items():
            setattr(ds, key, value)
        ds.save_as(dst / f.name)
    return dst


def _demo_patient_id() -> str:
    return str(pydicom.dcmread(next((DEMO / "ct").glob("*.dcm")), stop_before_pixels=True)
               .PatientID)


def _fast(**kw) -> FuseOptions:
    return FuseOptions(method="average", register="none", formats=("nifti",), progress=False,
                       **kw)


def test_other_patient_is_refused_in_one_line_without_the_ids(tmp_path: Path):
    mr = _relabelled_mr(tmp_path / "mr", PatientID=OTHER_ID)
    proc = run_cli("fuse", str(DEMO / "ct"), str(mr), "-o", str(tmp_path / "out"), "-q")
    assert proc.returncode == 3, proc.stderr  # old code: exit 0, filed under the MR's patient
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medfuse: error: ")
    assert "different patients (PatientID differ)" in lines[0]
    assert "--allow-different-patients" in lines[0]
    assert OTHER_ID not in proc.stderr and _demo_patient_id() not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_allow_different_patients_records_the_decision(tmp_path: Path):
    mr = _relabelled_mr(tmp_path / "mr", PatientID=OTHER_ID)
    res = fuse_volumes(DEMO / "ct", mr, tmp_path / "out", _fast(allow_different_patients=True))
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["patient_check"] == {"status": "allowed-different", "compared": ["PatientID"],
                                    "differ": ["PatientID"]}
    assert res.run["patient_check"] == run["patient_check"]
    text = (tmp_path / "out" / "run.json").read_text()
    assert OTHER_ID not in text and _demo_patient_id() not in text


def test_same_patient_is_checked_and_recorded(tmp_path: Path):
    fuse_volumes(DEMO / "ct", DEMO / "mr", tmp_path / "out", _fast())
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["patient_check"] == {"status": "matched", "compared": ["PatientID"]}
    assert _demo_patient_id() not in (tmp_path / "out" / "run.json").read_text()


def test_birth_dates_are_compared_when_both_have_one(tmp_path: Path):
    mr_a = _relabelled_mr(tmp_path / "mr_a", PatientBirthDate="19600101")
    mr_b = _relabelled_mr(tmp_path / "mr_b", PatientBirthDate="19610202")
    with pytest.raises(InputError, match=r"PatientBirthDate differ"):
        fuse_volumes(mr_a, mr_b, tmp_path / "out", _fast())
    # only one birth date known: PatientID alone decides
    fuse_volumes(DEMO / "ct", mr_a, tmp_path / "out2", _fast())
    run = json.loads((tmp_path / "out2" / "run.json").read_text())
    assert run["patient_check"]["status"] == "matched"
    assert "19600101" not in (tmp_path / "out2" / "run.json").read_text()


def test_volumes_without_patient_identity_are_not_checkable(stroke_dir: Path, tmp_path: Path):
    fuse_volumes(stroke_dir / "T1.nii.gz", stroke_dir / "FLAIR.nii.gz", tmp_path / "out", _fast())
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["patient_check"]["status"] == "not checkable"


@pytest.mark.parametrize("value,expected", [("yes", True), ("true", True), ("0", False),
                                            (True, True)])
def test_batch_manifest_takes_the_switch(value, expected):
    from medfuse.batch.options import convert_option

    assert convert_option("allow-different-patients", value) == (
        "allow_different_patients", expected)
    assert convert_option("skip_unreadable", value) == ("skip_unreadable", expected)
