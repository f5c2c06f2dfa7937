"""Metric profiles and the :class:`FusionMetrics` scorer.

A profile fixes, for every metric name, the definition of one reference implementation:

- ``vifb``: the VIFB MATLAB toolbox (Zhang et al.), used by most medical fusion papers. VIFB has
  no VIF, SCD or CC: there ``VIF`` is Sheikh-Bovik pixel VIF summed over the sources and ``SCD``/
  ``CC`` are CDDFuse's definitions.
- ``cddfuse``: CDDFuse's ``utils/Evaluator.py`` (its ``VIFF`` column is reported here as ``VIF``).
- ``paper``: the conventions that reproduce the ECFusion paper's Tables 1-3 (MI in bits summed,
  VIFB Qabf/Qcb/Qcv, Sheikh-Bovik VIF summed, mean skimage-style SSIM without border crop) and
  the S3IMFusion PSNR (255^2 over the MSE of [0, 1] images).

``VIFF`` (Han et al. 2013) and VIFB's extra metrics are available in every profile; see
docs/metrics.md for every definition and direction.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial

import numpy as np

from . import basic, fidelity, gradient, information, perceptual, similarity
from ._utils import as_image

__all__ = [
    "PROFILES",
    "DEFAULT_METRICS",
    "HIGHER_IS_BETTER",
    "FusionMetrics",
    "aggregate",
    "to_luma",
    "higher_is_better",
]

MetricFn = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def _single(fn: Callable[..., float], **kw) -> MetricFn:
    def wrapped(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return fn(f, **kw)

    wrapped.__name__ = getattr(fn, "__name__", "metric")
    return wrapped


_VIFB: dict[str, MetricFn] = {
    "EN": _single(basic.entropy),
    "SD": _single(basic.standard_deviation),
    "SF": _single(basic.spatial_frequency, convention="vifb"),
    "AG": _single(basic.average_gradient, convention="vifb"),
    "EI": _single(basic.edge_intensity),
    "MI": partial(information.mutual_information, unit="nats"),
    "CE": information.cross_entropy,
    "RMSE": similarity.rmse,
    "PSNR": partial(similarity.psnr, convention="vifb"),
    "SSIM": partial(similarity.ssim, convention="vifb", reduce="sum"),
    "Qabf": partial(gradient.qabf, convention="vifb"),
    "Qcb": perceptual.qcb,
    "Qcv": perceptual.qcv,
    # not in VIFB: CDDFuse's definitions
    "VIF": partial(fidelity.vif, reduce="sum"),
    "SCD": similarity.scd,
    "CC": similarity.correlation_coefficient,
    "MSE": similarity.mse,
    # Han et al. 2013
    "VIFF": fidelity.viff,
}

_CDDFUSE: dict[str, MetricFn] = {
    "EN": _single(basic.entropy),
    "SD": _single(basic.standard_deviation),
    "SF": _single(basic.spatial_frequency, convention="cddfuse"),
    "AG": _single(basic.average_gradient, convention="cddfuse"),
    "MI": partial(information.mutual_information, unit="nats"),
    "MSE": similarity.mse,
    "CC": similarity.correlation_coefficient,
    "PSNR": partial(similarity.psnr, convention="cddfuse"),
    "SCD": similarity.scd,
    "VIF": partial(fidelity.vif, reduce="sum"),
    "Qabf": partial(gradient.qabf, convention="cddfuse"),
    "SSIM": partial(similarity.ssim, convention="skimage", reduce="sum", crop=True),
    # not in CDDFuse: VIFB's definitions, and Han et al. 2013
    "EI": _VIFB["EI"],
    "CE": _VIFB["CE"],
    "RMSE": _VIFB["RMSE"],
    "Qcb": _VIFB["Qcb"],
    "Qcv": _VIFB["Qcv"],
    "VIFF": fidelity.viff,
}

_PAPER: dict[str, MetricFn] = {
    **_VIFB,
    "MI": partial(information.mutual_information, unit="bits"),
    "SSIM": partial(similarity.ssim, convention="skimage", reduce="mean", crop=False),
    "PSNR": partial(similarity.psnr, convention="s3imfusion"),
}

#: profile name -> {metric name -> fn(fused, a, b) -> float}
PROFILES: dict[str, dict[str, MetricFn]] = {"vifb": _VIFB, "cddfuse": _CDDFUSE, "paper": _PAPER}

#: metrics computed when ``metrics=None``: what each reference reports (VIFB plus VIF/SCD/CC/VIFF;
#: CDDFuse's twelve; the ECFusion tables' six plus the S3IMFusion columns).
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "vifb": (
        "EN",
        "SD",
        "SF",
        "AG",
        "EI",
        "MI",
        "CE",
        "RMSE",
        "PSNR",
        "SSIM",
        "Qabf",
        "Qcb",
        "Qcv",
        "VIF",
        "SCD",
        "CC",
        "VIFF",
    ),
    "cddfuse": ("EN", "SD", "SF", "AG", "MI", "MSE", "CC", "PSNR", "SCD", "VIF", "Qabf", "SSIM"),
    "paper": (
        "EN",
        "SD",
        "SF",
        "AG",
        "MI",
        "PSNR",
        "SSIM",
        "Qabf",
        "SCD",
        "CC",
        "VIF",
        "VIFF",
        "Qcb",
        "Qcv",
    ),
}

#: metric -> True when a higher value is better (Qcv, CE, RMSE and MSE are lower-is-better).
HIGHER_IS_BETTER: dict[str, bool] = {
    "EN": True, "SD": True, "SF": True, "AG": True, "EI": True, "MI": True, "CE": False,
    "RMSE": False, "MSE": False, "PSNR": True, "SSIM": True, "Qabf": True, "Qcb": True,
    "Qcv": False, "VIF": True, "VIFF": True, "SCD": True, "CC": True,
}


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` means a better fusion."""
    try:
        return HIGHER_IS_BETTER[metric]
    except KeyError:
        raise ValueError(
            f"unknown metric {metric!r}; known: {', '.join(HIGHER_IS_BETTER)}"
        ) from None


