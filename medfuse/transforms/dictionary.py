"""Dictionary twins (suffix ``d``) of the array transforms (MONAI MapTransform)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import InvertibleTransform, MapTransform
from monai.utils import ensure_tuple_rep

from .resample import ResampleToReference
from .slices import ExtractSlices, StackSlices
from .window import Window

__all__ = [
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


class ResampleToReferenced(MapTransform):
    """Resample ``keys`` onto the grid of ``data[ref_key]`` (see :class:`ResampleToReference`).

    Args:
        keys: keys of the moving volumes.
        ref_key: key of the reference volume.
        mode: interpolation per key ("bilinear", "nearest" or spline order), one or a sequence.
        padding_mode: "zeros", "border" or "reflection", one or a sequence.
        pre_affine_key: optional key holding a (4, 4) world->world matrix applied to the moving
            images' affines first (e.g. a registration result).
        allow_missing_keys: skip absent keys.
    """

    backend = ResampleToReference.backend

    def __init__(
        self,
        keys: KeysCollection,
        ref_key: str,
        mode: str | int | Sequence = "bilinear",
        padding_mode: str | Sequence[str] = "zeros",
        pre_affine_key: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key
        self.mode = ensure_tuple_rep(mode, len(self.keys))
        self.padding_mode = ensure_tuple_rep(padding_mode, len(self.keys))
        self.pre_affine_key = pre_affine_key
        self.resamplers = {
            key: ResampleToReference(mode=m, padding_mode=p)
            for key, m, p in zip(self.keys, self.mode, self.padding_mode)
        }

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        ref = d[self.ref_key]
        pre = d.get(self.pre_affine_key) if self.pre_affine_key else None
        for key in self.key_iterator(d):
            d[key] = self.resamplers[key](d[key], ref, pre_affine=pre)
        return d


class Windowd(MapTransform):
    """Window ``keys`` to [0, 1] (see :class:`Window`); each argument may be given per key.

    Args:
        keys: keys to window.
        preset: preset name per key (or one for all); "auto" picks from the image's modality.
        level: window level per key (or one), overrides the preset with ``width``.
        width: window width per key (or one).
        percentiles: ``(lo, hi)`` per key (a sequence of pairs) or one pair for all.
        allow_missing_keys: skip absent keys.
    """

    backend = Window.backend

    def __init__(
        self,
        keys: KeysCollection,
        preset: str | Sequence[str | None] | None = "auto",
        level: float | Sequence[float | None] | None = None,
        width: float | Sequence[float | None] | None = None,
        percentiles: Sequence[float] | Sequence[Sequence[float] | None] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        n = len(self.keys)
        presets = ensure_tuple_rep(preset, n)
        levels = ensure_tuple_rep(level, n)
        widths = ensure_tuple_rep(width, n)
        if (
            percentiles is not None
            and len(percentiles) == 2
            and all(isinstance(v, (int, float)) for v in percentiles)
        ):
            pcts: tuple = (tuple(percentiles),) * n
        else:
            pcts = ensure_tuple_rep(percentiles, n)
        self.windows = {
            key: Window(preset=p, level=lv, width=w, percentiles=q)
            for key, p, lv, w, q in zip(self.keys, presets, levels, widths, pcts)
        }

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.windows[key](d[key])
        return d


class ExtractSlicesd(MapTransform, InvertibleTransform):
    """Cut ``keys`` into (N, C, H, W) slices (see :class:`ExtractSlices`); invertible.

    Every key is cut with the same axis; volumes resampled onto one grid give matching slices.
    The slice geometry is in each output's meta (``slice_positions``, ``slice_affine``...) and in
    its ``applied_operations``; :meth:`inverse` (or MONAI's ``Compose.inverse`` / ``Invertd``)
    restacks each key onto its volume grid.

    Args:
        keys: keys of (C, I, J, K) volumes.
        axis: "axial", "coronal", "sagittal" or 0/1/2.
        indices: voxel indices along the slice axis (default all).
        allow_missing_keys: skip absent keys.
    """

    backend = ExtractSlices.backend

    def __init__(
        self,
        keys: KeysCollection,
        axis: str | int = "axial",
        indices: Sequence[int] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.extract = ExtractSlices(axis=axis, indices=indices)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.extract(d[key])
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Restack the slices of ``keys`` (see :meth:`ExtractSlices.inverse`)."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.extract.inverse(d[key])
        return d


class StackSlicesd(MapTransform):
    """Restack (N, C, H, W) slices in ``keys`` onto their volume grid (see :class:`StackSlices`).

    Args:
        keys: keys of slice tensors.
        ref_key: optional key whose meta (ExtractSlices output or the volume) gives the geometry,
            for keys holding plain tensors such as network outputs.
        axis: slice axis used when ``ref_key`` holds a volume.
        fill_value: value of voxels on slices not present.
        allow_missing_keys: skip absent keys.
    """

    backend = StackSlices.backend

    def __init__(
        self,
        keys: KeysCollection,
        ref_key: str | None = None,
        axis: str | int = "axial",
        fill_value: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key
        self.stack = StackSlices(axis=axis, fill_value=fill_value)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        ref = d[self.ref_key] if self.ref_key is not None else None
        for key in self.key_iterator(d):
            d[key] = self.stack(d[key], ref)
        return d


ResampleToReferenceD = ResampleToReferenceDict = ResampleToReferenced
WindowD = WindowDict = Windowd
ExtractSlicesD = ExtractSlicesDict = ExtractSlicesd
StackSlicesD = StackSlicesDict = StackSlicesd
