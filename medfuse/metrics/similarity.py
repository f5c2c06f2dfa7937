"""Source-to-fused similarity metrics: RMSE, MSE, PSNR, CC, SCD and SSIM.

Conventions (see docs/metrics.md): ``vifb`` = the VIFB MATLAB toolbox, ``cddfuse`` = CDDFuse's
``Evaluator``, ``s3imfusion`` = the PSNR convention that reproduces the S3IMFusion paper.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ._utils import as_image, check_triplet, filter2_valid_separable, fspecial_gaussian_1d

__all__ = ["rmse", "mse", "psnr", "correlation_coefficient", "scd", "ssim", "ssim_maps_skimage",
           "ssim_pair"]


def _triplet(fused, a, b, dtype=np.float64):
    f, x, y = as_image(fused, "fused", dtype), as_image(a, "a", dtype), as_image(b, "b", dtype)
    check_triplet(f, x, y)
    return f, x, y


def _vifb_mse(x: np.ndarray, f: np.ndarray) -> float:
    # VIFB's helper: the Frobenius norm of the difference over the pixel count (not an MSE).
    d = x - f
    return float(np.sqrt(np.sum(d * d)) / d.size)


def rmse(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """RMSE as VIFB's ``metricsRmse`` computes it (lower is better).

    ``(e(A, F) + e(B, F)) / 2`` with ``e(X, F) = sqrt(sum (X - F)^2) / (M N)``: the Frobenius
    norm over the pixel count, which is *not* a root-mean-square error (kept for comparability).

    Args:
        fused, a, b: ``(H, W)`` images in 0..255.
    """
    f, x, y = _triplet(fused, a, b)
    return (_vifb_mse(x, f) + _vifb_mse(y, f)) / 2.0


def mse(fused: np.ndarray, a: np.ndarray, b: np.ndarray, scale: float = 1.0) -> float:
    """MSE (CDDFuse, lower is better): ``(mean((A - F)^2) + mean((B - F)^2)) / 2``.

    Args:
        fused, a, b: ``(H, W)`` images in 0..255.
        scale: images are multiplied by ``scale`` first (``1/255`` gives the MSE of [0, 1] data).
    """
    f, x, y = _triplet(fused, a, b)
    return float((np.mean(((x - f) * scale) ** 2) + np.mean(((y - f) * scale) ** 2)) / 2.0)


def _log10_ratio(num: float, den: float) -> float:
    """``log10(num / den)``; ``inf`` for a zero error ``den`` (a fused image equal to both
    sources), as the references' ``log10(x / 0)`` gives in MATLAB and NumPy, instead of Python's
    ZeroDivisionError."""
    if den == 0.0:
        return math.inf if num > 0 else math.nan
    return float(np.log10(num / den))


def psnr(fused: np.ndarray, a: np.ndarray, b: np.ndarray, convention: str = "vifb") -> float:
    """PSNR in dB (higher is better); three incompatible conventions exist under this name.

    - ``vifb``: ``20 log10(255 / sqrt(RMSE))`` with VIFB's RMSE (:func:`rmse`): ~55-60 dB.
    - ``cddfuse``: ``10 log10(max(F)^2 / MSE)`` with the true MSE (:func:`mse`); the peak is the
      fused image's maximum, not 255: ~15 dB here.
    - ``s3imfusion``: ``10 log10(255^2 / MSE)`` with the MSE of images scaled to [0, 1]: ~63 dB.

    Args:
        fused, a, b: ``(H, W)`` images in 0..255.
        convention: ``"vifb"``, ``"cddfuse"`` or ``"s3imfusion"``.
    """
    if convention == "vifb":
        return 20.0 * _log10_ratio(255.0, float(np.sqrt(rmse(fused, a, b))))
    if convention == "cddfuse":
        peak = float(np.max(as_image(fused, "fused")))
        return 10.0 * _log10_ratio(peak**2, mse(fused, a, b))
    if convention == "s3imfusion":
        return 10.0 * _log10_ratio(255.0**2, mse(fused, a, b, scale=1.0 / 255.0))
    raise ValueError(
        f"unknown PSNR convention {convention!r}: use 'vifb', 'cddfuse' or 's3imfusion'"
    )


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - np.mean(x)
    yc = y - np.mean(y)
    return float(np.sum(xc * yc) / np.sqrt(np.sum(xc * xc) * np.sum(yc * yc)))


def correlation_coefficient(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """CC (CDDFuse, higher is better): ``(r(A, F) + r(B, F)) / 2``, Pearson r over all pixels.

    Args:
        fused, a, b: ``(H, W)`` images in 0..255.
    """
    f, x, y = _triplet(fused, a, b)
    return (_pearson(x, f) + _pearson(y, f)) / 2.0


def scd(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """SCD, sum of the correlations of differences (CDDFuse, higher is better).

    ``r(A, F - B) + r(B, F - A)``.

    Args:
        fused, a, b: ``(H, W)`` images in 0..255.
    """
    f, x, y = _triplet(fused, a, b)
    return _pearson(x, f - y) + _pearson(y, f - x)


def _ssim_vifb(f: np.ndarray, sources: list[np.ndarray]) -> list[float]:
    """VIFB's Gaussian SSIM of each source against ``f`` (the fused moments filtered once)."""
    if min(f.shape) < 11:
        raise ValueError(
            f"image of {f.shape[1]}x{f.shape[0]} px is too small for SSIM (11x11 window)"
        )
    g = fspecial_gaussian_1d(11, 1.5)
    c1 = (0.01 * 255.0) ** 2
    c2 = (0.03 * 255.0) ** 2
    mu2 = filter2_valid_separable(f, g)
    s22 = filter2_valid_separable(f * f, g) - mu2 * mu2
    out = []
    for s in sources:
        mu1 = filter2_valid_separable(s, g)
        s11 = filter2_valid_separable(s * s, g) - mu1 * mu1
        s12 = filter2_valid_separable(s * f, g) - mu1 * mu2
        m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / (
            (mu1 * mu1 + mu2 * mu2 + c1) * (s11 + s22 + c2)
        )
        out.append(float(np.mean(m)))
    return out