def to_luma(img: object, name: str = "image") -> np.ndarray:
    """Luminance of an image for scoring: grey images pass through, RGB becomes BT.601 Y.

    ``Y = 0.299 R + 0.587 G + 0.114 B`` (BT.601 full range, the Y of JPEG YCbCr), as both papers
    score PET/SPECT fusion on Y.

    Args:
        img: ``(H, W)`` grey, or ``(H, W, 3)`` / ``(3, H, W)`` RGB, values in 0..255; a torch
            tensor is accepted.
        name: used in error messages.

    Returns:
        ``(H, W)`` float64 array (not rounded).
    """
    if hasattr(img, "detach"):
        img = img.detach().cpu().numpy()
    arr = np.asarray(img, dtype=np.float64)
    while arr.ndim > 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] != 1:
        if arr.shape[-1] in (3, 4):  # (H, W, 3) RGB or (H, W, 4) RGBA: alpha ignored
            arr = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
        elif arr.shape[0] == 3:  # (3, H, W)
            arr = arr[0] * 0.299 + arr[1] * 0.587 + arr[2] * 0.114
        else:
            raise ValueError(f"{name}: expected (H, W), (H, W, 3) or (3, H, W), got {arr.shape}")
    return as_image(arr, name)


class FusionMetrics:
    """Score a fused image against its two sources under one metric profile.

    Example:
        >>> fm = FusionMetrics(profile="vifb", metrics=["Qabf", "SSIM"])
        >>> scores = fm(fused, ct, mri)  # {"Qabf": 0.61, "SSIM": 1.32}

    Args:
        profile: ``"vifb"``, ``"cddfuse"`` or ``"paper"`` (see the module docstring).
        metrics: metric names to compute (any of ``PROFILES[profile]``); ``None`` for the
            profile's ``DEFAULT_METRICS``.
        quantize: round the fused image (and the sources) to integers in 0..255 first, as the
            papers do when they save 8-bit PNGs before scoring. Set ``False`` to score float data
            as is (EN and CE still bin to integers).
    """

    def __init__(self, profile: str = "vifb", metrics: Sequence[str] | str | None = None,
                 quantize: bool = True) -> None:
        if profile not in PROFILES:
            raise ValueError(
                f"unknown metric profile {profile!r}; use one of {', '.join(PROFILES)}"
            )
        table = PROFILES[profile]
        if metrics is None:
            names = list(DEFAULT_METRICS[profile])
        else:
            names = (
                [m.strip() for m in metrics.split(",")]
                if isinstance(metrics, str)
                else list(metrics)
            )
            lookup = {k.lower(): k for k in table}
            bad = [m for m in names if m.lower() not in lookup]
            if bad:
                raise ValueError(f"unknown metric(s) {', '.join(bad)}; known: {', '.join(table)}")
            names = [lookup[m.lower()] for m in names]
        self.profile = profile
        self.metrics: tuple[str, ...] = tuple(dict.fromkeys(names))
        self.quantize = quantize
        self._fns = {m: table[m] for m in self.metrics}

    def prepare(self, img: object, name: str) -> np.ndarray:
        """Luma of ``img`` as float64 ``(H, W)``, rounded and clipped to 0..255 when quantizing."""
        y = to_luma(img, name)
        if y.size and float(y.max()) <= 1.0 and np.any(y != np.round(y)):
            warnings.warn(
                f"{name}: values lie in [0, 1]; fusion metrics expect 0..255 (multiply by 255)",
                stacklevel=3,
            )
        if self.quantize:
            y = np.clip(np.rint(y), 0.0, 255.0)
        return y

    def __call__(self, fused: object, a: object, b: object) -> dict[str, float]:
        """Compute the selected metrics.

        Args:
            fused: ``(H, W)`` or RGB fused image, values in 0..255 (uint8 or float).
            a: source A (CT, or PET/SPECT: RGB is reduced to its BT.601 luma), same size.
            b: source B (MRI), same size.

        Returns:
            ``{metric name: value}`` in the order of ``self.metrics``.

        Raises:
            ValueError: when the sizes differ or an image is not 2D/RGB.
        """
        f, x, y = self.prepare(fused, "fused"), self.prepare(a, "a"), self.prepare(b, "b")
        if not (f.shape == x.shape == y.shape):
            raise ValueError(f"image sizes differ: fused {f.shape}, a {x.shape}, b {y.shape}")
        out: dict[str, float] = {}
        if "VIF" in self._fns and "VIFF" in self._fns:  # same definitions in every profile
            out["VIF"], out["VIFF"] = fidelity.vif_and_viff(f, x, y)
        for m, fn in self._fns.items():
            if m not in out:
                out[m] = float(fn(f, x, y))
        return {m: float(out[m]) for m in self.metrics}

    def score_batch(self, fused: object, a: object, b: object,
                    value_range: tuple[float, float] = (0.0, 1.0)) -> list[dict[str, float]]:
        """Score a batch, e.g. a network's validation output, image by image.

        Args:
            fused, a, b: ``(B, 1, H, W)`` or ``(B, 3, H, W)`` tensors/arrays (RGB is reduced to
                its luma), values in ``value_range``; ``(-1, 1)`` for tanh outputs.
            value_range: the data range, mapped linearly onto 0..255 (then clipped).

        Returns:
            one ``{metric: value}`` dict per image (pass them to :func:`aggregate`).
        """
        lo, hi = value_range
        if not hi > lo:
            raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")

        def to255(x: object) -> np.ndarray:
            if hasattr(x, "detach"):
                x = x.detach().float().cpu().numpy()
            arr = np.asarray(x, dtype=np.float64)
            if arr.ndim != 4 or arr.shape[1] not in (1, 3):
                raise ValueError(f"expected (B, 1, H, W) or (B, 3, H, W), got {arr.shape}")
            return np.clip((arr - lo) * (255.0 / (hi - lo)), 0.0, 255.0)

        f, x, y = to255(fused), to255(a), to255(b)
        if not (len(f) == len(x) == len(y)):
            raise ValueError(f"batch sizes differ: fused {len(f)}, a {len(x)}, b {len(y)}")
        return [self(fi, xi, yi) for fi, xi, yi in zip(f, x, y)]

    def __repr__(self) -> str:
        return f"FusionMetrics(profile={self.profile!r}, metrics={list(self.metrics)!r})"


