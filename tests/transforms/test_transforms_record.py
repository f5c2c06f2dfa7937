"""MONAI's record (``applied_operations``) survives medfuse's transforms; the slice cut inverts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Flip, Invertd
from monai.utils import TraceKeys, TransformBackends

from medfuse.io.slicing import SLICE_KEYS
from medfuse.transforms import (
    ExtractSlices,
    ExtractSlicesd,
    ResampleToReference,
    ResampleToReferenced,
    StackSlices,
    StackSlicesd,
    Window,
    Windowd,
)


def _names(x: MetaTensor) -> list[str]:
    return [op[TraceKeys.CLASS_NAME] for op in x.applied_operations]


def test_resample_keeps_earlier_record_and_adds_its_own(t1, t2):
    flip = Flip(spatial_axis=0)
    flipped = flip(t2)  # a MONAI transform applied before
    assert _names(flipped) == ["Flip"]
    out = ResampleToReference()(flipped, t1)
    assert _names(out) == ["Flip", "ResampleToReference"]
    entry = out.applied_operations[-1]
    assert tuple(entry[TraceKeys.ORIG_SIZE]) == tuple(t2.shape[1:])
    info = entry[TraceKeys.EXTRA_INFO]
    np.testing.assert_array_equal(info["src_affine"], flipped.affine.numpy())
    np.testing.assert_array_equal(info["dst_affine"], t1.affine.numpy())
    assert info["pre_affine"] is None and info["mode"] == "bilinear"
    assert _names(flipped) == ["Flip"]  # the input's own record is not changed
    assert out.applied_operations[0][TraceKeys.ID] == id(flip)  # the Flip's own entry


def test_window_records_its_bounds(t1):
    out = Window(level=100.0, width=50.0)(t1)
    assert _names(out) == ["Window"]
    assert out.applied_operations[-1][TraceKeys.EXTRA_INFO] == out.meta["window"]
    assert t1.applied_operations == []


def test_resampled_builds_its_transforms_once(t1, t2):
    r = ResampleToReferenced(keys=["a", "b"], ref_key="ref", mode=["bilinear", "nearest"])
    assert r.resamplers["b"].mode == "nearest"
    ids = set()
    for _ in range(2):
        out = r({"a": t2, "b": t2, "ref": t1})
        ids.add(out["a"].applied_operations[-1][TraceKeys.ID])
        assert out["b"].applied_operations[-1][TraceKeys.EXTRA_INFO]["mode"] == "nearest"
    assert ids == {id(r.resamplers["a"])}


def test_every_transform_declares_its_backend():
    for cls in (ResampleToReference, Window, ExtractSlices, StackSlices):
        assert cls.backend == [TransformBackends.TORCH], cls
    for cls in (ResampleToReferenced, Windowd, ExtractSlicesd, StackSlicesd):
        assert cls.backend == [TransformBackends.TORCH], cls


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("name", ["t1", "phantom_ct"])
def test_extract_slices_inverse_gives_back_the_volume(request, name, axis):
    vol = Window("mr")(request.getfixturevalue(name))  # a record entry before the cut
    cut = ExtractSlices(axis)
    sl = cut(vol)
    assert _names(sl) == ["Window", "ExtractSlices"]
    back = cut.inverse(sl)
    assert torch.equal(back.as_tensor(), vol.as_tensor())
    np.testing.assert_array_equal(back.affine.numpy(), vol.affine.numpy())
    assert _names(back) == ["Window"]
    assert not set(SLICE_KEYS) & set(back.meta)
    np.testing.assert_array_equal(back.meta["spatial_shape"], vol.shape[1:])
    # the explicit call agrees, and also takes the cut out of the record
    again = StackSlices()(cut(vol).as_tensor() * 2.0, cut(vol))
    assert torch.equal(again.as_tensor(), vol.as_tensor() * 2.0)
    assert _names(again) == ["Window"]


def test_inverse_of_a_subset_and_of_another_cut(t1):
    cut = ExtractSlices("axial", indices=[10, 20])
    sl = cut(t1)
    back = cut.inverse(sl)
    s = sl.meta["slice_axis"]
    idx = [slice(None)] * 4
    idx[1 + s] = 20
    assert torch.equal(back[tuple(idx)].as_tensor(), t1[tuple(idx)].as_tensor())
    idx[1 + s] = 11
    assert float(back[tuple(idx)].abs().max()) == 0.0
    with pytest.raises(RuntimeError):  # MONAI's check: the entry is another instance's
        ExtractSlices("axial").inverse(cut(t1))


def test_dictionary_cut_inverts_through_monai(t1, t2):
    ext = ExtractSlicesd(keys=["a", "b"], axis="coronal")
    pipeline = Compose([ext])
    d = pipeline({"a": t1, "b": t2})
    assert d["a"].ndim == 4 and d["a"].shape[0] == t1.shape[2]
    inv = pipeline.inverse(d)
    for key, vol in (("a", t1), ("b", t2)):
        assert torch.equal(inv[key].as_tensor(), vol.as_tensor())
        np.testing.assert_array_equal(inv[key].affine.numpy(), vol.affine.numpy())
        assert inv[key].applied_operations == []
    # a network output restacked with the input's record by MONAI's Invertd
    d = pipeline({"a": t1, "b": t2})
    d["fused"] = MetaTensor(d["a"].as_tensor() * 0.5)
    out = Invertd(keys="fused", transform=pipeline, orig_keys="a")(d)
    torch.testing.assert_close(out["fused"].as_tensor(), t1.as_tensor() * 0.5)
    np.testing.assert_array_equal(out["fused"].affine.numpy(), t1.affine.numpy())
