"""Volumes to 2D slices and back: :class:`ExtractSlices` (invertible) and :class:`StackSlices`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import InvertibleTransform, TraceableTransform
from monai.utils import TraceKeys, TransformBackends

from medfuse.errors import GeometryError
from medfuse.io.slicing import SLICE_KEYS, slice_geometry

from .utils import affine_np, record_of

__all__ = ["ExtractSlices", "StackSlices"]


def _restack(data: torch.Tensor, geo: dict, fill_value: float) -> torch.Tensor:
    """(N, C, H, W) slices -> (C, I, J, K) volume tensor on the grid ``geo`` describes."""
    if data.ndim != 4:
        raise GeometryError(f"StackSlices expects (N, C, H, W), got {tuple(data.shape)}")
    s, inplane, flips = int(geo["slice_axis"]), geo["slice_inplane"], geo["slice_flip"]
    idx, vshape = list(geo["slice_indices"]), tuple(geo["volume_shape"])
    if (
        data.shape[0] != len(idx)
        or data.shape[2] != vshape[inplane[0]]
        or (data.shape[3] != vshape[inplane[1]])
    ):
        raise GeometryError(
            f"slices {tuple(data.shape)} do not match the extraction ({len(idx)} slices of "
            f"{vshape[inplane[0]]}x{vshape[inplane[1]]})"
        )
    flip_dims = [d for d, f in zip((2, 3), flips) if f]
    if flip_dims:
        data = torch.flip(data, flip_dims)
    vol = torch.full(
        (data.shape[1], *vshape), float(fill_value), dtype=data.dtype, device=data.device
    )
    view = vol.permute(1 + s, 0, 1 + inplane[0], 1 + inplane[1])  # (S, C, H, W) view of vol
    view[torch.as_tensor(idx, dtype=torch.long, device=data.device)] = data
    return vol


def _volume(vol: torch.Tensor, geo: dict, meta: dict, record: list) -> MetaTensor:
    """The restacked volume as a MetaTensor: volume affine, meta without the slice keys."""
    meta = dict(meta)
    for k in SLICE_KEYS:
        meta.pop(k, None)
    meta.pop("affine", None)
    meta["spatial_shape"] = np.asarray(tuple(geo["volume_shape"]))
    return MetaTensor(
        vol, affine=torch.as_tensor(geo["volume_affine"]), meta=meta, applied_operations=record
    )


class ExtractSlices(InvertibleTransform):
    """Cut a volume (C, I, J, K) into 2D slices (N, C, H, W) that keep their world geometry.

    With an anatomical ``axis`` ("axial", "coronal", "sagittal") the slice axis is the voxel axis
    closest to the view's normal and the in-plane axes are laid out (and flipped if needed) in the
    radiological display convention: axial rows run anterior->posterior and columns
    right->left of the patient; coronal/sagittal rows run superior->inferior. With a voxel axis
    (0, 1, 2) the remaining axes are kept in order, unflipped.

    The output MetaTensor's ``.affine`` is ``slice_affine``, mapping ``(h, w, n)`` to RAS world mm
    (n = slice number in the output), and its meta holds the keys of
    :func:`medfuse.io.slicing.slice_geometry`. Its ``applied_operations`` is the volume's plus one
    entry of this transform whose ``extra_info["geometry"]`` holds the same keys: :meth:`inverse`
    pops that entry and restacks the slices (MONAI's invertible-transform convention, so
    ``Compose.inverse`` and ``Invertd`` work); :class:`StackSlices` is the explicit call.

    Args:
        axis: "axial" (default), "coronal", "sagittal" or 0/1/2.
        indices: voxel indices along the slice axis to extract (default: all, in order).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, axis: str | int = "axial", indices: Sequence[int] | None = None) -> None:
        self.axis = axis
        self.indices = None if indices is None else [int(i) for i in indices]

    def __call__(self, img: torch.Tensor) -> MetaTensor:
        """Extract slices.

        Args:
            img: (C, I, J, K) MetaTensor.

        Returns:
            (N, C, H, W) MetaTensor; ``meta["slice_positions"]`` (N, 3) world mm of pixel (0, 0).
        """
        if img.ndim != 4:
            raise GeometryError(f"ExtractSlices expects (C, I, J, K), got {tuple(img.shape)}")
        geo = slice_geometry(affine_np(img), img.shape[1:], self.axis, self.indices)
        s, inplane, flips = geo["slice_axis"], geo["slice_inplane"], geo["slice_flip"]
        data = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
        out = data.permute(1 + s, 0, 1 + inplane[0], 1 + inplane[1])  # (S, C, H, W)
        out = out[torch.as_tensor(geo["slice_indices"], dtype=torch.long, device=out.device)]
        flip_dims = [d for d, f in zip((2, 3), flips) if f]
        if flip_dims:
            out = torch.flip(out, flip_dims)
        meta = dict(img.meta) if isinstance(img, MetaTensor) else {}
        meta.pop("affine", None)
        meta.update(geo)
        out = MetaTensor(
            out.contiguous(),
            affine=torch.as_tensor(geo["slice_affine"]),
            meta=meta,
            applied_operations=record_of(img),
        )
        return self.push_transform(
            out, orig_size=tuple(img.shape[1:]), extra_info={"geometry": dict(geo)}
        )

    def inverse(self, data: torch.Tensor) -> MetaTensor:
        """Restack slices cut by this transform onto the volume grid (pops its record entry).

        Args:
            data: (N, C, H, W) MetaTensor whose ``applied_operations`` ends with this transform's
                entry (its output, or e.g. a network output given that record by ``Invertd``);
                C may differ from the volume's.

        Returns:
            (C, I, J, K) MetaTensor with the volume affine and the record as before the cut;
            voxels on slices that were not extracted are 0.
        """
        if not isinstance(data, MetaTensor):
            raise GeometryError("ExtractSlices.inverse needs a MetaTensor carrying its record")
        geo = self.pop_transform(data)[TraceKeys.EXTRA_INFO]["geometry"]
        vol = _restack(data.as_tensor(), geo, 0.0)
        return _volume(vol, geo, data.meta, list(data.applied_operations))


