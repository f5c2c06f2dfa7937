"""The shipped weights' quality record, and the rule by which ``--method auto`` trusts a network.

``medfuse/weights/quality.json`` (written by ``benchmarks/bench_quality.py``) holds, per task and
metric profile, the mean scores of the shipped networks and of the classical baselines on the
validation split: ``{"tasks": {task: {"pairs": N, "profiles": {profile: {method: {metric:
mean}}}}}}``. The model cards render it (:mod:`medfuse.engines.card`); ``medfuse fuse --method
auto`` reads it through :func:`auto_method`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "AUTO_METRICS",
    "AUTO_MIN_WINS",
    "BLACK_ENOUGH",
    "PAPER_METRICS",
    "TIE_BREAK",
    "auto_method",
    "baseline_priority",
    "baseline_score",
    "beats_baselines",
    "compare",
    "quality_path",
    "read_quality",
]

#: the metrics of each paper's tables, in their order.
PAPER_METRICS: dict[str, tuple[str, ...]] = {
    "ecfusion": ("MI", "Qabf", "VIF", "SSIM", "Qcb", "Qcv"),
    "s3imfusion": ("EN", "AG", "MI", "SSIM", "SF", "PSNR", "Qabf", "SCD"),
}

#: the six metrics of the ``paper`` profile's table (ECFusion Tables 1-3) that ``--method auto``
#: weighs every network on, and on how many of them it must beat every classical baseline.
AUTO_METRICS: tuple[str, ...] = PAPER_METRICS["ecfusion"]
AUTO_MIN_WINS = 4

#: the networks ``--method auto`` tries, in this order.
_AUTO_NETWORKS = ("ecfusion", "s3imfusion")


def quality_path() -> Path:
    """``quality.json`` in the shipped weights folder (``medfuse.nets.pretrained.WEIGHTS_DIR``)."""
    from medfuse.nets import pretrained

    return pretrained.WEIGHTS_DIR / "quality.json"


def read_quality(path: str | Path | None = None) -> dict[str, Any]:
    """The quality record (``{}`` when the file does not exist).

    Args:
        path: a ``quality.json`` (default: :func:`quality_path`).
    """
    path = Path(path) if path is not None else quality_path()
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def _better(metric: str, x: float, y: float) -> bool:
    from medfuse.metrics.profiles import higher_is_better

    return x > y if higher_is_better(metric) else x < y


def compare(model: Mapping[str, float], paper: Mapping[str, float],
            baselines: Mapping[str, Mapping[str, float]], metrics: Sequence[str]) -> dict[str, Any]:
    """How a model's means stand against the paper's row and against every baseline.

    Args:
        model: ``{metric: mean}`` of the model.
        paper: ``{metric: value}`` of the paper (metrics it lacks are left out).
        baselines: ``{method: {metric: mean}}``.
        metrics: the metrics to compare.

    Returns:
        ``{"reaches_paper": [...], "short_of_paper": {metric: (model, paper, relative gap)},
        "beats_all_baselines": [...], "lost_to": {metric: [methods]}}``; "reaching" means equal
        or better in the metric's direction (Qcv: lower).
    """
    reach, short, beats, lost = [], {}, [], {}
    for m in metrics:
        if m not in model:
            continue
        if m in paper:
            if _better(m, paper[m], model[m]):
                short[m] = (model[m], paper[m], (model[m] - paper[m]) / abs(paper[m]))
            else:
                reach.append(m)
        losers = [b for b, v in baselines.items() if m in v and not _better(m, model[m], v[m])]
        if losers:
            lost[m] = losers
        else:
            beats.append(m)
    return {"reaches_paper": reach, "short_of_paper": short, "beats_all_baselines": beats,
            "lost_to": lost}


def beats_baselines(model: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]],
                    metrics: Sequence[str] = AUTO_METRICS, min_wins: int = AUTO_MIN_WINS) -> bool:
    """Whether ``model`` is better than every baseline on at least ``min_wins`` of ``metrics``.

    A metric the model lacks counts as lost; there must be at least one baseline.
    """
    if not baselines:
        return False
    wins = compare(model, {}, baselines, metrics)["beats_all_baselines"]
    return len(wins) >= min_wins


def baseline_score(model: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]],
                   metrics: Sequence[str]) -> float:
    """How a model stands against the classical baselines, as one number for choosing an epoch.

    ``(metrics on which the model beats every baseline) + (share of the (metric, baseline) pairs
    it beats)``: the integer part is the count :func:`beats_baselines` (``--method auto``) uses,
    the fraction breaks ties by the near misses. Range ``[0, len(metrics) + 1]``.

    Args:
        model: ``{metric: mean}`` of the model.
        baselines: ``{method: {metric: mean}}`` on the same images.
        metrics: the metrics to compare (directions from :func:`medfuse.metrics.higher_is_better`).
    """
    beats_all = len(compare(model, {}, baselines, metrics)["beats_all_baselines"])
    pairs = [(m, v[m]) for m in metrics if m in model for v in baselines.values() if m in v]
    won = sum(_better(m, model[m], ref) for m, ref in pairs)
    return beats_all + (won / len(pairs) if pairs else 0.0)


#: the tie-break terms of :func:`baseline_priority` stay below this, far below the smallest step
#: of :func:`baseline_score` (one metric-baseline pair of at most a few hundred)
TIE_BREAK = 1e-3
#: validation backgrounds at or below this many grey levels count as equally black in
#: :func:`baseline_priority` (a few stray pixels at 1 in an 8-bit output)
BLACK_ENOUGH = 0.5


def baseline_priority(metrics: Mapping[str, float]) -> float:
    """An epoch's priority for keeping the best model by ``baseline_score``, ties broken.

    ``baseline_score`` moves in steps of one metric-baseline pair (1/24 with six metrics and four
    baselines), so epochs tie often (a fine-tune tied on every epoch and kept its first). Among
    equal scores the lower validation background wins (``val_background``, grey levels where both
    sources are 0), then the lower validation loss: ``baseline_score + TIE_BREAK / (1 + max(
    background, BLACK_ENOUGH)) + TIE_BREAK**2 / (1 + val_loss)``. Backgrounds up to
    :data:`BLACK_ENOUGH` tie, so the loss decides among black epochs: the SPECT-MRI fine-tune
    ``training_runs/ecfusion_spect-mri_cpu_ft5`` otherwise kept epoch 9 (background 0.020) over
    epoch 8 (0.035), which was better on all six paper metrics. The added terms are under
    :data:`TIE_BREAK`, so they never reorder different scores. A missing term adds nothing.

    Args:
        metrics: an epoch's validation metrics, with ``baseline_score``.
    """
    score = float(metrics["baseline_score"])
    background = metrics.get("val_background")
    if background is not None and math.isfinite(float(background)):
        score += TIE_BREAK / (1.0 + max(float(background), BLACK_ENOUGH))
    loss = metrics.get("val_loss")
    if loss is not None and math.isfinite(float(loss)):
        score += TIE_BREAK**2 / (1.0 + max(float(loss), 0.0))
    return score


def auto_method(task: str | None, quality: Mapping[str, Any] | None = None) -> str:
    """The method ``medfuse fuse --method auto`` picks for ``task``.

    A shipped network is picked when its validation figures under the ``paper`` profile beat
    every classical baseline on at least :data:`AUTO_MIN_WINS` of the :data:`AUTO_METRICS`
    (:func:`beats_baselines`) and its weights file is there; otherwise the Laplacian pyramid, the
    best classical all-rounder on the validation split. ECFusion is tried before S3IMFusion.

    Args:
        task: "ct-mri" | "pet-mri" | "spect-mri" (None: no network).
        quality: the quality record (default: :func:`read_quality`).
    """
    from medfuse.nets.pretrained import pretrained_path

    if not task:
        return "laplacian"
    record = read_quality() if quality is None else quality
    scores = record.get("tasks", {}).get(task, {}).get("profiles", {}).get("paper", {})
    baselines = {k: v for k, v in scores.items() if k not in PAPER_METRICS}
    for net in _AUTO_NETWORKS:
        if net in scores and beats_baselines(scores[net], baselines) \
                and pretrained_path(net, task).is_file():
            return net
    return "laplacian"
