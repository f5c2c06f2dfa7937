"""Slice extraction keeps each slice's world position; StackSlices inverts it."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import torch

from medfuse.errors import GeometryError, InputError
from medfuse.transforms import (
    ExtractSlices,
    ExtractSlicesd,
    StackSlices,
    StackSlicesd,
    slice_axis_for,
)

LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


def test_axial_slices_of_phantom_ct_sit_at_their_files(ct, phantom_dir):
    sl = ExtractSlices("axial")(ct)
    assert tuple(sl.shape) == (91, 1, 512, 512)
    # independent: the files' own ImagePositionPatient, sorted along z
    hdrs = [
        pydicom.dcmread(p, stop_before_pixels=True)
        for p in sorted((phantom_dir / "CT_every4th").glob("*.dcm"))
    ]
    ipp = sorted((np.array(h.ImagePositionPatient, float) for h in hdrs), key=lambda p: p[2])
    np.testing.assert_allclose(sl.meta["slice_positions"], LPS_TO_RAS * np.array(ipp), atol=1e-4)
    # axial layout of an LPS series is the DICOM display layout: slice n == pixel array of file n
    by_z = sorted(hdrs, key=lambda h: float(h.ImagePositionPatient[2]))
    ds = pydicom.dcmread(by_z[10].filename)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(sl[10, 0].numpy(), hu, atol=1e-3)


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_display_layout_is_radiological(t1, ct, axis):
    """Rows run anterior->posterior (axial) or superior->inferior; columns run right->left
    (axial, coronal) or anterior->posterior (sagittal), whatever the volume's own axis order."""
    expect = {
        "axial": ((1, -1), (0, -1)),
        "coronal": ((2, -1), (0, -1)),
        "sagittal": ((2, -1), (1, -1)),
    }[axis]
    for vol in (t1, ct):
        sl = ExtractSlices(axis)(vol)
        aff = sl.meta["slice_affine"]
        for col, (world, sign) in enumerate(expect):
            d = aff[:3, col] / np.linalg.norm(aff[:3, col])
            assert np.argmax(np.abs(d)) == world
            assert np.sign(d[world]) == sign


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal", 0, 1, 2])
def test_every_pixel_world_position_matches_volume(t1, axis):
    sl = ExtractSlices(axis)(t1)
    s_aff = sl.meta["slice_affine"]
    v_aff = t1.affine.numpy()
    inv = np.linalg.inv(v_aff)
    rng = np.random.default_rng(0)
    n, _, h, w = sl.shape
    pts = np.stack([rng.integers(0, h, 500), rng.integers(0, w, 500), rng.integers(0, n, 500)], 1)
    world = pts @ s_aff[:3, :3].T + s_aff[:3, 3]
    vox = np.rint(world @ inv[:3, :3].T + inv[:3, 3]).astype(int)
    np.testing.assert_allclose(vox @ v_aff[:3, :3].T + v_aff[:3, 3], world, atol=1e-4)
    got = sl.numpy()[pts[:, 2], 0, pts[:, 0], pts[:, 1]]
    np.testing.assert_array_equal(got, t1[0].numpy()[tuple(vox.T)])


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal", 1])
def test_stack_slices_inverts_extract(t1, axis):
    sl = ExtractSlices(axis)(t1)
    back = StackSlices()(sl)
    assert torch.equal(back.as_tensor(), t1.as_tensor())
    np.testing.assert_allclose(back.affine.numpy(), t1.affine.numpy())
    # a plain network output (no meta) restacks with the slices' meta as reference
    fused = sl.as_tensor() * 0.5
    back2 = StackSlices()(fused, sl)
    torch.testing.assert_close(back2.as_tensor(), t1.as_tensor() * 0.5)
    assert back2.meta["source_format"] == "nifti"


def test_stack_with_volume_reference_and_subset(t1):
    sl = ExtractSlices("axial")(t1)
    back = StackSlices(axis="axial")(sl.as_tensor(), t1)
    assert torch.equal(back.as_tensor(), t1.as_tensor())
    sub = ExtractSlices("axial", indices=[10, 20, 30])(t1)
    assert sub.shape[0] == 3
    s = sub.meta["slice_axis"]
    np.testing.assert_allclose(
        sub.meta["slice_positions"][1] - sub.meta["slice_positions"][0],
        t1.affine.numpy()[:3, s] * 10,
        atol=1e-6,
    )
    back = StackSlices(fill_value=-1.0)(sub)
    assert float(back.min()) == -1.0
    idx = [slice(None)] * 4
    idx[1 + s] = 20
    assert torch.equal(back[tuple(idx)].as_tensor(), t1[tuple(idx)].as_tensor())


def test_dictionary_twins(t1, t2):
    d = ExtractSlicesd(keys=["a", "b"], axis="coronal")({"a": t1, "b": t2})
    assert d["a"].shape == d["b"].shape
    d["fused"] = (d["a"].as_tensor() + d["b"].as_tensor()) / 2
    out = StackSlicesd(keys=["fused"], ref_key="a")(d)
    assert tuple(out["fused"].shape) == tuple(t1.shape)


def test_axis_choice_and_errors(t1, ct):
    assert slice_axis_for(ct.affine, "axial") == 2
    assert slice_axis_for(ct.affine, "sagittal") == 0
    assert slice_axis_for(t1.affine, "coronal") == 1
    assert slice_axis_for(t1.affine, 2) == 2
    with pytest.raises(InputError):
        ExtractSlices("oblique")(t1)
    with pytest.raises(InputError):
        ExtractSlices("axial", indices=[9999])(t1)
    sl = ExtractSlices("axial")(t1)
    with pytest.raises(GeometryError):
        StackSlices()(sl.as_tensor()[:, :, :10], sl)
