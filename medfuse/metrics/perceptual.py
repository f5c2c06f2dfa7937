"""Human-visual-system metrics of VIFB: Qcb (Chen-Blum, higher is better) and Qcv
(Chen-Varshney, lower is better)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from ._utils import SOBEL_X, as_image, check_triplet, minmax_to_255

__all__ = ["qcb", "qcv"]


def _freqspace(n: int) -> np.ndarray:
    """MATLAB ``freqspace`` frequencies of one axis: ``(k - floor(n/2)) * 2 / n``."""
    return (np.arange(n) - n // 2) * 2.0 / n


def _csf_filter(img: np.ndarray, csf_unshifted: np.ndarray) -> np.ndarray:
    """Real part of ``ifft2(ifftshift(fftshift(fft2(img)) * csf))``.

    ``csf_unshifted`` is ``ifftshift(csf)``: multiplying the unshifted spectrum by it gives the
    same products as the shift-multiply-unshift sequence, without moving the spectrum twice.
    """
    return np.fft.ifft2(np.fft.fft2(img) * csf_unshifted).real


@lru_cache(maxsize=8)
def _csf_qcb(shape: tuple[int, int]) -> np.ndarray:
    r = _radius(shape, 30.0)
    return np.fft.ifftshift(np.exp(-((r / 15.3870) ** 2)) - 0.7622 * np.exp(-((r / 1.3456) ** 2)))


@lru_cache(maxsize=8)
def _csf_qcv(shape: tuple[int, int]) -> np.ndarray:
    r = _radius(shape, 8.0)
    return np.fft.ifftshift(2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1)))


def _radius(shape: tuple[int, int], divisor: float) -> np.ndarray:
    m, n = shape
    u = _freqspace(n)[None, :] * n / divisor
    v = _freqspace(m)[:, None] * m / divisor
    return np.sqrt(u * u + v * v)


def _gauss31(sigma: float) -> np.ndarray:
    x = np.arange(-15, 16, dtype=np.float64)
    return np.exp(-(x[None, :] ** 2 + x[:, None] ** 2) / (2 * sigma * sigma)) / (
        2 * np.pi * sigma * sigma
    )


@lru_cache(maxsize=8)
def _gauss_spectra(shape: tuple[int, int]) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """FFT size and real spectra of the 31x31 G_2 and G_4 kernels for linear convolution."""
    size = (
        sfft.next_fast_len(shape[0] + 30, real=True),
        sfft.next_fast_len(shape[1] + 30, real=True),
    )
    return size, sfft.rfft2(_gauss31(2.0), size), sfft.rfft2(_gauss31(4.0), size)


def _local_contrast(band: np.ndarray) -> np.ndarray:
    """``|conv(band, G_2) / conv(band, G_4) - 1|``, 'same' size, zero padding (one forward FFT)."""
    m, n = band.shape
    size, s2, s4 = _gauss_spectra((m, n))
    spec = sfft.rfft2(band, size)
    c2 = sfft.irfft2(spec * s2, size)[15 : 15 + m, 15 : 15 + n]
    c4 = sfft.irfft2(spec * s4, size)[15 : 15 + m, 15 : 15 + n]
    return np.abs(c2 / c4 - 1.0)


def _int_power(x: np.ndarray, p: float) -> np.ndarray:
    """``x ** p``; by repeated squaring when ``p`` is a small positive integer (much faster)."""
    if float(p).is_integer() and 0 < p <= 64:
        k, out, base = int(p), None, x
        while k:
            if k & 1:
                out = base if out is None else out * base
            k >>= 1
            if k:
                base = base * base
        assert out is not None  # p >= 1
        return out
    return x**p


def qcb(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Qcb, Chen and Blum's HVS metric as VIFB's ``metricsQcb`` computes it (defaults).

    Images are min-max normalised to 0..255 and rounded, band-passed by the CSF
    ``S(r) = exp(-(r/15.3870)^2) - 0.7622 exp(-(r/1.3456)^2)`` in the frequency domain
    (``u = f N / 30``), local contrast ``C = |(I*G_2)/(I*G_4) - 1|`` with unnormalised 31x31
    Gaussians, masked as ``C' = C^3 / (C^2 + 1e-4)``; the per-pixel preservation
    ``Q_XF = min(C'_X, C'_F) / max(...)`` is weighted by ``C'_X^2 / (C'_A^2 + C'_B^2)``; mean.

    On large black backgrounds the band-passed image is FFT round-off, so the value is
    reproducible across implementations only to ~1e-2 relative there.

    Args:
        fused, a, b: ``(H, W)`` images in 0..255.
    """
    f, x, y = as_image(fused, "fused"), as_image(a, "a"), as_image(b, "b")
    check_triplet(f, x, y)
    csf = _csf_qcb(f.shape)

    def contrast(img: np.ndarray) -> np.ndarray:
        band = _csf_filter(minmax_to_255(img), csf)
        c = _local_contrast(band)
        return c**3 / (c**2 + 1e-4)

    ca, cb, cf = contrast(x), contrast(y), contrast(f)
    with np.errstate(divide="ignore", invalid="ignore"):
        qaf = np.where(ca < cf, ca / cf, cf / ca)
        qbf = np.where(cb < cf, cb / cf, cf / cb)
        la = ca**2 / (ca**2 + cb**2)
        lb = cb**2 / (ca**2 + cb**2)
    return float(np.mean(la * qaf + lb * qbf))


