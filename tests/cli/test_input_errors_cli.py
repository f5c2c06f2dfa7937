"""One-line errors with the documented exit codes for bad input (issue 14, defect 11)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "medfuse" / "data" / "demo"


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("medfuse: error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def test_train_override_that_is_not_a_number(tmp_path: Path):
    proc = run_cli("train", "pipelines/ecfusion_ct-mri.json", "pipelines/cpu_quick.json",
                   "trainer#max_epochs=abc", "-o", str(tmp_path / "run"), timeout=600)
    assert proc.returncode == 3, proc.stderr  # old code: exit 1, ValueError traceback
    line = _one_error_line(proc.stderr)
    assert "trainer#max_epochs" in line and "'abc'" in line


def _without_root_powers() -> list[str]:
    """A prefix that makes root obey file permissions (drops the DAC override capabilities)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: chmod 000 cannot stop root")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_unreadable_input_is_an_input_error_not_a_usage_error(tmp_path: Path):
    ct = Path(shutil.copytree(DEMO / "ct", tmp_path / "ct"))
    ct.chmod(0)
    try:
        proc = run_cli("fuse", str(ct), str(DEMO / "mr"), "-o", str(tmp_path / "out"), "-q",
                       prefix=_without_root_powers())
    finally:
        ct.chmod(0o755)
    assert proc.returncode == 3, proc.stderr  # old code: click usage error, exit 2, 3 lines
    line = _one_error_line(proc.stderr)
    assert str(ct) in line and "Permission denied" in line


def test_all_nan_image_error_names_the_file(stroke_dir: Path, tmp_path: Path):
    t1 = nib.load(stroke_dir / "T1.nii.gz")
    nan = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(np.full(t1.shape, np.nan, np.float32), t1.affine), nan)
    proc = run_cli("fuse", str(nan), str(stroke_dir / "FLAIR.nii.gz"), "-o",
                   str(tmp_path / "out"), "-q", "--register", "none")
    assert proc.returncode == 3, proc.stderr
    line = _one_error_line(proc.stderr)
    assert str(nan) in line and "NaN" in line  # old code: no file named


def test_mixed_series_hint_names_the_fuse_flags(tmp_path: Path):
    both = tmp_path / "both"
    shutil.copytree(DEMO / "ct", both / "ct")
    shutil.copytree(DEMO / "mr", both / "mr")
    proc = run_cli("fuse", str(both), str(DEMO / "mr"), "-o", str(tmp_path / "out"), "-q")
    assert proc.returncode == 3, proc.stderr
    line = _one_error_line(proc.stderr)
    assert "--series-a/--series-b" in line and "(--series)" not in line


class _Payload:
    """A pickle that would call a function when loaded unsafely."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_refused_weights_give_the_reason_not_torchs_advice(tmp_path: Path):
    import torch

    bad = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": _Payload()}, bad)
    proc = run_cli("fuse", str(DEMO / "ct"), str(DEMO / "mr"), "-o", str(tmp_path / "out"),
                   "-q", "--method", "ecfusion", "--weights", str(bad))
    assert proc.returncode == 6, proc.stderr
    line = _one_error_line(proc.stderr)
    assert "weights_only` set to `False" not in line and "will likely succeed" not in line
    assert "GLOBAL" in line and "posix" in line and str(bad) in line


def test_error_starts_on_its_own_line_after_a_progress_bar(tmp_path: Path):
    ct = Path(shutil.copytree(DEMO / "ct", tmp_path / "ct"))
    files = sorted(ct.glob("*.dcm"))
    files[len(files) // 2].unlink()  # a missing slice: uneven spacing, found while loading
    proc = run_cli("fuse", str(ct), str(DEMO / "mr"), "-o", str(tmp_path / "out"))
    assert proc.returncode == 4, proc.stderr
    assert "load" in proc.stderr  # the bar was drawn (stderr is not a terminal here)
    line = _one_error_line(proc.stderr)  # old code: "load ... 0/2 [...]medfuse: error: ..."
    assert "uneven slice spacing" in line
