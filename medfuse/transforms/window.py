"""Intensity windowing to [0, 1]: :class:`Window`, its presets and exact :func:`percentile`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import TraceableTransform
from monai.utils import TransformBackends

from medfuse.errors import InputError

__all__ = ["WINDOW_PRESETS", "MODALITY_PRESETS", "Window", "percentile"]

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


class Window(TraceableTransform):
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

    The output is float32 in [0, 1]; ``meta["window"]`` records ``{"preset", "lower", "upper"}``
    and a MetaTensor's ``applied_operations`` gets one entry with the same ``extra_info``. There
    is no ``inverse``: values outside the window are clipped, so the window cannot be undone.
    """

    backend = [TransformBackends.TORCH]

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
            out = self.push_transform(
                out, orig_size=tuple(img.shape[1:]), extra_info=dict(out.meta["window"])
            )
        return out
