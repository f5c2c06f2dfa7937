"""Fixtures of the MONAI integration tests: a small real NIfTI pair, random weights, the reference.

The pair is cut from the co-registered stroke set: A = T1 axial slices 62..69; B = FLAIR slices
64..69 resampled (trilinear) to 1.5 mm voxels in-plane, so A sits on a different grid and is
interpolated onto B's, as in real use, and the output's affine must be B's. The reference output
is ``medfuse fuse A B --method network --weights W --register none --format nifti``, computed
once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import random_ecfusion, run_cli


@pytest.fixture(scope="session")
def nifti_pair(tmp_path_factory: pytest.TempPathFactory, stroke_dir: Path) -> tuple[Path, Path]:
    """(A, B): T1 slices 62..69 and FLAIR slices 64..69 on a 1.5 mm in-plane grid, as NIfTI
    files."""
    import nibabel as nib
    import numpy as np
    from nibabel.processing import resample_from_to

    root = tmp_path_factory.mktemp("pair")
    a, b = root / "t1.nii.gz", root / "flair.nii.gz"
    nib.save(nib.load(stroke_dir / "T1.nii.gz").slicer[:, :, 62:70], a)
    flair = nib.load(stroke_dir / "FLAIR.nii.gz").slicer[:, :, 64:70]
    grid = flair.affine @ np.diag([1.5, 1.5, 1.0, 1.0])
    nib.save(resample_from_to(flair, ((83, 107, 6), grid), order=1), b)
    return a, b


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random ECFusion for ct-mri, written with save_weights."""
    return random_ecfusion(tmp_path_factory.mktemp("weights") / "ecfusion-ct-mri.safetensors",
                           "ct-mri", 3)


@pytest.fixture(scope="session")
def reference_fused(tmp_path_factory: pytest.TempPathFactory, nifti_pair, weights_file) -> Path:
    """``fused.nii.gz`` of medfuse's own network fusion of the pair with ``weights_file``."""
    out = tmp_path_factory.mktemp("ref") / "fused"
    a, b = nifti_pair
    res = run_cli("fuse", str(a), str(b), "-o", str(out), "--method", "network", "--weights",
                  str(weights_file), "--register", "none", "--format", "nifti", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    return out / "fused.nii.gz"
