"""Single-image fusion metrics: EN, SD, SF, AG, EI (higher is better for all of them).

Each function takes the fused image ``(H, W)`` with values in 0..255. Where the two reference
implementations differ, ``convention`` selects ``"vifb"`` (the VIFB MATLAB toolbox) or
``"cddfuse"`` (CDDFuse's ``utils/Evaluator.py``); see docs/metrics.md.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._utils import as_image

__all__ = [
    "entropy",
    "standard_deviation",
    "spatial_frequency",
    "average_gradient",
    "edge_intensity",
]


def _conv(convention: str) -> str:
    if convention not in ("vifb", "cddfuse"):
        raise ValueError(f"unknown convention {convention!r}: use 'vifb' or 'cddfuse'")
    return convention


def entropy(fused: np.ndarray) -> float:
    """EN: Shannon entropy (bits) of the 256-bin grey-level histogram.

    Both references agree: ``-sum(p log2 p)`` with ``p`` the histogram of ``uint8(round(F))``
    divided by the pixel count. Values are rounded half to even and clipped to 0..255.

    Args:
        fused: ``(H, W)`` image in 0..255.
    """
    f = as_image(fused, "fused")
    q = np.clip(np.rint(f), 0, 255).astype(np.int64).ravel()
    p = np.bincount(q, minlength=256) / q.size
    p = p[p > 0]
    return float(-np.sum(p * np.log2(p)))


def standard_deviation(fused: np.ndarray) -> float:
    """SD: population standard deviation of the grey levels (VIFB's ``metricsVariance``).

    Args:
        fused: ``(H, W)`` image in 0..255.
    """
    return float(np.std(as_image(fused, "fused")))


def spatial_frequency(fused: np.ndarray, convention: str = "vifb") -> float:
    """SF: ``sqrt(RF^2 + CF^2)`` from squared first differences along rows and columns.

    ``vifb``: both sums divided by the pixel count ``M N``. ``cddfuse``: each sum divided by the
    number of differences (``M (N-1)`` and ``(M-1) N``), i.e. means.

    Args:
        fused: ``(H, W)`` image in 0..255.
        convention: ``"vifb"`` or ``"cddfuse"``.
    """
    f = as_image(fused, "fused")
    dr = np.diff(f, axis=1)
    dc = np.diff(f, axis=0)
    if _conv(convention) == "vifb":
        return float(np.sqrt((np.sum(dr * dr) + np.sum(dc * dc)) / f.size))
    return float(np.sqrt(np.mean(dr * dr) + np.mean(dc * dc)))


def average_gradient(fused: np.ndarray, convention: str = "vifb") -> float:
    """AG: mean of ``sqrt((gx^2 + gy^2) / 2)`` with MATLAB ``gradient`` derivatives.

    Derivatives are central differences halved inside and one-sided at the borders
    (``numpy.gradient``). ``vifb`` divides the sum over all ``M N`` pixels by ``(M-1)(N-1)``;
    ``cddfuse`` takes the mean over ``M N``.

    Args:
        fused: ``(H, W)`` image in 0..255.
        convention: ``"vifb"`` or ``"cddfuse"``.
    """
    f = as_image(fused, "fused")
    gy, gx = np.gradient(f)
    s = np.sqrt((gx * gx + gy * gy) / 2.0)
    if _conv(convention) == "vifb":
        m, n = f.shape
        return float(np.sum(s) / ((m - 1) * (n - 1)))
    return float(np.mean(s))


def edge_intensity(fused: np.ndarray) -> float:
    """EI (VIFB's ``metricsEdge_intensity``): mean Sobel gradient magnitude.

    ``gx``/``gy`` are correlations with ``[1 2 1; 0 0 0; -1 -2 -1]`` and its transpose with
    replicate padding (MATLAB ``imfilter(..., 'replicate')``).

    Args:
        fused: ``(H, W)`` image in 0..255.
    """
    f = as_image(fused, "fused")
    w = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
    gx = ndimage.correlate(f, w, mode="nearest")
    gy = ndimage.correlate(f, w.T, mode="nearest")
    return float(np.mean(np.sqrt(gx * gx + gy * gy)))
