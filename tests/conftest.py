"""Shared fixtures: the real data in ../shared/data (see its README)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDFUSE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real test data (``../shared/data`` beside the checkout)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder not found: {SHARED_DATA} (set MEDFUSE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def phantom_dir(shared_data: Path) -> Path:
    """The MRI-DIR porcine phantom: CT_every4th/ and MR_T2/ DICOM series."""
    return shared_data / "volumes" / "mridir_phantom_ct_mr"


@pytest.fixture(scope="session")
def stroke_dir(shared_data: Path) -> Path:
    """Co-registered T1/T2/FLAIR NIfTI of a stroke patient."""
    return shared_data / "volumes" / "mit_mr_nifti" / "stroke"


@pytest.fixture(scope="session")
def harvard_dir(shared_data: Path) -> Path:
    """2D Harvard atlas training pairs: CT-MRI, PET-MRI, SPECT-MRI."""
    return shared_data / "harvard"
