"""Affine helpers: DICOM patient geometry (LPS) to the RAS affines medfuse and MONAI use.

Every medfuse volume carries a 4x4 float64 affine mapping a voxel index ``(i, j, k)`` to a RAS world
position in millimetres. DICOM patient coordinates are LPS (x grows to the patient's left,
y to posterior); medfuse stores RAS (x to the right, y to anterior) like NIfTI and MONAI with
``affine_lps_to_ras=True``, so a DICOM affine is ``LPS_TO_RAS @ affine_lps``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "LPS_TO_RAS",
    "dicom_affine",
    "lps_to_ras",
    "orientation_code",
    "voxel_spacing",
    "voxel_to_world",
    "world_to_voxel",
]

#: Flip x and y: converts an LPS affine to RAS (and back: the matrix is its own inverse).
LPS_TO_RAS: np.ndarray = np.diag([-1.0, -1.0, 1.0, 1.0])


def lps_to_ras(affine: np.ndarray) -> np.ndarray:
    """Convert a 4x4 voxel->LPS affine to voxel->RAS (also converts RAS to LPS).

    Args:
        affine: (4, 4) array.

    Returns:
        (4, 4) float64 array.
    """
    return LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)


def dicom_affine(
    orientation: Sequence[float] | np.ndarray,
    first_position: Sequence[float] | np.ndarray,
    pixel_spacing: Sequence[float] | np.ndarray,
    slice_step: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Build the RAS affine of a DICOM volume indexed ``(i, j, k)`` = (column, row, slice).

    Args:
        orientation: ImageOrientationPatient, six direction cosines (row direction then column
            direction, LPS).
        first_position: ImagePositionPatient of the first slice (k = 0), LPS mm.
        pixel_spacing: PixelSpacing ``(row spacing, column spacing)`` in mm, as DICOM orders it.
        slice_step: LPS vector in mm from slice k to slice k + 1 (measured from the positions).

    Returns:
        (4, 4) float64 voxel -> RAS affine.
    """
    o = np.asarray(orientation, dtype=np.float64)
    row_dir, col_dir = o[:3], o[3:6]
    dr, dc = float(pixel_spacing[0]), float(pixel_spacing[1])
    aff = np.eye(4)
    aff[:3, 0] = row_dir * dc  # i: along a row (column index grows), spacing between columns
    aff[:3, 1] = col_dir * dr  # j: down a column (row index grows), spacing between rows
    aff[:3, 2] = np.asarray(slice_step, dtype=np.float64)
    aff[:3, 3] = np.asarray(first_position, dtype=np.float64)
    return lps_to_ras(aff)


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along i, j, k (norms of the affine's first three columns)."""
    a = np.asarray(affine, dtype=np.float64)
    return tuple(float(v) for v in np.linalg.norm(a[:3, :3], axis=0))  # type: ignore[return-value]


def orientation_code(affine: np.ndarray, space: str = "RAS") -> str:
    """Three-letter axis code of a RAS affine, e.g. ``"RAS"``, ``"LPS"``, ``"LAI"``.

    Each letter names the anatomical direction in which the voxel index i, j, k grows (nibabel's
    convention: ``"LPS"`` means i grows towards the patient's left, j towards posterior, k towards
    superior, the usual layout of an axial DICOM series).

    Args:
        affine: (4, 4) voxel -> RAS affine.
        space: ``"RAS"`` (default) or ``"LPS"`` if ``affine`` maps to LPS world coordinates.
    """
    import nibabel.orientations as nio

    a = np.asarray(affine, dtype=np.float64)
    if space.upper() == "LPS":
        a = lps_to_ras(a)
    return "".join(str(c) for c in nio.aff2axcodes(a))


def voxel_to_world(affine: np.ndarray, ijk: np.ndarray) -> np.ndarray:
    """Map voxel indices (..., 3) to world coordinates (..., 3) with a 4x4 affine."""
    a = np.asarray(affine, dtype=np.float64)
    p = np.asarray(ijk, dtype=np.float64)
    return p @ a[:3, :3].T + a[:3, 3]


def world_to_voxel(affine: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Map world coordinates (..., 3) to (fractional) voxel indices (..., 3)."""
    inv = np.linalg.inv(np.asarray(affine, dtype=np.float64))
    p = np.asarray(xyz, dtype=np.float64)
    return p @ inv[:3, :3].T + inv[:3, 3]
