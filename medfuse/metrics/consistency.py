"""Inter-slice consistency of a fused volume: does it change along z more than its sources do?

Every 2D fusion method (the papers' networks included) fuses one slice at a time, so nothing ties
neighbouring fused slices together: a rule that switches between the sources from one slice to the
next, or a network whose output level drifts with the slice content, makes the fused volume flicker
along the slice axis in a way no 2D metric sees. The **inter-slice excess** ``ISE`` measures it::

    dX_k   = |X_{k+1} - X_k|                     per pixel, X in {F, A, B}, k = 0..K-2
    E_k    = max(0, dF_k - max(dA_k, dB_k) - tol)  the change F adds beyond the larger source change
    ISE    = sum_k sum_px E_k / sum_k sum_px max(dA_k, dB_k)

in grey levels of 0..255 images, ``tol`` = 1 grey level (the rounding of an 8-bit output). Lower
is better; 0 means the fused volume never changes between two slices more than one of its sources
does at that pixel. See docs/metrics.md for the reasoning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "InterSlice",
    "interslice_profile",
    "interslice_excess",
    "fused_slices_ise",
    "DEFAULT_TOLERANCE",
]

#: grey levels (of 0..255) of change not counted: the rounding of an 8-bit output.
DEFAULT_TOLERANCE = 1.0


@dataclass
class InterSlice:
    """Per-gap terms of :func:`interslice_excess`.

    Attributes:
        excess: (K-1,) sum over the pixels of slice gap k of the fused change beyond the sources'.
        source_change: (K-1,) sum over the pixels of gap k of ``max(|dA|, |dB|)``.
        value: ``excess.sum() / source_change.sum()`` (the ISE; NaN when the sources never change).
    """

    excess: np.ndarray
    source_change: np.ndarray

    @property
    def value(self) -> float:
        den = float(self.source_change.sum())
        num = float(self.excess.sum())
        return num / den if den > 0 else (0.0 if num == 0 else float("nan"))

    def per_gap(self) -> np.ndarray:
        """(K-1,) excess / source change of each gap (NaN where the sources do not change)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.source_change > 0, self.excess / self.source_change, np.nan)


