"""Information-theoretic fusion metrics: MI (higher is better) and CE (lower is better)."""

from __future__ import annotations

import math

import numpy as np

from ._utils import as_image, check_triplet

__all__ = ["mutual_information", "cross_entropy"]


def _mi_pair(x: np.ndarray, f: np.ndarray) -> float:
    """VIFB's MI of one source with the fused image, in nats."""

    def bins(img: np.ndarray) -> np.ndarray:
        lo, hi = float(img.min()), float(img.max())
        s = np.zeros_like(img) if hi == lo else (img - lo) / (hi - lo)
        return np.floor(s * 255.0 + 0.5).astype(np.int64).ravel()  # MATLAB round, s >= 0

    bx, bf = bins(x), bins(f)
    joint = np.bincount(bx * 256 + bf, minlength=256 * 256).astype(np.float64) / bx.size
    px = np.bincount(bx, minlength=256) / bx.size
    pf = np.bincount(bf, minlength=256) / bf.size

    def h(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-np.sum(p * np.log(p)))

    return h(px) + h(pf) - h(joint)


def mutual_information(
    fused: np.ndarray, a: np.ndarray, b: np.ndarray, unit: str = "nats"
) -> float:
    """MI: ``MI(A, F) + MI(B, F)`` (summed over the sources).

    Each image is min-max stretched to [0, 1] and binned as ``round(255 x)`` (VIFB's
    ``metricsMutinf``); ``MI = H(X) + H(F) - H(X, F)`` on the 256x256 joint histogram. On 8-bit
    data this equals CDDFuse's ``mutual_info_score`` on raw values (the stretch is one-to-one).

    Args:
        fused, a, b: ``(H, W)`` images in 0..255.
        unit: ``"nats"`` (both references) or ``"bits"`` (the ECFusion/S3IMFusion papers).
    """
    f, x, y = as_image(fused, "fused"), as_image(a, "a"), as_image(b, "b")
    check_triplet(f, x, y)
    mi = _mi_pair(x, f) + _mi_pair(y, f)
    if unit == "nats":
        return mi
    if unit == "bits":
        return mi / math.log(2.0)
    raise ValueError(f"unknown unit {unit!r}: use 'nats' or 'bits'")


def cross_entropy(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """CE (VIFB's ``metricsCross_entropy``, lower is better): mean of two KL divergences.

    ``CE(X, F) = sum p_X log2(p_X / p_F)`` over grey levels where both 256-bin histograms are
    non-zero; the result is ``(CE(A, F) + CE(B, F)) / 2``. Values are rounded to integers.

    Args:
        fused, a, b: ``(H, W)`` images in 0..255.
    """
    f, x, y = as_image(fused, "fused"), as_image(a, "a"), as_image(b, "b")
    check_triplet(f, x, y)

    def hist(img: np.ndarray) -> np.ndarray:
        q = np.clip(np.rint(img), 0, 255).astype(np.int64).ravel()
        return np.bincount(q, minlength=256) / q.size

    pf = hist(f)

    def ce(px: np.ndarray) -> float:
        m = (px > 0) & (pf > 0)
        return float(np.sum(px[m] * np.log2(px[m] / pf[m])))

    return (ce(hist(x)) + ce(hist(y))) / 2.0
