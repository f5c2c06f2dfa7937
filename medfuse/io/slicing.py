"""Slice geometry: how a volume (I, J, K) with a RAS affine is cut into displayable 2D slices.

Pure NumPy (no torch, no MONAI): :class:`medfuse.transforms.ExtractSlices` and
:class:`~medfuse.transforms.StackSlices` apply this geometry to tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medfuse.errors import GeometryError, InputError

__all__ = ["SLICE_KEYS", "slice_axis_for", "slice_geometry"]

#: The keys of :func:`slice_geometry`'s result (ExtractSlices puts them in the slices' meta).
SLICE_KEYS: tuple[str, ...] = (
    "slice_axis",
    "slice_inplane",
    "slice_flip",
    "slice_indices",
    "slice_positions",
    "slice_affine",
    "volume_affine",
    "volume_shape",
)

_VIEW_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}  # RAS world axis normal to the view
# In-plane display layout per view: (world axis, sign) that rows (H) and columns (W) run along.
# Radiological convention: axial rows run anterior->posterior, columns right->left; coronal and
# sagittal rows run superior->inferior; coronal columns right->left, sagittal anterior->posterior.
_VIEW_LAYOUT = {
    "axial": ((1, -1.0), (0, -1.0)),
    "coronal": ((2, -1.0), (0, -1.0)),
    "sagittal": ((2, -1.0), (1, -1.0)),
}


def _as_affine(affine: Any) -> np.ndarray:
    """A (4, 4) float64 array from a NumPy array or a (CPU or device) torch tensor."""
    if hasattr(affine, "detach"):
        affine = affine.detach().cpu().numpy()
    return np.asarray(affine, dtype=np.float64)


def slice_axis_for(affine: Any, axis: str | int) -> int:
    """Voxel axis (0, 1 or 2) to slice along.

    Args:
        affine: (4, 4) voxel -> RAS affine (array or tensor).
        axis: "axial", "coronal", "sagittal" (the voxel axis whose direction is closest to the
            world S, A or R axis) or a voxel axis 0/1/2.
    """
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        if int(axis) not in (0, 1, 2):
            raise InputError(f"slice axis must be 0, 1 or 2, got {axis}")
        return int(axis)
    name = str(axis).lower()
    if name in ("0", "1", "2"):
        return int(name)
    if name not in _VIEW_AXES:
        raise InputError(f"unknown slice axis '{axis}' (axial, coronal, sagittal, 0, 1, 2)")
    a = _as_affine(affine)[:3, :3]
    dirs = np.abs(a / np.linalg.norm(a, axis=0, keepdims=True))
    world = _VIEW_AXES[name]
    order = np.argsort(-dirs[world])
    return int(order[0])


def slice_geometry(
    affine: Any,
    shape: Sequence[int],
    axis: str | int = "axial",
    indices: Sequence[int] | None = None,
) -> dict[str, Any]:
    """How :class:`~medfuse.transforms.ExtractSlices` cuts a volume of spatial ``shape`` (I, J, K).

    Args:
        affine: (4, 4) voxel -> RAS affine of the volume (array or tensor).
        shape: spatial shape (I, J, K).
        axis: "axial", "coronal", "sagittal" (radiological layout) or a voxel axis 0/1/2.
        indices: voxel indices along the slice axis (default: all, in order).

    Returns:
        dict with "slice_axis", "slice_inplane", "slice_flip", "slice_indices",
        "slice_positions" ((N, 3) RAS mm of each slice's pixel (0, 0)), "slice_affine"
        ((4, 4): (h, w, n) -> RAS mm), "volume_affine", "volume_shape".
    """
    aff = _as_affine(affine)
    shape = tuple(int(v) for v in shape)
    if len(shape) != 3:
        raise GeometryError(f"expected a 3D spatial shape, got {shape}")
    s = slice_axis_for(aff, axis)
    inplane = [a for a in (0, 1, 2) if a != s]
    flips = [False, False]
    if isinstance(axis, str) and axis.lower() in _VIEW_LAYOUT:
        layout = _VIEW_LAYOUT[axis.lower()]
        dirs = aff[:3, :3] / np.linalg.norm(aff[:3, :3], axis=0, keepdims=True)
        h_world = layout[0][0]  # the in-plane voxel axis closest to the rows' world axis is H
        if abs(dirs[h_world, inplane[1]]) > abs(dirs[h_world, inplane[0]]):
            inplane = inplane[::-1]
        for n, (world, sign) in enumerate(layout):
            flips[n] = bool(dirs[world, inplane[n]] * sign < 0)
    size = shape[s]
    idx = list(range(size)) if indices is None else [int(i) for i in indices]
    if not idx or any(i < 0 or i >= size for i in idx):
        raise InputError(f"slice indices must be a non-empty subset of 0..{size - 1}")
    corner = np.zeros(3)
    sl_aff = np.eye(4)
    for col, (ax, flip) in enumerate(zip(inplane, flips)):
        sl_aff[:3, col] = aff[:3, ax] * (-1.0 if flip else 1.0)
        corner[ax] = shape[ax] - 1 if flip else 0
    corner_world = aff[:3, :3] @ corner + aff[:3, 3]
    positions = np.stack([corner_world + aff[:3, s] * i for i in idx])
    step = idx[1] - idx[0] if len(idx) > 1 else 1
    sl_aff[:3, 2] = aff[:3, s] * step  # exact for evenly spaced indices; positions are always exact
    sl_aff[:3, 3] = positions[0]
    return {
        "slice_axis": s,
        "slice_inplane": tuple(inplane),
        "slice_flip": tuple(flips),
        "slice_indices": idx,
        "slice_positions": positions,
        "slice_affine": sl_aff,
        "volume_affine": aff,
        "volume_shape": shape,
    }
