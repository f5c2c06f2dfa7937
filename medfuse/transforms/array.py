"""Array transforms on channel-first volumes (C, I, J, K) carrying a RAS affine (MONAI MetaTensor).

The classes live in small modules by concern; this module re-exports them (a supported import path):

* :class:`ResampleToReference` (:mod:`medfuse.transforms.resample`) - a moving volume onto a
  reference grid in physical space.
* :class:`Window`, :data:`WINDOW_PRESETS`, :data:`MODALITY_PRESETS`, :func:`percentile`
  (:mod:`medfuse.transforms.window`) - intensity window to [0, 1].
* :class:`ExtractSlices` (invertible) and :class:`StackSlices`
  (:mod:`medfuse.transforms.slices`) - (N, C, H, W) slices keeping their world geometry, and back.
* :func:`slice_geometry`, :func:`slice_axis_for` (:mod:`medfuse.io.slicing`) - a cut's geometry.
"""

from __future__ import annotations

from medfuse.io.slicing import slice_axis_for, slice_geometry

from .resample import ResampleToReference
from .slices import ExtractSlices, StackSlices
from .window import MODALITY_PRESETS, WINDOW_PRESETS, Window, percentile

__all__ = [
    "WINDOW_PRESETS",
    "MODALITY_PRESETS",
    "ResampleToReference",
    "Window",
    "ExtractSlices",
    "StackSlices",
    "slice_axis_for",
    "slice_geometry",
    "percentile",
]
