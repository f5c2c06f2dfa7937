"""Classical fusion baselines: no training, fast on CPU, batched over slices.

* ``average`` - the pixel mean.
* ``max`` - the pixel maximum.
* ``laplacian`` - Laplacian pyramid (Burt and Adelson 1983): base levels averaged, detail
  coefficients chosen by maximum absolute value.
* ``dwt`` - discrete wavelet transform (PyWavelets, ``db2``, 3 levels): approximation averaged,
  details by maximum absolute value.
* ``guided-filter`` - GFF (Li, Kang and Hu, IEEE TIP 2013): two-scale decomposition, Laplacian
  saliency, guided-filter-refined weight maps.

All take and return (B, 1, H, W) float32 in [0, 1] (see :class:`~medfuse.fusion.base.FusionMethod`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .base import FusionMethod, register_method

__all__ = [
    "AverageFusion",
    "MaxFusion",
    "LaplacianPyramidFusion",
    "WaveletFusion",
    "GuidedFilterFusion",
    "box_filter",
    "guided_filter",
]


@register_method
class AverageFusion(FusionMethod):
    """Pixel-wise mean of the two sources."""

    name = "average"
    description = "pixel mean"
    bytes_per_pixel = 16

    def fuse(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return (a + b) * 0.5


@register_method
class MaxFusion(FusionMethod):
    """Pixel-wise maximum of the two sources."""

    name = "max"
    description = "pixel maximum"
    bytes_per_pixel = 16

    def fuse(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.maximum(a, b)


def _max_abs(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.where(x.abs() >= y.abs(), x, y)


@register_method
class LaplacianPyramidFusion(FusionMethod):
    """Laplacian pyramid fusion: average the coarsest level, max-abs of the detail levels.

    Args:
        levels: pyramid depth (default 4; fewer for small images so the top level is >= 8 px).
    """

    name = "laplacian"
    description = "Laplacian pyramid, mean base, max-abs details"
    bytes_per_pixel = 96

    def __init__(self, device: str | torch.device = "cpu", levels: int = 4, **options: Any) -> None:
        super().__init__(device, levels=levels, **options)
        self.levels = int(levels)
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
        self.kernel = (k[:, None] * k[None, :])[None, None].to(self.device)

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        mode = "reflect" if min(x.shape[-2:]) > 2 else "replicate"
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode=mode), self.kernel.to(x.dtype))

    def _pyramid(self, x: torch.Tensor, levels: int) -> list[torch.Tensor]:
        pyr, cur = [], x
        for _ in range(levels):
            down = self._blur(cur)[..., ::2, ::2]
            up = F.interpolate(down, size=cur.shape[-2:], mode="bilinear", align_corners=False)
            pyr.append(cur - up)
            cur = down
        pyr.append(cur)
        return pyr

    def fuse(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: D102
        size = min(a.shape[-2:])
        depth = int(math.floor(math.log2(size / 8.0))) if size >= 16 else 0
        levels = max(0, min(self.levels, depth))
        pa, pb = self._pyramid(a, levels), self._pyramid(b, levels)
        out = (pa[-1] + pb[-1]) * 0.5
        for da, db in zip(reversed(pa[:-1]), reversed(pb[:-1])):
            out = F.interpolate(out, size=da.shape[-2:], mode="bilinear", align_corners=False)
            out = out + _max_abs(da, db)
        return out


@register_method
class WaveletFusion(FusionMethod):
    """Discrete wavelet fusion with PyWavelets: mean approximation, max-abs details.

    Runs on the CPU (PyWavelets is NumPy); tensors on another device are moved and back.

    Args:
        wavelet: PyWavelets wavelet name (default "db2").
        levels: decomposition levels (default 3, capped by the image size).
    """

    name = "dwt"
    description = "discrete wavelet transform (PyWavelets), mean approximation, max-abs details"
    bytes_per_pixel = 96

    def __init__(
        self,
        device: str | torch.device = "cpu",
        wavelet: str = "db2",
        levels: int = 3,
        **options: Any,
    ) -> None:
        super().__init__(device, wavelet=wavelet, levels=levels, **options)
        self.wavelet = wavelet
        self.levels = int(levels)

    def fuse(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: D102
        import pywt

        h, w = a.shape[-2:]
        xa = a[:, 0].detach().cpu().numpy()
        xb = b[:, 0].detach().cpu().numpy()
        wav = pywt.Wavelet(self.wavelet)
        levels = max(1, min(self.levels, pywt.dwt_max_level(min(h, w), wav.dec_len)))
        with warnings.catch_warnings():  # images smaller than the filter: boundary effects
            warnings.simplefilter("ignore", UserWarning)
            ca = pywt.wavedec2(xa, wav, mode="symmetric", level=levels, axes=(-2, -1))
            cb = pywt.wavedec2(xb, wav, mode="symmetric", level=levels, axes=(-2, -1))
        fused: list[Any] = [(ca[0] + cb[0]) * 0.5]
        for da, db in zip(ca[1:], cb[1:]):
            fused.append(tuple(np.where(np.abs(x) >= np.abs(y), x, y) for x, y in zip(da, db)))
        rec = pywt.waverec2(fused, wav, mode="symmetric", axes=(-2, -1))[:, :h, :w]
        return torch.from_numpy(np.ascontiguousarray(rec, dtype=np.float32))[:, None].to(a.device)


def _window_sums(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Sums over [i - r, i + r] along ``dim`` (zeros outside), by one cumulative sum."""
    n = x.shape[dim]
    pad = [0, 0] * (x.ndim - 1 - dim) + [r + 1, r]  # F.pad lists the last dimension first
    c = torch.cumsum(F.pad(x, pad), dim=dim)
    return c.narrow(dim, 2 * r + 1, n) - c.narrow(dim, 0, n)


