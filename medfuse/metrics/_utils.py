"""Shared helpers of the fusion metrics: input checks, MATLAB-compatible rounding and filters.

All helpers work on 2D numpy arrays ``(H, W)``. The filters reproduce MATLAB's ``filter2``/``conv2``
semantics ('valid' and 'same' with zero padding) with scipy, separably where the kernel allows it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "as_image",
    "check_triplet",
    "minmax_to_255",
    "fspecial_gaussian_1d",
    "filter2_valid_separable",
    "sobel_conv_same",
]


def as_image(x: object, name: str = "image", dtype: type = np.float64) -> np.ndarray:
    """Return ``x`` as a 2D floating array ``(H, W)`` (values kept, 0..255 expected).

    Args:
        x: a 2D array-like (numpy array, torch tensor on any device, nested lists). A torch
            tensor of shape ``(1, H, W)`` or ``(1, 1, H, W)`` is squeezed.
        name: used in the error message.
        dtype: floating type of the result.

    Raises:
        ValueError: if ``x`` is not 2D after squeezing leading singleton axes, or not finite.
    """
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    shape = arr.shape
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2D image (H, W), got shape {tuple(shape)}")
    arr = arr.astype(dtype, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def check_triplet(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Raise ``ValueError`` unless the fused image and the two sources have the same shape."""
    if not (fused.shape == a.shape == b.shape):
        raise ValueError(
            f"image sizes differ: fused {fused.shape}, a {a.shape}, b {b.shape}"
        )


def minmax_to_255(x: np.ndarray) -> np.ndarray:
    """VIFB's ``normalize1``: ``round(255 (x - min) / (max - min))``; a constant image gives 0."""
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return np.zeros_like(x, dtype=np.float64)
    return np.floor((x - lo) / (hi - lo) * 255.0 + 0.5)  # MATLAB round of non-negative values


def fspecial_gaussian_1d(n: int, sigma: float) -> np.ndarray:
    """1D factor of MATLAB ``fspecial('gaussian', n, sigma)`` (normalised to sum 1).

    ``np.outer(g, g)`` equals the 2D ``fspecial`` kernel up to round-off; the 2D kernel's
    ``h < eps * max(h)`` zeroing never triggers for the sizes used here (checked).
    """
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    h2 = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2.0 * sigma * sigma))
    if np.any(h2 < np.finfo(np.float64).eps * h2.max()):  # pragma: no cover - not for our sizes
        raise ValueError(f"gaussian window {n}x{n}, sigma {sigma} is not separable after zeroing")
    g = np.exp(-(x**2) / (2.0 * sigma * sigma))
    return g / g.sum()


def filter2_valid_separable(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(outer(g, g), img, 'valid')`` for a symmetric odd 1D factor ``g``.

    Args:
        img: ``(H, W)`` float array.
        g: ``(n,)`` odd-length symmetric kernel factor.

    Returns:
        ``(H - n + 1, W - n + 1)`` array.
    """
    n = g.shape[0]
    r = n // 2
    out = ndimage.correlate1d(img, g, axis=0, mode="constant")
    out = ndimage.correlate1d(out, g, axis=1, mode="constant")
    return out[r : img.shape[0] - r, r : img.shape[1] - r]


#: Sobel kernels in the orientation VIFB's Qabf uses with ``conv2`` (true convolution).
SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])


def sobel_conv_same(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB ``conv2(img, kernel, 'same')`` for a 3x3 kernel: true convolution, zero padding."""
    return ndimage.convolve(img, kernel, mode="constant", cval=0.0)
