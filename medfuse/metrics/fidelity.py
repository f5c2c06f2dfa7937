"""Visual-information-fidelity metrics (higher is better).

- :func:`vif`: Sheikh and Bovik's pixel-domain VIF (``vifp_mscale``), summed over the sources; this
  is what CDDFuse calls ``VIFF`` and what the ECFusion paper's VIF column reproduces.
- :func:`viff`: Han, Cai, Cao and Xu, "A new image fusion performance metric based on visual
  information fidelity", Information Fusion 14(2):127-135, 2013, implemented from the authors'
  published definition (their ``VIFF_Public.m``).
"""

from __future__ import annotations

import numpy as np

from ._utils import as_image, check_triplet, filter2_valid_separable, fspecial_gaussian_1d

__all__ = ["vif", "vif_pair", "viff", "vif_and_viff"]

_EPS = 1e-10


def _vif_gains_multi(refs: list[np.ndarray], dist: np.ndarray) -> list[list[tuple]]:
    """Per source in ``refs``: per scale (1..4) the Sheikh-Bovik gain ``g``, noise ``sv^2`` and
    ``sigma1^2`` maps against ``dist`` (the fused image's moments are computed once).

    Windows of 17, 9, 5, 3 px (Gaussian, sigma = size / 5); for scales > 1 both images are first
    filtered 'valid' and subsampled ``[::2, ::2]``; moments from 'valid' filtering (population),
    then the fix-ups of ``vifp_mscale`` in its order.
    """
    if min(dist.shape) < 41:
        raise ValueError(f"image of {dist.shape[1]}x{dist.shape[0]} px is too small for VIF/VIFF "
                         "(4 scales need at least 41 px per side)")
    out: list[list[tuple]] = [[] for _ in refs]
    refs = list(refs)
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        g1 = fspecial_gaussian_1d(n, n / 5.0)
        if scale > 1:
            refs = [filter2_valid_separable(r, g1)[::2, ::2] for r in refs]
            dist = filter2_valid_separable(dist, g1)[::2, ::2]
        mu2 = filter2_valid_separable(dist, g1)
        s2_shared = filter2_valid_separable(dist * dist, g1) - mu2 * mu2
        s2_shared[s2_shared < 0] = 0
        for i, ref in enumerate(refs):
            mu1 = filter2_valid_separable(ref, g1)
            s1 = filter2_valid_separable(ref * ref, g1) - mu1 * mu1
            s12 = filter2_valid_separable(ref * dist, g1) - mu1 * mu2
            s2 = s2_shared.copy()
            s1[s1 < 0] = 0
            g = s12 / (s1 + _EPS)
            sv = s2 - g * s12
            m = s1 < _EPS
            g[m] = 0
            sv[m] = s2[m]
            s1[m] = 0
            m = s2 < _EPS
            g[m] = 0
            sv[m] = 0
            m = g < 0
            sv[m] = s2[m]
            g[m] = 0
            sv[sv <= _EPS] = _EPS
            out[i].append((g, sv, s1))
    return out


def _vif_gains(ref: np.ndarray, dist: np.ndarray) -> list[tuple]:
    """:func:`_vif_gains_multi` for one source."""
    return _vif_gains_multi([ref], dist)[0]


def _vid_vind(g: np.ndarray, sv: np.ndarray, s1: np.ndarray, sigma_nsq: float):
    """VID and VIND maps of one scale for visual noise ``sigma_nsq``."""
    return np.log10(1.0 + g * g * s1 / (sv + sigma_nsq)), np.log10(1.0 + s1 / sigma_nsq)


def _vif_from(gains: list, sigma_nsq: float) -> float:
    num = den = 0.0
    for g, sv, s1 in gains:
        vid, vind = _vid_vind(g, sv, s1, sigma_nsq)
        num += float(np.sum(vid))
        den += float(np.sum(vind))
    if den == 0:
        return 1.0 if num == 0 else float("nan")
    v = num / den
    return 1.0 if np.isnan(v) else v


