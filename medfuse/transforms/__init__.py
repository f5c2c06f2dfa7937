"""medfuse.transforms: MONAI-style transforms on geometry-carrying volumes.

Array transforms (``medfuse.transforms.array``) and their dictionary twins with suffix ``d``
(``medfuse.transforms.dictionary``):

* :class:`ResampleToReference` / :class:`ResampleToReferenced` - physical-space resampling onto a
  reference grid (MONAI ResampleToMatch).
* :class:`Window` / :class:`Windowd` - intensity window to [0, 1] with presets
  (:data:`WINDOW_PRESETS`), level/width or percentiles.
* :class:`ExtractSlices` / :class:`ExtractSlicesd` - (N, C, H, W) slices with world positions.
* :class:`StackSlices` / :class:`StackSlicesd` - slices back onto the volume grid.

Colour helpers (``medfuse.transforms.colour``: YCbCr, palettes) are importable from here too.
"""

from __future__ import annotations

import importlib
from typing import Any

from .array import (
    MODALITY_PRESETS,
    WINDOW_PRESETS,
    ExtractSlices,
    ResampleToReference,
    StackSlices,
    Window,
    percentile,
    slice_axis_for,
    slice_geometry,
)
from .dictionary import (
    ExtractSlicesD,
    ExtractSlicesd,
    ExtractSlicesDict,
    ResampleToReferenceD,
    ResampleToReferenced,
    ResampleToReferenceDict,
    StackSlicesD,
    StackSlicesd,
    StackSlicesDict,
    WindowD,
    Windowd,
    WindowDict,
)

__all__ = [
    "WINDOW_PRESETS",
    "MODALITY_PRESETS",
    "ResampleToReference",
    "Window",
    "ExtractSlices",
    "StackSlices",
    "percentile",
    "slice_axis_for",
    "slice_geometry",
    "ResampleToReferenced",
    "Windowd",
    "ExtractSlicesd",
    "StackSlicesd",
    "ResampleToReferenceD",
    "ResampleToReferenceDict",
    "WindowD",
    "WindowDict",
    "ExtractSlicesD",
    "ExtractSlicesDict",
    "StackSlicesD",
    "StackSlicesDict",
]


def __getattr__(name: str) -> Any:
    """Forward the colour helpers' public names to :mod:`medfuse.transforms.colour`."""
    colour = importlib.import_module(".colour", __name__)
    if not name.startswith("_") and name in colour.__all__:
        return getattr(colour, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
