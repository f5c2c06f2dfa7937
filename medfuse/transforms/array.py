"""Array transforms on channel-first volumes (C, I, J, K) carrying a RAS affine (MONAI MetaTensor).

* :class:`ResampleToReference` - put a moving volume on a reference grid in physical space.
* :class:`Window` - intensity window to [0, 1] (named presets, level/width or percentiles).
* :class:`ExtractSlices` - cut (N, C, H, W) slices along an anatomical or voxel axis, keeping each
  slice's world geometry.
* :class:`StackSlices` - the inverse: (N, C, H, W) slices back onto the volume grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import ResampleToMatch, Transform

from medfuse.errors import GeometryError, InputError

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

#: Named windows: ``(level, width)`` in the image's units (HU for CT), or
#: ``("percentiles", lo, hi)``.
WINDOW_PRESETS: dict[str, tuple] = {
    "ct-brain": (40.0, 80.0),
    "ct-subdural": (75.0, 215.0),
    "ct-bone": (400.0, 1800.0),
    "ct-soft-tissue": (50.0, 400.0),
    "mr": ("percentiles", 0.5, 99.5),
    "pet": ("percentiles", 0.0, 99.5),
    "spect": ("percentiles", 0.0, 99.5),
}

#: preset chosen by ``Window(preset="auto")`` from ``meta["modality"]`` (others: "mr").
MODALITY_PRESETS: dict[str, str] = {"CT": "ct-brain", "MR": "mr", "PT": "pet", "NM": "spect"}

_VIEW_AXES = {"sagittal": 0, "coronal": 1, "axial": 2}  # RAS world axis normal to the view
# In-plane display layout per view: (world axis, sign) that rows (H) and columns (W) run along.
# Radiological convention: axial rows run anterior->posterior, columns right->left; coronal and
# sagittal rows run superior->inferior; coronal columns right->left, sagittal anterior->posterior.
_VIEW_LAYOUT = {
    "axial": ((1, -1.0), (0, -1.0)),
    "coronal": ((2, -1.0), (0, -1.0)),
    "sagittal": ((2, -1.0), (1, -1.0)),
}


def _affine_np(img: torch.Tensor) -> np.ndarray:
    if isinstance(img, MetaTensor):
        return np.asarray(img.affine.detach().cpu().numpy(), dtype=np.float64)
    return np.eye(4)


# --------------------------------------------------------------------------------------------
# Resampling


class ResampleToReference(Transform):
    """Resample a moving volume onto a reference volume's grid in physical (RAS world) space.

    Built on :class:`monai.transforms.ResampleToMatch`: every output voxel takes the moving image's
    value at the same world position (through both affines), so no voxel correspondence is assumed.
    The output keeps the moving image's metadata (modality, DICOM headers, ...) but takes the
    reference's affine and spatial shape; ``meta["resampled_to"]`` names the reference source.
    ``meta["frame_of_reference_uid"]`` stays the moving image's unless ``pre_affine`` is given
    (then the image is registered into the reference's frame and takes its UID): resampling alone
    does not align two frames of reference (compare the UIDs before fusing).

    Args:
        mode: interpolation, "bilinear" (default) or "nearest" (labels), or a spline order 0-5.
        padding_mode: value outside the moving field of view: "zeros" (default), "border",
            "reflection".
        dtype: computation dtype of the sampling grid (float32 keeps memory modest on large grids).
    """

    def __init__(
        self,
        mode: str | int = "bilinear",
        padding_mode: str = "zeros",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.mode = mode
        self.padding_mode = padding_mode
        self.dtype = dtype

    def __call__(  # type: ignore[override]  # two inputs: the image and its reference
        self,
        img: torch.Tensor,
        reference: torch.Tensor,
        pre_affine: np.ndarray | torch.Tensor | None = None,
    ) -> MetaTensor:
        """Resample ``img`` onto ``reference``'s grid.

        Args:
            img: moving MetaTensor (C, I, J, K) with a RAS affine.
            reference: MetaTensor (C', I', J', K') whose affine and spatial shape define the grid
                (its values are not read).
            pre_affine: optional (4, 4) world->world matrix (e.g. a registration result) mapping
                moving world coordinates to reference world coordinates; the moving affine becomes
                ``pre_affine @ img.affine`` before resampling.

        Returns:
            MetaTensor (C, I', J', K') float32 with the reference affine.
        """
        if not isinstance(img, MetaTensor) or not isinstance(reference, MetaTensor):
            raise InputError("ResampleToReference needs MetaTensors with affines (use load_volume)")
        if img.ndim != 4 or reference.ndim != 4:
            raise GeometryError(
                f"ResampleToReference expects (C, I, J, K) volumes, got {tuple(img.shape)} and "
                f"{tuple(reference.shape)}"
            )
        src_affine = _affine_np(img)
        if pre_affine is not None:
            pa = np.asarray(torch.as_tensor(pre_affine).detach().cpu().numpy(), dtype=np.float64)
            if pa.shape != (4, 4):
                raise GeometryError(f"pre_affine must be 4x4, got {pa.shape}")
            src_affine = pa @ src_affine
        if abs(np.linalg.det(src_affine[:3, :3])) < 1e-12:
            raise GeometryError("moving image affine is singular")
        moving = MetaTensor(
            img.as_tensor(),
            affine=torch.as_tensor(src_affine),
            meta={"filename_or_obj": img.meta.get("filename_or_obj", "")},
        )
        # a lightweight stand-in for the reference: only its affine and spatial shape matter
        ref_affine = _affine_np(reference)
        dst = MetaTensor(
            torch.zeros((1, 1, 1, 1), dtype=torch.float32).expand(1, *reference.shape[1:]),
            affine=torch.as_tensor(ref_affine),
        )
        resample = ResampleToMatch(mode=self.mode, padding_mode=self.padding_mode,
                                   dtype=self.dtype)  # type: ignore[arg-type]
        out: MetaTensor = resample(moving, dst)  # type: ignore[assignment]
        meta = dict(img.meta)
        meta.pop("affine", None)
        meta.update(
            {
                "spatial_shape": np.asarray(reference.shape[1:]),
                "resampled_to": reference.meta.get("source_path", ""),
            }
        )
        if pre_affine is not None:  # registered into the reference's frame of reference
            meta["pre_affine"] = np.asarray(pa)
            meta["frame_of_reference_uid"] = reference.meta.get("frame_of_reference_uid")
        return MetaTensor(
            out.as_tensor().to(torch.float32), affine=torch.as_tensor(ref_affine), meta=meta
        )


# --------------------------------------------------------------------------------------------
# Windowing


def percentile(x: torch.Tensor, q: Sequence[float]) -> list[float]:
    """Percentiles of all values of ``x`` (linear interpolation, like numpy's default).

    Works on any size (``torch.quantile`` refuses more than 2**24 elements) and any device.

    Args:
        x: tensor of any shape.
        q: percentiles in [0, 100].

    Returns:
        one float per percentile.
    """
    flat = torch.as_tensor(x).detach().reshape(-1).to(torch.float32)
    flat = flat[torch.isfinite(flat)]
    n = flat.numel()
    if n == 0:
        raise InputError("cannot compute percentiles of an empty (or all-NaN) image")
    for p in q:
        if not 0.0 <= float(p) <= 100.0:
            raise InputError(f"percentile {p} outside [0, 100]")
    if flat.device.type == "cpu":  # numpy partitions once for all percentiles: fastest on CPU
        return [float(v) for v in np.percentile(flat.numpy(), [float(p) for p in q])]
    return _kth_percentiles(flat, q)


def _kth_percentiles(flat: torch.Tensor, q: Sequence[float]) -> list[float]:
    """Linear-interpolated percentiles of a 1D finite tensor with kthvalue (stays on device)."""
    n = flat.numel()
    out = []
    for p in q:
        pos = float(p) / 100.0 * (n - 1)
        lo, hi = int(math.floor(pos)), int(math.ceil(pos))
        v_lo = float(torch.kthvalue(flat, lo + 1).values)
        v_hi = v_lo if hi == lo else float(torch.kthvalue(flat, hi + 1).values)
        out.append(v_lo + (v_hi - v_lo) * (pos - lo))
    return out


def _dicom_window(img: torch.Tensor) -> tuple[float, float] | None:
    """First (WindowCenter, WindowWidth) of the image's first DICOM header, if any."""
    headers = img.meta.get("dicom_datasets") if isinstance(img, MetaTensor) else None
    if not headers:
        return None
    ds = headers[0]
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    try:
        c = float(
            center[0] if hasattr(center, "__len__") and not isinstance(center, str) else center
        )
        w = float(width[0] if hasattr(width, "__len__") and not isinstance(width, str) else width)
    except (TypeError, ValueError, IndexError):
        return None
    return (c, w) if w > 0 else None


class Window(Transform):
    """Map intensities to [0, 1] through a window (values outside are clipped).

    Choose one of: a named ``preset`` (see :data:`WINDOW_PRESETS`; "auto" picks one from
    ``img.meta["modality"]`` by :data:`MODALITY_PRESETS`, "mr" when unknown; "dicom" uses the
    first WindowCenter/WindowWidth of the source DICOM header, else "auto"), an explicit
    ``level``/``width`` (DICOM convention: lower = level - width / 2), or ``percentiles``
    ``(lo, hi)`` computed on the image. Explicit level/width or percentiles override the preset.

    Args:
        preset: preset name or None.
        level: window centre (image units, HU for CT).
        width: window width (> 0).
        percentiles: ``(lo, hi)`` in [0, 100].

    The output is float32 in [0, 1]; ``meta["window"]`` records ``{"preset", "lower", "upper"}``.
    """

    def __init__(
        self,
        preset: str | None = "auto",
        level: float | None = None,
        width: float | None = None,
        percentiles: Sequence[float] | None = None,
    ) -> None:
        if preset is not None and preset not in ("auto", "dicom") and preset not in WINDOW_PRESETS:
            raise InputError(
                f"unknown window preset '{preset}' (known: auto, dicom, "
                f"{', '.join(WINDOW_PRESETS)})"
            )
        if (level is None) != (width is None):
            raise InputError("give both window level and width, or neither")
        if width is not None and not width > 0:
            raise InputError(f"window width must be > 0, got {width}")
        if percentiles is not None:
            lo, hi = (float(v) for v in percentiles)
            if not 0.0 <= lo < hi <= 100.0:
                raise InputError(f"percentiles must satisfy 0 <= lo < hi <= 100, got {percentiles}")
        self.preset = preset
        self.level = level
        self.width = width
        self.percentiles = tuple(percentiles) if percentiles is not None else None

    def bounds(self, img: torch.Tensor) -> tuple[float, float, str]:
        """The window ``(lower, upper, description)`` this transform applies to ``img``."""
        if self.level is not None and self.width is not None:
            return self.level - self.width / 2.0, self.level + self.width / 2.0, "level/width"
        if self.percentiles is not None:
            lo, hi = percentile(img, self.percentiles)
            return lo, hi, f"percentiles {self.percentiles[0]:g}-{self.percentiles[1]:g}"
        name = self.preset or "auto"
        if name == "dicom":
            found = _dicom_window(img)
            if found is not None:
                return found[0] - found[1] / 2.0, found[0] + found[1] / 2.0, "dicom"
            name = "auto"
        if name == "auto":
            modality = str(img.meta.get("modality", "")) if isinstance(img, MetaTensor) else ""
            name = MODALITY_PRESETS.get(modality.upper(), "mr")
        spec = WINDOW_PRESETS[name]
        if spec[0] == "percentiles":
            lo, hi = percentile(img, spec[1:])
            return lo, hi, name
        level, width = spec
        return level - width / 2.0, level + width / 2.0, name

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """Window ``img`` (any shape) to [0, 1].

        Args:
            img: tensor or MetaTensor, e.g. (C, I, J, K).

        Returns:
            same type and shape, float32 in [0, 1].
        """
        lower, upper, name = self.bounds(img)
        x = img.to(torch.float32)
        if upper <= lower:  # constant image (e.g. percentiles of a flat region)
            out = torch.zeros_like(x)
        else:
            out = ((x - lower) / (upper - lower)).clamp_(0.0, 1.0)
        if isinstance(out, MetaTensor):
            out.meta["window"] = {"preset": name, "lower": float(lower), "upper": float(upper)}
        return out


# --------------------------------------------------------------------------------------------
# Slices


def slice_axis_for(affine: np.ndarray | torch.Tensor, axis: str | int) -> int:
    """Voxel axis (0, 1 or 2) to slice along.

    Args:
        affine: (4, 4) voxel -> RAS affine.
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
    a = np.asarray(torch.as_tensor(affine).detach().cpu().numpy(), dtype=np.float64)[:3, :3]
    dirs = np.abs(a / np.linalg.norm(a, axis=0, keepdims=True))
    world = _VIEW_AXES[name]
    order = np.argsort(-dirs[world])
    return int(order[0])


def slice_geometry(
    affine: np.ndarray | torch.Tensor,
    shape: Sequence[int],
    axis: str | int = "axial",
    indices: Sequence[int] | None = None,
) -> dict[str, Any]:
    """How :class:`ExtractSlices` cuts a volume of spatial ``shape`` (I, J, K) with ``affine``.

    Returns:
        dict with "slice_axis", "slice_inplane", "slice_flip", "slice_indices",
        "slice_positions" ((N, 3) RAS mm of each slice's pixel (0, 0)), "slice_affine"
        ((4, 4): (h, w, n) -> RAS mm), "volume_affine", "volume_shape".
    """
    aff = np.asarray(torch.as_tensor(affine).detach().cpu().numpy(), dtype=np.float64)
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


_SLICE_KEYS = (
    "slice_axis",
    "slice_inplane",
    "slice_flip",
    "slice_indices",
    "slice_positions",
    "slice_affine",
    "volume_affine",
    "volume_shape",
)


class ExtractSlices(Transform):
    """Cut a volume (C, I, J, K) into 2D slices (N, C, H, W) that keep their world geometry.

    With an anatomical ``axis`` ("axial", "coronal", "sagittal") the slice axis is the voxel axis
    closest to the view's normal and the in-plane axes are laid out (and flipped if needed) in the
    radiological display convention: axial rows run anterior->posterior and columns
    right->left of the patient; coronal/sagittal rows run superior->inferior. With a voxel axis
    (0, 1, 2) the remaining axes are kept in order, unflipped.

    The output MetaTensor's ``.affine`` is ``slice_affine``, mapping ``(h, w, n)`` to RAS world mm
    (n = slice number in the output), and its meta holds the keys of :func:`slice_geometry`, which
    :class:`StackSlices` uses to invert the cut.

    Args:
        axis: "axial" (default), "coronal", "sagittal" or 0/1/2.
        indices: voxel indices along the slice axis to extract (default: all, in order).
    """

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
        geo = slice_geometry(_affine_np(img), img.shape[1:], self.axis, self.indices)
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
        return MetaTensor(out.contiguous(), affine=torch.as_tensor(geo["slice_affine"]), meta=meta)


class StackSlices(Transform):
    """Put (N, C, H, W) slices back onto the volume grid (C, I, J, K): inverse of ExtractSlices.

    Args:
        axis: how the slices were cut when the geometry comes from a volume (see ``__call__``).
        fill_value: value of voxels on slices that were not extracted (default 0).
    """

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
        if "slice_axis" in meta:
            geo = {k: meta[k] for k in _SLICE_KEYS}
        elif isinstance(src, MetaTensor) and src.ndim == 4 and reference is not None:
            geo = slice_geometry(_affine_np(src), src.shape[1:], self.axis)
        else:
            raise GeometryError(
                "StackSlices needs the slice geometry: pass ExtractSlices' output or the volume"
            )
        data = slices.as_tensor() if isinstance(slices, MetaTensor) else torch.as_tensor(slices)
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
            (data.shape[1], *vshape), float(self.fill_value), dtype=data.dtype, device=data.device
        )
        view = vol.permute(1 + s, 0, 1 + inplane[0], 1 + inplane[1])  # (S, C, H, W) view of vol
        view[torch.as_tensor(idx, dtype=torch.long, device=data.device)] = data
        for k in _SLICE_KEYS:
            meta.pop(k, None)
        meta.pop("affine", None)
        meta["spatial_shape"] = np.asarray(vshape)
        return MetaTensor(vol, affine=torch.as_tensor(geo["volume_affine"]), meta=meta)