class StackSlices(TraceableTransform):
    """Put (N, C, H, W) slices back onto the volume grid (C, I, J, K): inverse of ExtractSlices.

    The explicit form of :meth:`ExtractSlices.inverse`, for slices whose geometry comes from
    another tensor (a network output restacked with the input slices' meta). The output's
    ``applied_operations`` is the geometry source's, without its ExtractSlices entry.

    Args:
        axis: how the slices were cut when the geometry comes from a volume (see ``__call__``).
        fill_value: value of voxels on slices that were not extracted (default 0).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, axis: str | int = "axial", fill_value: float = 0.0) -> None:
        self.axis = axis
        self.fill_value = fill_value

    def __call__(self, slices: torch.Tensor, reference: torch.Tensor | None = None) -> MetaTensor:
        """Restack slices.

        Args:
            slices: (N, C, H, W) tensor, e.g. a network output; C may differ from the source.
            reference: where the slice geometry comes from: the (N, C', H, W) MetaTensor that
                ExtractSlices returned, or the original (C', I, J, K) volume (then the slices are
                taken as all slices along ``axis``). Optional when ``slices`` is ExtractSlices'
                output itself.

        Returns:
            (C, I, J, K) MetaTensor with the volume affine; meta copied from the reference (or the
            slices) without the slice keys.
        """
        src = reference if reference is not None else slices
        meta = dict(src.meta) if isinstance(src, MetaTensor) else {}
        record = record_of(src)
        if "slice_axis" in meta:
            geo = {k: meta[k] for k in SLICE_KEYS}
            if record and record[-1].get(TraceKeys.CLASS_NAME) == ExtractSlices.__name__:
                record.pop()  # the cut is undone
        elif isinstance(src, MetaTensor) and src.ndim == 4 and reference is not None:
            geo = slice_geometry(affine_np(src), src.shape[1:], self.axis)
        else:
            raise GeometryError(
                "StackSlices needs the slice geometry: pass ExtractSlices' output or the volume"
            )
        data = slices.as_tensor() if isinstance(slices, MetaTensor) else torch.as_tensor(slices)
        return _volume(_restack(data, geo, self.fill_value), geo, meta, record)
