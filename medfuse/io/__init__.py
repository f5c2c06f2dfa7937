"""medfuse.io: geometry-true volume loading (DICOM series/files, NIfTI, MetaImage, NRRD).

Public API:

* :func:`load_volume` -> ``monai.data.MetaTensor`` (C, I, J, K) float32 with a RAS ``.affine``.
* :func:`find_series` -> list of :class:`SeriesInfo` found in a folder.
* geometry helpers: :func:`orientation_code`, :func:`voxel_spacing`, :func:`voxel_to_world`,
  :func:`world_to_voxel`, :func:`dicom_affine`, :func:`lps_to_ras`.

Writers (DICOM SC, NIfTI, PNG) live in ``medfuse.io.writers``.
See docs/io.md for the geometry rules.
"""

from __future__ import annotations

from .dicom import SeriesInfo, find_series, read_dicom_file, read_dicom_series, read_header
from .geometry import (
    dicom_affine,
    lps_to_ras,
    orientation_code,
    voxel_spacing,
    voxel_to_world,
    world_to_voxel,
)
from .volume import SUPPORTED_SUFFIXES, detect_format, load_volume, read_volume

__all__ = [
    "load_volume",
    "read_volume",
    "find_series",
    "SeriesInfo",
    "read_dicom_file",
    "read_dicom_series",
    "read_header",
    "detect_format",
    "SUPPORTED_SUFFIXES",
    "dicom_affine",
    "lps_to_ras",
    "orientation_code",
    "voxel_spacing",
    "voxel_to_world",
    "world_to_voxel",
]