def _block_reduce(img: np.ndarray, w: int) -> np.ndarray:
    """Sums over non-overlapping ``w x w`` blocks (zero-padded at the far edges as ``blkproc``)."""
    m, n = img.shape
    pm, pn = -m % w, -n % w
    if pm or pn:
        img = np.pad(img, ((0, pm), (0, pn)))
    mm, nn = img.shape
    return img.reshape(mm // w, w, nn // w, w).sum(axis=(1, 3))


def qcv(
    fused: np.ndarray, a: np.ndarray, b: np.ndarray, window: int = 16, alpha: float = 5.0
) -> float:
    """Qcv, Chen and Varshney's HVS metric as VIFB's ``metricsQcv`` computes it (lower is better).

    Images are min-max normalised to 0..255 and rounded; saliency ``lambda_X`` = block sums of
    ``g_X^alpha`` (Sobel magnitude, correlation, zero padding) over ``window x window`` blocks;
    the differences ``X - F`` are filtered by the Mannos-Sakrison CSF
    ``2.6 (0.0192 + 0.144 r) exp(-(0.144 r)^1.1)`` (``u = f N / 8``) and ``D_X`` is the block mean
    of the filtered value squared;
    ``Qcv = sum(lambda_A D_A + lambda_B D_B) / sum(lambda_A + lambda_B)``.

    Args:
        fused, a, b: ``(H, W)`` images in 0..255.
        window: block size (16 in VIFB).
        alpha: saliency exponent (5 in VIFB).
    """
    f, x, y = as_image(fused, "fused"), as_image(a, "a"), as_image(b, "b")
    check_triplet(f, x, y)
    f, x, y = minmax_to_255(f), minmax_to_255(x), minmax_to_255(y)

    def saliency(img: np.ndarray) -> np.ndarray:
        gx = ndimage.correlate(img, SOBEL_X, mode="constant")
        gy = ndimage.correlate(img, SOBEL_X.T, mode="constant")
        return _block_reduce(_int_power(np.sqrt(gx * gx + gy * gy), alpha), window)

    csf = _csf_qcv(f.shape)

    def distortion(img: np.ndarray) -> np.ndarray:
        d = _csf_filter(img - f, csf)
        return _block_reduce(d * d, window) / (window * window)

    la, lb = saliency(x), saliency(y)
    da, db = distortion(x), distortion(y)
    return float(np.sum(la * da + lb * db) / np.sum(la + lb))