def aggregate(rows: Iterable[Mapping[str, object]]) -> dict[str, dict[str, float]]:
    """Summarise per-image metric rows: mean, median, std (sample, ddof=1), min, max, n.

    Args:
        rows: one mapping per image, e.g. the dicts returned by :class:`FusionMetrics`; keys
            whose values are not numbers (an image name, say) are ignored; NaN values are left
            out of that metric's statistics (``n`` counts the finite values).

    Returns:
        ``{metric: {"mean", "median", "std", "min", "max", "n"}}`` in first-seen metric order.
    """
    values: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row.items():
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
                continue
            values.setdefault(k, []).append(float(v))
    out: dict[str, dict[str, float]] = {}
    for k, vs in values.items():
        arr = np.asarray([v for v in vs if math.isfinite(v)], dtype=np.float64)
        n = int(arr.size)
        if n == 0:
            nan = float("nan")
            out[k] = {"mean": nan, "median": nan, "std": nan, "min": nan, "max": nan, "n": 0}
            continue
        out[k] = {
            "mean": float(arr.mean()),
            "median": float(np.median(arr)),
            "std": float(arr.std(ddof=1)) if n > 1 else 0.0,
            "min": float(arr.min()),
            "max": float(arr.max()),
            "n": n,
        }
    return out
