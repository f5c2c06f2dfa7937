"""``medfuse info`` through click's CliRunner and as a subprocess, on real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner

from medfuse.cli import cli

REPO = Path(__file__).resolve().parents[2]


def test_info_dicom_series_text(phantom_dir: Path):
    ct = phantom_dir / "CT_every4th"
    res = CliRunner().invoke(cli, ["info", str(ct)])
    assert res.exit_code == 0, res.output
    out = res.output
    ds = pydicom.dcmread(next(ct.glob("*.dcm")), stop_before_pixels=True)
    assert "modality:           CT" in out
    assert "1 x 512 x 512 x 91" in out
    assert "0.3906 x 0.3906 x 2.5" in out
    assert "orientation:        LPS" in out
    assert str(ds.FrameOfReferenceUID) in out
    assert "series found:       1" in out
    assert "(100.00, 100.00, -122.25)" in out  # lowest slice's IPP (-100, -100, -122.25) in RAS
    # patient identity never printed
    for value in (str(ds.PatientName), str(ds.PatientID)):
        if value:
            assert value not in out


def test_info_json_several_inputs_and_formats(
    phantom_dir: Path, stroke_dir: Path, shared_data: Path
):
    mha = shared_data / "volumes" / "vhp_male_head" / "vm_head_mri.mha"
    res = CliRunner().invoke(
        cli, ["info", "--json", str(phantom_dir / "MR_T2"), str(stroke_dir / "T1.nii.gz"), str(mha)]
    )
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)
    assert [r["format"] for r in rec] == ["dicom-series", "nifti", "metaimage"]
    mr = rec[0]
    assert mr["modality"] == "MR" and mr["shape"] == [1, 512, 512, 94]
    assert mr["spacing"] == pytest.approx([0.5, 0.5, 2.5])
    assert mr["orientation"] == "LPS" and mr["series_count"] == 1
    assert mr["series_description"] == "T2"
    assert rec[1]["orientation"] == "RAS" and rec[1]["frame_of_reference_uid"] is None
    assert rec[2]["shape"] == [1, 256, 256, 33]


def test_info_folder_with_two_series(tmp_path: Path, phantom_dir: Path):
    for sub in ("CT_every4th", "MR_T2"):
        (tmp_path / sub).mkdir()
        for p in (phantom_dir / sub).glob("*.dcm"):
            os.symlink(p, tmp_path / sub / p.name)
    res = CliRunner().invoke(cli, ["info", "--json", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)
    assert sorted(r["modality"] for r in rec) == ["CT", "MR"]
    assert all(r["series_count"] == 2 for r in rec)


def test_info_errors_are_one_line(tmp_path: Path, shared_data: Path):
    res = CliRunner().invoke(cli, ["info", str(tmp_path / "missing.nii")])
    assert res.exit_code == 3
    assert res.output.strip().startswith("medfuse: error: ") and "missing.nii" in res.output
    nm = shared_data / "odd_dicom" / "wg04" / "NM1_UNC.dcm"
    res = CliRunner().invoke(cli, ["info", str(nm)])
    assert res.exit_code == 4
    assert "no geometry" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_info_subprocess(phantom_dir: Path, shared_data: Path):
    good = str(phantom_dir / "MR_T2")
    bad = str(shared_data / "odd_dicom" / "pydicom_pkg" / "MR_truncated.dcm")
    res = subprocess.run(
        [sys.executable, "-m", "medfuse", "info", "--json", good, bad],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 3, res.stderr
    assert "Traceback" not in res.stderr
    rec = json.loads(res.stdout)
    assert rec[0]["shape"] == [1, 512, 512, 94]
    assert "truncated pixel data" in rec[1]["error"] and rec[1]["exit_code"] == 3


def test_info_imports_no_torch_monai_or_simpleitk(phantom_dir: Path, stroke_dir: Path):
    """``medfuse info`` on DICOM and NIfTI starts at once: torch, MONAI and SimpleITK stay out."""
    code = (
        "import sys\n"
        "from medfuse.cli import main\n"
        "try:\n"
        f"    main(['info', {str(phantom_dir / 'MR_T2')!r}, {str(stroke_dir / 'T1.nii.gz')!r}])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "heavy = sorted(m for m in ('torch', 'monai', 'SimpleITK') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "1 x 512 x 512 x 94" in res.stdout  # the MR series was really read
    assert "HEAVY []" in res.stdout
