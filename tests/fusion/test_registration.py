"""medfuse.registration on real volumes: recover a known rigid motion, transform files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medfuse.errors import InputError
from medfuse.registration import (
    field_of_view_overlap,
    matrix_to_transform,
    read_transform,
    register,
    transform_to_matrix,
    write_transform,
)


def _rigid(deg_z: float, deg_x: float, shift: tuple[float, float, float]) -> np.ndarray:
    cz, sz = np.cos(np.radians(deg_z)), np.sin(np.radians(deg_z))
    cx, sx = np.cos(np.radians(deg_x)), np.sin(np.radians(deg_x))
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    m = np.eye(4)
    m[:3, :3] = rz @ rx
    m[:3, 3] = shift
    return m


def test_register_recovers_a_known_rigid_motion(t1):
    # the same T1 "scanned" in a moved frame: world' = M @ world
    motion = _rigid(8.0, -5.0, (12.0, -7.0, 5.0))
    moved = MetaTensor(
        t1.as_tensor().clone(),
        affine=torch.as_tensor(motion @ t1.affine.numpy()),
        meta=dict(t1.meta),
    )
    res = register(t1, moved, "rigid")
    expect = np.linalg.inv(motion)  # moving world -> reference world
    # compare where it matters: points of the brain's bounding box move by < 1.5 mm
    aff = t1.affine.numpy()
    corners = np.array([[i, j, k, 1] for i in (0, 123) for j in (0, 159) for k in (0, 139)], float)
    world = (motion @ aff @ corners.T).T
    err = np.linalg.norm((res.matrix @ world.T).T[:, :3] - (expect @ world.T).T[:, :3], axis=1)
    assert err.max() < 1.5, err
    assert res.metric_final < res.metric_initial < 0
    assert res.kind == "rigid" and res.iterations > 0
    d = res.to_dict()
    assert d["metric_final"] == res.metric_final and np.asarray(d["matrix_ras"]).shape == (4, 4)


def test_transform_files_round_trip(tmp_path):
    m = _rigid(170.0, 3.0, (10.0, -20.0, 30.0))
    assert np.allclose(transform_to_matrix(matrix_to_transform(m)), m, atol=1e-9)
    p = write_transform(m, tmp_path / "t.tfm")
    text = p.read_text()
    assert "AffineTransform_double_3_3" in text
    assert np.allclose(read_transform(p).matrix, m, atol=1e-9)
    with pytest.raises(InputError, match="transform file not found"):
        read_transform(tmp_path / "none.tfm")
    (tmp_path / "junk.tfm").write_text("not a transform\n")
    with pytest.raises(InputError, match="junk.tfm: unreadable transform file"):
        read_transform(tmp_path / "junk.tfm")


def test_field_of_view_overlap(t1):
    assert field_of_view_overlap(t1, t1) == pytest.approx(1.0)
    far = np.eye(4)
    far[0, 3] = 500.0
    assert field_of_view_overlap(t1, t1, far) == 0.0
    half = np.eye(4)
    half[0, 3] = 62.0  # half the 124 mm width
    assert 0.4 < field_of_view_overlap(t1, t1, half) < 0.6
