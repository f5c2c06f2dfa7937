"""Physical-space resampling on the co-registered stroke T1/T2 pair and the phantom."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy.ndimage import map_coordinates

from medfuse.errors import GeometryError
from medfuse.transforms import ResampleToReference, ResampleToReferenced


def _rotation(deg_x: float, deg_z: float) -> np.ndarray:
    ax, az = np.deg2rad([deg_x, deg_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ rx


@pytest.fixture(scope="module")
def moved_grid(t1):
    """T1's grid rotated 12/-8 degrees about its centre, shifted (7, -4, 3) mm, 1.25 mm voxels."""
    aff = t1.affine.numpy()
    shape = np.array(t1.shape[1:])
    centre = aff[:3, :3] @ ((shape - 1) / 2) + aff[:3, 3]
    m = np.eye(4)
    m[:3, :3] = _rotation(12.0, -8.0)
    m[:3, 3] = centre - m[:3, :3] @ centre + np.array([7.0, -4.0, 3.0])
    new = m @ aff
    new[:3, :3] = new[:3, :3] * 1.25  # 1.25 mm voxels
    new_shape = tuple(int(v) for v in np.ceil(shape / 1.25))
    new[:3, 3] = centre + np.array([7.0, -4.0, 3.0]) - new[:3, :3] @ ((np.array(new_shape) - 1) / 2)
    return MetaTensor(
        torch.zeros((1, *new_shape)),
        affine=torch.as_tensor(new),
        meta={"source_path": "moved-grid"},
    )


def test_world_point_samples_same_tissue(t2, moved_grid):
    """Each output voxel holds T2's value at that voxel's world position (independent check with
    scipy on T2's own affine)."""
    out = ResampleToReference()(t2, moved_grid)
    assert out.shape[1:] == moved_grid.shape[1:]
    np.testing.assert_allclose(out.affine.numpy(), moved_grid.affine.numpy())
    assert out.meta["resampled_to"] == "moved-grid"
    assert out.meta["source_format"] == "nifti"  # moving image's own meta kept
    rng = np.random.default_rng(0)
    vox = rng.integers(0, np.array(out.shape[1:]), size=(3000, 3))
    world = vox @ moved_grid.affine.numpy()[:3, :3].T + moved_grid.affine.numpy()[:3, 3]
    inv = np.linalg.inv(t2.affine.numpy())
    src = world @ inv[:3, :3].T + inv[:3, 3]
    inside = np.all((src >= 0) & (src <= np.array(t2.shape[1:]) - 1), axis=1)
    assert inside.sum() > 1000
    expected = map_coordinates(t2[0].numpy(), src[inside].T, order=1)
    got = out[0].numpy()[tuple(vox[inside].T)]
    np.testing.assert_allclose(got, expected, atol=0.5)  # 8-bit data, bilinear both ways


def test_round_trip_through_moved_grid_keeps_t1_t2_registration(t1, t2, moved_grid):
    """T2 -> moved grid -> T1 grid stays on T1's anatomy (the pair is co-registered)."""
    there = ResampleToReference()(t2, moved_grid)
    back = ResampleToReference()(there, t1)
    a, b = back[0].numpy(), t2[0].numpy()
    brain = (t1[0].numpy() > 0) & (b > 0)
    # interior voxels (away from the moved grid's border, which cuts some of the head)
    valid = brain & (a > 0)
    assert valid.sum() > 0.8 * brain.sum()
    r = np.corrcoef(a[valid], b[valid])[0, 1]
    assert r > 0.95
    assert np.mean(np.abs(a[valid] - b[valid])) < 0.05 * b[valid].max()
    # a deliberately misaligned copy (3 voxels off) is clearly worse: the test can fail
    shifted = np.roll(b, 3, axis=0)
    r_bad = np.corrcoef(a[valid], shifted[valid])[0, 1]
    assert r_bad < r - 0.05


def test_t1_and_t2_stay_aligned_on_the_moved_grid(t1, t2, moved_grid):
    t1m = ResampleToReference()(t1, moved_grid)[0].numpy()
    t2m = ResampleToReference()(t2, moved_grid)[0].numpy()
    m1, m2 = t1m > 10, t2m > 10
    dice = 2 * (m1 & m2).sum() / (m1.sum() + m2.sum())
    o1, o2 = t1[0].numpy() > 10, t2[0].numpy() > 10
    dice_orig = 2 * (o1 & o2).sum() / (o1.sum() + o2.sum())
    assert dice == pytest.approx(dice_orig, abs=0.02)


def test_pre_affine_applies_world_transform(t2):
    """pre_affine maps moving world -> reference world: a +10 mm z shift moves content up 10 mm."""
    shift = np.eye(4)
    shift[:3, 3] = [0.0, 0.0, 10.0]
    out = ResampleToReference()(t2, t2, pre_affine=shift)
    aff = t2.affine.numpy()
    rng = np.random.default_rng(1)
    vox = rng.integers(0, np.array(t2.shape[1:]), size=(3000, 3))
    world = vox @ aff[:3, :3].T + aff[:3, 3]
    inv = np.linalg.inv(aff)
    src = (world - [0.0, 0.0, 10.0]) @ inv[:3, :3].T + inv[:3, 3]
    inside = np.all((src >= 0) & (src <= np.array(t2.shape[1:]) - 1), axis=1)
    expected = map_coordinates(t2[0].numpy(), src[inside].T, order=1)
    got = out[0].numpy()[tuple(vox[inside].T)]
    np.testing.assert_allclose(got, expected, atol=0.5)
    assert np.abs(got - t2[0].numpy()[tuple(vox[inside].T)]).mean() > 1.0  # it did move
    np.testing.assert_allclose(out.meta["pre_affine"], shift)


def test_phantom_mr_onto_ct_grid(ct, phantom_dir):
    from medfuse.io import load_volume

    mr = load_volume(phantom_dir / "MR_T2")
    data = ResampleToReferenced(keys="mr", ref_key="ct")({"ct": ct, "mr": mr})
    out = data["mr"]
    assert tuple(out.shape) == tuple(ct.shape)
    np.testing.assert_allclose(out.affine.numpy(), ct.affine.numpy())
    assert out.meta["modality"] == "MR"
    assert out.meta["frame_of_reference_uid"] == mr.meta["frame_of_reference_uid"]  # not aligned
    assert float(out.max()) > 0  # overlapping fields of view in scanner coordinates


def test_rejects_non_volumes(t1):
    with pytest.raises(GeometryError):
        ResampleToReference()(t1[0], t1)
