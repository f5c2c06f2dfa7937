"""Qabf, the gradient-based edge-preservation metric of Xydeas and Petrovic (higher is better)."""

from __future__ import annotations

import math

import numpy as np

from ._utils import SOBEL_X, SOBEL_Y, as_image, check_triplet, sobel_conv_same

__all__ = ["qabf"]

_TG, _KG, _DG = 0.9994, -15.0, 0.5
_TA, _KA, _DA = 0.9879, -22.0, 0.8


def _grad(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sx = sobel_conv_same(img, SOBEL_X)
    sy = sobel_conv_same(img, SOBEL_Y)
    g = np.sqrt(sx * sx + sy * sy)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(sx == 0, math.pi / 2, np.arctan(sy / sx))
    return g, alpha


def _q(gx: np.ndarray, ax: np.ndarray, gf: np.ndarray, af: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        G = np.minimum(gx, gf) / np.maximum(gx, gf)  # gF/gX where gX > gF, gX/gF where gX < gF
    G = np.where(gx == gf, gf, G)  # the references' bug (should be 1), kept for comparability
    A = 1.0 - np.abs(ax - af) / (math.pi / 2)
    qg = _TG / (1.0 + np.exp(_KG * (G - _DG)))
    qa = _TA / (1.0 + np.exp(_KA * (A - _DA)))
    return qg * qa


def qabf(fused: np.ndarray, a: np.ndarray, b: np.ndarray, convention: str = "vifb") -> float:
    """Qabf (VIFB's ``metricsQabf``; CDDFuse's ``Qabf`` is a port of it).

    Sobel gradients by true convolution with zero padding; strength ratio ``G`` and angle term
    ``A = 1 - |alpha_X - alpha_F| / (pi/2)`` pass through sigmoids (Tg=0.9994, kg=-15, Dg=0.5,
    Ta=0.9879, ka=-22, Da=0.8); ``Qabf = sum(Q_AF g_A + Q_BF g_B) / sum(g_A + g_B)``. Like both
    references, ``G = g_F`` (not 1) where the two gradient strengths are exactly equal.

    Args:
        fused, a, b: ``(H, W)`` images in 0..255.
        convention: ``"vifb"`` scales the images by 255 first (VIFB applies ``255*im2double`` to
            data already in 0..255; it only matters in the equal-gradient branch) or
            ``"cddfuse"`` (no scaling). The two agree to ~1e-10 on real images.
    """
    f, x, y = as_image(fused, "fused"), as_image(a, "a"), as_image(b, "b")
    check_triplet(f, x, y)
    if convention == "vifb":
        f, x, y = f * 255.0, x * 255.0, y * 255.0
    elif convention != "cddfuse":
        raise ValueError(f"unknown Qabf convention {convention!r}: use 'vifb' or 'cddfuse'")
    gA, aA = _grad(x)
    gB, aB = _grad(y)
    gF, aF = _grad(f)
    qa = _q(gA, aA, gF, aF)
    qb = _q(gB, aB, gF, aF)
    den = np.sum(gA + gB)
    if den == 0:
        return float("nan")  # both sources flat: no edge to preserve (references give NaN too)
    return float(np.sum(qa * gA + qb * gB) / den)