def _pooled(s: np.ndarray, pool: int) -> np.ndarray:
    """(H, W) -> means of ``pool`` x ``pool`` blocks (edge remainders dropped); 0: the mean."""
    if pool == 0:
        return s.mean(dtype=np.float64).reshape(1, 1)
    if pool == 1:
        return s
    h, w = s.shape[0] // pool * pool, s.shape[1] // pool * pool
    return s[:h, :w].reshape(h // pool, pool, w // pool, pool).mean(axis=(1, 3))


def _getter(
    x: object, name: str, scale: float = 1.0, pool: int = 1
) -> tuple[Callable[[int], np.ndarray], tuple]:
    """A per-slice reader of a stack: (K, H, W), (K, 1, H, W) or (K, 3, H, W) (BT.601 luma).

    Slices are converted one at a time, so a 512x512x94 volume needs no float copy.
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim == 4 and arr.shape[1] in (1, 3):
        shape = (arr.shape[0], *arr.shape[2:])
    elif arr.ndim == 3:
        shape = arr.shape
    else:
        raise ValueError(
            f"{name}: expected a (K, H, W) or (K, C, H, W) stack, got shape {arr.shape}"
        )
    if shape[0] < 2:
        raise ValueError(f"{name}: needs at least 2 slices, got {shape[0]}")

    def get(i: int) -> np.ndarray:
        s = np.asarray(arr[i], dtype=np.float32)
        if s.ndim == 3:
            s = s[0] if s.shape[0] == 1 else s[0] * 0.299 + s[1] * 0.587 + s[2] * 0.114
        return _pooled(s * np.float32(scale) if scale != 1.0 else s, pool)

    return get, shape


def interslice_profile(
    fused: object,
    a: object,
    b: object,
    tolerance: float = DEFAULT_TOLERANCE,
    scales: tuple[float, float, float] = (1.0, 1.0, 1.0),
    pool: int = 1,
) -> InterSlice:
    """The per-gap excess and source change of a fused slice stack (see the module docstring).

    Args:
        fused: (K, H, W) fused slices in 0..255, K along the slice axis the 2D method worked on
            (numpy or torch, any dtype); (K, 1, H, W) and (K, 3, H, W) RGB (scored on its
            BT.601 luma) are accepted.
        a: source A on the same grid, same layouts (for PET/SPECT: the luma Y).
        b: source B on the same grid.
        tolerance: grey levels of extra change not counted (default 1: 8-bit rounding).
        scales: factors bringing ``fused``, ``a``, ``b`` to 0..255 (e.g. 255 for [0, 1] data).
        pool: 1 (default) compares pixels; n > 1 the means of n x n pixel blocks (the excess at
            that scale: blotches rather than texture); 0 the slice means (brightness flicker).
            Rounding averages out in a mean, so pooled scales are usually run with tolerance 0.

    Returns:
        :class:`InterSlice` with (K-1,) arrays.

    Raises:
        ValueError: shapes differ or fewer than 2 slices.
    """
    if pool < 0:
        raise ValueError(f"pool must be 0 (slice means) or a block size >= 1, got {pool}")
    gets, shapes = zip(
        *(_getter(x, n, s, pool) for x, n, s in zip((fused, a, b), ("fused", "a", "b"), scales))
    )
    if len(set(shapes)) > 1:
        raise ValueError(f"shapes differ: fused {shapes[0]}, a {shapes[1]}, b {shapes[2]}")
    k = shapes[0][0] - 1
    excess, change = np.zeros(k), np.zeros(k)
    prev = [g(0) for g in gets]
    for i in range(k):  # one slice pair at a time
        cur = [g(i + 1) for g in gets]
        df, da, db = (np.abs(c - p) for c, p in zip(cur, prev))
        src = np.maximum(da, db)
        excess[i] = float(np.maximum(df - src - np.float32(tolerance), 0).sum(dtype=np.float64))
        change[i] = float(src.sum(dtype=np.float64))
        prev = cur
    return InterSlice(excess=excess, source_change=change)


def fused_slices_ise(fused_u8: Any, a01: Any, b01: Any) -> float:
    """ISE of written fused slices against the luma the method fused (what run.json records).

    Args:
        fused_u8: (N, C, H, W) uint8 fused slices (C = 3: scored on the BT.601 luma).
        a01: (N, 1, H, W) source A luma in [0, 1] on the same grid.
        b01: (N, 1, H, W) source B luma in [0, 1].

    Returns:
        the ISE, rounded to 6 decimals (NaN for fewer than 2 slices).
    """
    if np.shape(fused_u8)[0] < 2:
        return float("nan")
    return round(interslice_profile(fused_u8, a01, b01, scales=(1.0, 255.0, 255.0)).value, 6)


def interslice_excess(
    fused: object, a: object, b: object, tolerance: float = DEFAULT_TOLERANCE, pool: int = 1
) -> float:
    """Inter-slice excess (ISE, lower is better) of a fused slice stack against its sources.

    ``sum max(0, |dz F| - max(|dz A|, |dz B|) - tolerance) / sum max(|dz A|, |dz B|)`` over all
    pixels of all neighbouring-slice pairs: the z-change the fused volume adds beyond the larger
    of its sources' z-changes at each pixel, as a fraction of the sources' own z-change. A volume
    equal to a source, their mean or their maximum scores 0; slice-wise flicker scores higher.

    Args:
        fused: (K, H, W) fused slices in 0..255 (K along the fused slice axis).
        a: (K, H, W) source A on the same grid, 0..255.
        b: (K, H, W) source B on the same grid, 0..255.
        tolerance: grey levels not counted (default 1: the rounding of an 8-bit output).
        pool: 1 pixels (the ISE); n > 1 n x n block means; 0 slice means (see
            :func:`interslice_profile`).

    Returns:
        the ISE (0 = never changes more than a source; NaN when the sources are constant along
        z and the fused volume is not).
    """
    return interslice_profile(fused, a, b, tolerance, pool=pool).value