def _counts(n: int, r: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    i = torch.arange(n, device=device)
    return ((i + r).clamp(max=n - 1) - (i - r).clamp(min=0) + 1).to(dtype)


def box_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1) x (2r+1) window, truncated at the borders (O(1) per pixel, cumsums).

    Args:
        x: (B, C, H, W).
        r: radius in pixels.

    Returns:
        (B, C, H, W), each pixel the mean of the window's pixels inside the image.
    """
    h, w = x.shape[-2:]
    sums = _window_sums(_window_sums(x, r, x.ndim - 2), r, x.ndim - 1)
    count = _counts(h, r, x.device, x.dtype)[:, None] * _counts(w, r, x.device, x.dtype)[None, :]
    return sums / count


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """He, Sun and Tang's guided filter (gray guide), batched.

    Args:
        guide: (B, 1, H, W) guidance image.
        src: (B, C, H, W) image to filter.
        r: window radius.
        eps: regularisation.

    Returns:
        (B, C, H, W) filtered ``src``.
    """
    mean_i = box_filter(guide, r)
    mean_p = box_filter(src, r)
    cov_ip = box_filter(guide * src, r) - mean_i * mean_p
    var_i = box_filter(guide * guide, r) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_filter(a, r) * guide + box_filter(b, r)


@register_method
class GuidedFilterFusion(FusionMethod):
    """Guided filtering based fusion (GFF; Li, Kang and Hu, IEEE TIP 22(7), 2013).

    Two-scale decomposition with a 31x31 mean filter, saliency = Gaussian-smoothed |Laplacian|,
    binary weight maps refined by guided filters (base: r1, eps1; detail: r2, eps2) guided by each
    source, then normalised.

    Args:
        r1, eps1: guided filter of the base-layer weights (paper: 45, 0.3).
        r2, eps2: guided filter of the detail-layer weights (paper: 7, 1e-6).
    """

    name = "guided-filter"
    description = "guided filtering fusion (Li, Kang and Hu 2013)"
    bytes_per_pixel = 256

    def __init__(
        self,
        device: str | torch.device = "cpu",
        r1: int = 45,
        eps1: float = 0.3,
        r2: int = 7,
        eps2: float = 1e-6,
        **options: Any,
    ) -> None:
        super().__init__(device, r1=r1, eps1=eps1, r2=r2, eps2=eps2, **options)
        self.r1, self.eps1, self.r2, self.eps2 = int(r1), float(eps1), int(r2), float(eps2)
        lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        self.laplacian = lap[None, None].to(self.device)
        g = torch.exp(-((torch.arange(11.0) - 5.0) ** 2) / (2 * 5.0**2))
        g = g / g.sum()
        self.gauss = (g[:, None] * g[None, :])[None, None].to(self.device)

    def _saliency(self, x: torch.Tensor) -> torch.Tensor:
        lap = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.laplacian).abs()
        return F.conv2d(F.pad(lap, (5, 5, 5, 5), mode="replicate"), self.gauss)

    def fuse(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: D102
        base_a, base_b = box_filter(a, 15), box_filter(b, 15)
        det_a, det_b = a - base_a, b - base_b
        sa, sb = self._saliency(a), self._saliency(b)
        pa = (sa > sb).to(a.dtype) + 0.5 * (sa == sb).to(a.dtype)  # ties split: symmetric
        pb = 1.0 - pa
        wba = guided_filter(a, pa, self.r1, self.eps1).clamp_(0, 1)
        wbb = guided_filter(b, pb, self.r1, self.eps1).clamp_(0, 1)
        wda = guided_filter(a, pa, self.r2, self.eps2).clamp_(0, 1)
        wdb = guided_filter(b, pb, self.r2, self.eps2).clamp_(0, 1)
        base = _normalised_mix(wba, wbb, base_a, base_b)
        return base + _normalised_mix(wda, wdb, det_a, det_b)


def _normalised_mix(
    wa: torch.Tensor, wb: torch.Tensor, xa: torch.Tensor, xb: torch.Tensor
) -> torch.Tensor:
    """``(wa xa + wb xb) / (wa + wb)``, an equal mix where both weights vanish."""
    s = wa + wb
    ok = s > 1e-6
    fa = torch.where(ok, wa / s.clamp(min=1e-6), torch.full_like(wa, 0.5))
    return fa * xa + (1.0 - fa) * xb