#: Han et al.'s visual noise, comparison constant and per-scale weights.
_HAN_SQ = 0.005 * 255.0 * 255.0
_HAN_C = 1e-7
_HAN_P = np.array([1.0, 0.0, 0.15, 1.0]) / 2.15


def _viff_from(gains_a: list, gains_b: list) -> float:
    total = 0.0
    for s, ((ga, sva, s1a), (gb, svb, s1b)) in enumerate(zip(gains_a, gains_b)):
        za, ma = _vid_vind(ga, sva, s1a, _HAN_SQ)
        zb, mb = _vid_vind(gb, svb, s1b, _HAN_SQ)
        pick_a = ga < gb
        vid = np.where(pick_a, za, zb)
        vind = np.where(pick_a, ma, mb)
        total += _HAN_P[s] * float(np.sum(vid + _HAN_C) / np.sum(vind + _HAN_C))
    return total


def vif_pair(ref: np.ndarray, dist: np.ndarray, sigma_nsq: float = 2.0) -> float:
    """Sheikh-Bovik pixel-domain VIF of ``dist`` against ``ref`` (``vifp_mscale``).

    Four scales with Gaussian windows of 17, 9, 5, 3 px (sigma = size / 5); 'valid' filtering,
    dyadic subsampling; ``VIF = sum VID / sum VIND`` (NaN gives 1, as in CDDFuse).

    Args:
        ref: ``(H, W)`` source image in 0..255 (at least 41 px per side).
        dist: ``(H, W)`` fused image in 0..255.
        sigma_nsq: visual noise variance (2 in both vifp_mscale and CDDFuse).
    """
    r, d = as_image(ref, "source"), as_image(dist, "fused")
    check_triplet(d, r, r)
    return _vif_from(_vif_gains(r, d), sigma_nsq)


def vif(fused: np.ndarray, a: np.ndarray, b: np.ndarray, reduce: str = "sum") -> float:
    """VIF of the fused image: ``VIF(A, F) + VIF(B, F)`` (CDDFuse's ``VIFF``; ECFusion's VIF).

    Args:
        fused, a, b: ``(H, W)`` images in 0..255.
        reduce: ``"sum"`` (CDDFuse, ECFusion paper) or ``"mean"``.
    """
    f, x, y = as_image(fused, "fused"), as_image(a, "a"), as_image(b, "b")
    check_triplet(f, x, y)
    ga, gb = _vif_gains_multi([x, y], f)
    total = _vif_from(ga, 2.0) + _vif_from(gb, 2.0)
    if reduce == "sum":
        return total
    if reduce == "mean":
        return total / 2.0
    raise ValueError(f"unknown reduce {reduce!r}: use 'sum' or 'mean'")


def viff(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """VIFF of Han et al. (Information Fusion 2013), the fusion metric ECFusion cites for VIF.

    Per scale the Sheikh-Bovik VID/VIND maps of each source against the fused image are computed
    with visual noise ``sigma_n^2 = 0.005 * 255^2``; at each position the source with the *smaller*
    gain ``g`` contributes (ties go to B), as the authors' code does; per scale
    ``F_s = sum(VID + C) / sum(VIND + C)`` with ``C = 1e-7``, and
    ``VIFF = sum_s p_s F_s`` with weights ``p = [1, 0, 0.15, 1] / 2.15``.

    Args:
        fused, a, b: ``(H, W)`` grey images in 0..255 (colour images: pass the luminance).
    """
    f, x, y = as_image(fused, "fused"), as_image(a, "a"), as_image(b, "b")
    check_triplet(f, x, y)
    return _viff_from(*_vif_gains_multi([x, y], f))


def vif_and_viff(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``(vif(fused, a, b), viff(fused, a, b))`` sharing the filtering work (about half the time).

    Args:
        fused, a, b: ``(H, W)`` images in 0..255.
    """
    f, x, y = as_image(fused, "fused"), as_image(a, "a"), as_image(b, "b")
    check_triplet(f, x, y)
    ga, gb = _vif_gains_multi([x, y], f)
    return _vif_from(ga, 2.0) + _vif_from(gb, 2.0), _viff_from(ga, gb)
