"""BT.601 YCbCr and DICOM palettes on real images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medfuse.errors import InputError
from medfuse.metrics import to_luma
from medfuse.transforms.colour import (
    PALETTE_UIDS,
    PALETTES,
    colourise,
    palette_lut,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)


@pytest.fixture(scope="module")
def pet_rgb(harvard_dir):
    p = sorted((harvard_dir / "PET-MRI" / "PET").glob("*.png"))[3]
    arr = np.asarray(Image.open(p).convert("RGB"))
    return torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1)[None]  # (1, 3, H, W)


def test_ycbcr_round_trip_and_luma(pet_rgb):
    ycc = rgb_to_ycbcr(pet_rgb)
    assert ycc.shape == pet_rgb.shape
    assert torch.allclose(ycbcr_to_rgb(ycc), pet_rgb, atol=1e-5)
    # Y is the BT.601 luma medfuse.metrics scores colour images on
    luma = to_luma((pet_rgb[0] * 255).numpy()) / 255.0
    assert np.allclose(ycc[0, 0].numpy(), luma, atol=1e-5)
    # JPEG (full range) reference values: pure red
    red = torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1)
    y, cb, cr = rgb_to_ycbcr(red).flatten().tolist()
    assert y == pytest.approx(0.299) and cb == pytest.approx(0.5 - 0.168736, abs=1e-5)
    assert cr == pytest.approx(1.0, abs=1e-6)


def test_palettes_are_pydicoms(t1_volume_slice):
    from pydicom.pixels import apply_color_lut

    x = t1_volume_slice  # (1, H, W) in [0, 1]
    idx = (x[0] * 255).round().to(torch.uint8).numpy()
    for name in ("PET", "HOT_IRON", "FALL"):
        ref = apply_color_lut(idx, palette=PALETTE_UIDS[name])
        out = colourise(x, name)
        assert out.shape == (3, *x.shape[1:])
        assert np.array_equal((out * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), ref)
    # the UIDs name the palettes pydicom ships (its FALL/WINTER name lookup is swapped)
    from pydicom import dcmread
    from pydicom.data import get_palette_files

    for name, fname in (("FALL", "fall.dcm"), ("WINTER", "winter.dcm"), ("PET", "pet.dcm")):
        ds = dcmread(get_palette_files(fname)[0])
        assert str(ds.SOPInstanceUID) == PALETTE_UIDS[name]
        assert str(ds.ContentLabel).startswith(name)
    assert len(PALETTES) == 8 and palette_lut("hot-iron").shape == (256, 3)
    with pytest.raises(InputError, match="unknown palette 'RAINBOW'"):
        palette_lut("RAINBOW")


@pytest.fixture(scope="module")
def t1_volume_slice(stroke_dir):
    from medfuse.io import load_volume
    from medfuse.transforms import Window

    vol = Window("mr")(load_volume(stroke_dir / "T1.nii.gz"))
    return vol[:, :, :, 70].as_tensor()