#: scikit-image's default SSIM window (uniform filter) side.
_SKIMAGE_WIN = 7


def ssim_maps_skimage(im1: np.ndarray, sources: list[np.ndarray]) -> list[np.ndarray]:
    """The per-pixel SSIM maps behind :func:`ssim`'s ``skimage`` convention (the ``paper``
    profile): scikit-image 0.19 ``structural_similarity(im1, src, full=True)`` defaults on
    float32, data_range 2, one ``(H, W)`` map per source, uncropped; the fused image's filtered
    moments are computed once (same operation order)."""
    win = _SKIMAGE_WIN
    if min(im1.shape) < win:
        raise ValueError(
            f"image of {im1.shape[1]}x{im1.shape[0]} px is too small for SSIM (7x7 window)"
        )
    cov_norm = win * win / (win * win - 1.0)
    data_range = 2.0  # dtype_range[float32] = (-1, 1) in scikit-image
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    ux = ndimage.uniform_filter(im1, size=win)
    uxx = ndimage.uniform_filter(im1 * im1, size=win)
    vx = cov_norm * (uxx - ux * ux)
    out = []
    for im2 in sources:
        uy = ndimage.uniform_filter(im2, size=win)
        uyy = ndimage.uniform_filter(im2 * im2, size=win)
        uxy = ndimage.uniform_filter(im1 * im2, size=win)
        vy = cov_norm * (uyy - uy * uy)
        vxy = cov_norm * (uxy - ux * uy)
        a1, a2, b1, b2 = (2 * ux * uy + c1, 2 * vxy + c2, ux**2 + uy**2 + c1, vx + vy + c2)
        out.append((a1 * a2) / (b1 * b2))
    return out


def _ssim_skimage(im1: np.ndarray, sources: list[np.ndarray], crop: bool) -> list[float]:
    """scikit-image 0.19 ``structural_similarity(im1, src)`` defaults on float32, data_range 2, for
    each source: the mean of :func:`ssim_maps_skimage` (its border cropped with ``crop``)."""
    out = []
    for s in ssim_maps_skimage(im1, sources):
        if crop:
            p = (_SKIMAGE_WIN - 1) // 2
            s = s[p:-p, p:-p]
        out.append(float(s.mean(dtype=np.float64)))
    return out


def ssim_pair(
    fused: np.ndarray, x: np.ndarray, convention: str = "vifb", crop: bool = True
) -> float:
    """SSIM of one source ``x`` against the fused image (higher is better, max 1).

    - ``vifb`` (VIFB's ``metricsSsim``, Wang et al.'s reference code): normalised 11x11 Gaussian
      window, sigma 1.5, 'valid' filtering, population moments, ``C1 = (0.01 * 255)^2``,
      ``C2 = (0.03 * 255)^2``, float64; mean of the ``(M-10) x (N-10)`` map.
    - ``skimage`` (CDDFuse's ``structural_similarity(F, X)`` with scikit-image 0.19 defaults on
      float32 data): 7x7 uniform window with reflect padding, sample covariance (x 49/48),
      ``data_range = 2`` so ``C1 = 4e-4`` and ``C2 = 3.6e-3``, computed in float32; mean (float64)
      of the map cropped by 3 px per side, or of the whole map when ``crop=False``.

    Args:
        fused: ``(H, W)`` fused image in 0..255.
        x: ``(H, W)`` source image in 0..255.
        convention: ``"vifb"`` or ``"skimage"``.
        crop: ``skimage`` only: drop the 3-px border of the SSIM map before averaging.
    """
    if convention == "vifb":
        f = as_image(fused, "fused")
        s = as_image(x, "source")
        check_triplet(f, s, s)
        return _ssim_vifb(f, [s])[0]
    if convention == "skimage":
        im1 = as_image(fused, "fused", np.float32)
        im2 = as_image(x, "source", np.float32)
        check_triplet(im1, im2, im2)
        return _ssim_skimage(im1, [im2], crop)[0]
    raise ValueError(f"unknown SSIM convention {convention!r}: use 'vifb' or 'skimage'")


def ssim(
    fused: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    convention: str = "vifb",
    reduce: str = "sum",
    crop: bool = True,
) -> float:
    """SSIM of the fused image against both sources (higher is better).

    Args:
        fused, a, b: ``(H, W)`` images in 0..255.
        convention: ``"vifb"`` (Gaussian 11x11) or ``"skimage"`` (uniform 7x7), as
            :func:`ssim_pair`.
        reduce: ``"sum"`` (both references: max 2) or ``"mean"`` (the ECFusion paper: max 1).
        crop: passed to :func:`ssim_pair` for the ``skimage`` convention.
    """
    f, x, y = _triplet(fused, a, b)
    if convention == "vifb":
        total = sum(_ssim_vifb(f, [x, y]))
    elif convention == "skimage":
        total = sum(
            _ssim_skimage(f.astype(np.float32), [x.astype(np.float32), y.astype(np.float32)], crop)
        )
    else:
        raise ValueError(f"unknown SSIM convention {convention!r}: use 'vifb' or 'skimage'")
    if reduce == "sum":
        return total
    if reduce == "mean":
        return total / 2.0
    raise ValueError(f"unknown reduce {reduce!r}: use 'sum' or 'mean'")
