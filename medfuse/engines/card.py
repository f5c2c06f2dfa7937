"""Model cards: render a Markdown card from a training run's ``summary.json``.

The card states what was trained (network, task, recipe, data, split), how (hardware, wall time,
epochs), the best validation metrics of the run, and the paper's published figures for the same
task next to them, with a warning that the two are not directly comparable (our validation split
and metric profile are not the paper's test set and table conventions). The paper rows come from
``../shared/reference/PAPER_CONVENTIONS.md``.

Usage::

    python -m medfuse.engines.card runs/ecfusion_ct-mri/summary.json > medfuse/weights/ecfusion-ct-mri.md
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PAPER_METRICS", "PAPER_REFERENCES", "PAPER_TARGETS", "baseline_score", "compare", "main",
           "quality_section", "render_model_card"]

#: The papers' own rows (ECFusion Tables 1-3 in the ``paper`` metric profile; S3IMFusion Tables
#: 1-2 on its own 21-pair CT-MRI split, partly different conventions), as collected in
#: ../shared/reference/PAPER_CONVENTIONS.md.
PAPER_TARGETS: dict[str, dict[str, dict[str, float]]] = {
    "ecfusion": {
        "ct-mri": {"MI": 3.6244, "Qabf": 0.6497, "VIF": 0.6707, "SSIM": 0.6554, "Qcb": 0.6981, "Qcv": 1150.07},
        "pet-mri": {"MI": 4.5539, "Qabf": 0.7555, "VIF": 0.8788, "SSIM": 0.6487, "Qcb": 0.6552, "Qcv": 71.50},
        "spect-mri": {"MI": 4.5115, "Qabf": 0.7378, "VIF": 0.8796, "SSIM": 0.6152, "Qcb": 0.6779, "Qcv": 50.37},
    },
    "s3imfusion": {
        "ct-mri": {"EN": 5.414, "AG": 8.045, "MI": 3.196, "SSIM": 0.885, "PSNR": 63.664, "Qabf": 0.415,
                   "SCD": 1.569, "SF": 38.077},
        "spect-mri": {"EN": 5.984, "AG": 12.648, "MI": 3.791, "SSIM": 0.925, "PSNR": 62.927, "Qabf": 0.614,
                      "SCD": 1.245, "SF": 43.484},
    },
}

#: the metrics of each paper's tables, in their order.
PAPER_METRICS: dict[str, tuple[str, ...]] = {
    "ecfusion": ("MI", "Qabf", "VIF", "SSIM", "Qcb", "Qcv"),
    "s3imfusion": ("EN", "AG", "MI", "SSIM", "SF", "PSNR", "Qabf", "SCD"),
}

PAPER_REFERENCES: dict[str, str] = {
    "ecfusion": "Luo et al. 2025, ECFusion (Tables 1-3: the paper's 24 Harvard test pairs per task)",
    "s3imfusion": "Lv et al. 2025, S3IMFusion (Tables 1-2: its own 21-pair CT-MRI / SPECT-MRI test split)",
}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.1f}"
    return "" if v is None else str(v)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return lines


def _better(metric: str, x: float, y: float) -> bool:
    from medfuse.metrics.profiles import higher_is_better

    return x > y if higher_is_better(metric) else x < y


def compare(model: Mapping[str, float], paper: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]],
            metrics: Sequence[str]) -> dict[str, Any]:
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
    return {"reaches_paper": reach, "short_of_paper": short, "beats_all_baselines": beats, "lost_to": lost}


def baseline_score(model: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]],
                   metrics: Sequence[str]) -> float:
    """How a model stands against the classical baselines, as one number for choosing an epoch.

    ``(metrics on which the model beats every baseline) + (share of the (metric, baseline) pairs
    it beats)``: the integer part is the count the issue's "beats every baseline on at least 4 of
    6" criterion uses, the fraction breaks ties by the near misses. Range ``[0, len(metrics) + 1]``.

    Args:
        model: ``{metric: mean}`` of the model.
        baselines: ``{method: {metric: mean}}`` on the same images.
        metrics: the metrics to compare (directions from :func:`medfuse.metrics.higher_is_better`).
    """
    beats_all = len(compare(model, {}, baselines, metrics)["beats_all_baselines"])
    pairs = [(m, v[m]) for m in metrics if m in model for v in baselines.values() if m in v]
    won = sum(_better(m, model[m], ref) for m, ref in pairs)
    return beats_all + (won / len(pairs) if pairs else 0.0)


def quality_section(net: str, task: str, quality: Mapping[str, Any], paper: Mapping[str, float] | None = None,
                    name: str | None = None) -> list[str]:
    """Markdown lines: the validation-split quality table (benchmarks/bench_quality.py output).

    Args:
        net: network name (selects the paper's metrics, :data:`PAPER_METRICS`).
        task: task name.
        quality: ``quality.json["tasks"][task]`` of ``benchmarks/bench_quality.py``.
        paper: the paper's row (default: :data:`PAPER_TARGETS`).
        name: the model's column in ``quality`` (default: ``net``).
    """
    name = name or net
    paper = dict(paper if paper is not None else PAPER_TARGETS.get(net, {}).get(task, {}))
    metrics = PAPER_METRICS.get(net, tuple(paper))
    profiles = quality.get("profiles", {})
    lines = ["## Quality on the validation split", "",
             f"{quality.get('pairs')} validation pairs, fused in paper-style folder mode (8-bit PNG, the "
             "fused luma for colour tasks) and scored with `medfuse evaluate`; reproduce with "
             f"`python benchmarks/bench_quality.py --task {task}`. The paper row is the paper's own table on its "
             "test set (not in ../shared/data): a like-for-like metric convention (`paper` profile) on "
             "different images.", ""]
    for profile in ("paper", "vifb"):
        scores = profiles.get(profile)
        if not scores or name not in scores:
            continue
        rows = [[f"**{name} (this model)**", *[scores[name].get(m) for m in metrics]]]
        if profile == "paper" and paper:
            rows.append(["paper (its test set)", *[paper.get(m) for m in metrics]])
        base = {k: v for k, v in scores.items() if k != name and k not in ("ecfusion", "s3imfusion")}
        rows += [[k, *[v.get(m) for m in metrics]] for k, v in base.items()]
        lines += [f"Profile `{profile}`" + (" (the conventions of the ECFusion paper's tables, "
                  "../shared/reference/PAPER_CONVENTIONS.md)" if profile == "paper" else
                  " (VIFB toolbox; the profile of the training validation)") + ":", ""]
        lines += _table(["", *[m + (" (lower)" if m == "Qcv" else "") for m in metrics]], rows)
        lines.append("")
        if profile == "paper":
            c = compare(scores[name], paper, base, metrics)
            n_paper = len([m for m in metrics if m in paper])
            if n_paper:
                lines.append(f"- Paper's row reached on {len(c['reaches_paper'])} of {n_paper} metrics"
                             + (f" ({', '.join(c['reaches_paper'])})" if c["reaches_paper"] else "") + ".")
            else:
                lines.append("- The paper has no table for this task.")
            for m, (mv, pv, gap) in c["short_of_paper"].items():
                lines.append(f"  - {m}: {_fmt(mv)} vs {_fmt(pv)} ({gap:+.1%}).")
            lines.append(f"- Beats every classical baseline on {len(c['beats_all_baselines'])} of {len(metrics)} "
                         "metrics" + (f" ({', '.join(c['beats_all_baselines'])})" if c["beats_all_baselines"]
                                      else "") + f" (target: {len(metrics) - 1}).")
            for m, who in c["lost_to"].items():
                lines.append(f"  - {m}: not better than {', '.join(who)}.")
            lines.append("")
    return lines


def render_model_card(summary: Mapping[str, Any], paper: Mapping[str, float] | None = None,
                      notes: Sequence[str] = (), quality: Mapping[str, Any] | None = None) -> str:
    """A Markdown model card for a run.

    Args:
        summary: the run's ``summary.json`` (from :func:`medfuse.engines.workflow.run_training`).
        paper: the paper's figures for this task (default: :data:`PAPER_TARGETS` of the network
            and task, when known).
        notes: extra paragraphs (e.g. test-set results scored afterwards).
        quality: ``quality.json["tasks"][task]`` of ``benchmarks/bench_quality.py`` (adds the
            validation-split table with the paper row and the classical baselines).

    Returns:
        the card text (ends with a newline).
    """
    net, task = str(summary.get("network", "")), str(summary.get("task", ""))
    paper = dict(paper if paper is not None else PAPER_TARGETS.get(net, {}).get(task, {}))
    val = summary.get("validation", {}) or {}
    best = dict(val.get("best") or {})
    hw = summary.get("hardware", {}) or {}
    files = summary.get("files", {}) or {}
    lines = [f"# {net} - {task}", "",
             f"Fusion network `{net}` (medfuse.nets) trained by `medfuse train` for the {task.upper()} task on the "
             "Harvard Whole Brain Atlas training pairs (BT.601 luma of PET/SPECT, inputs in [-1, 1]).", "",
             "## Training", ""]
    facts = [
        ("config", summary.get("name")), ("network kwargs", json.dumps(summary.get("network_kwargs", {}))),
        ("seed", summary.get("seed")), ("epochs", f"{summary.get('epochs')} of {summary.get('max_epochs')}"),
        ("iterations", summary.get("iterations")), ("batch size (per process)", summary.get("batch_size")),
        ("processes", summary.get("world_size")), ("training items / epoch", summary.get("train_items")),
        ("validation pairs", summary.get("validation_items")), ("mixed precision", summary.get("amp") or "off"),
        ("hardware", hw.get("gpu") or f"CPU ({hw.get('processor', '?')}, {hw.get('torch_threads', '?')} threads)"),
        ("software", f"torch {hw.get('torch', '?')}, MONAI {hw.get('monai', '?')}, ignite {hw.get('ignite', '?')}"),
        ("wall time", f"{summary.get('wall_time_s')} s (training {summary.get('train_time_s')} s, "
                      f"{summary.get('seconds_per_iteration')} s/iteration)"
                      + (f"; resumed after epoch {summary['resumed_from_epoch']}: these figures are the last "
                         "session's" + (f", all epochs trained in {summary['epoch_time_total_s']:.0f} s"
                                        if summary.get("epoch_time_total_s") else "")
                         if summary.get("resumed_from_epoch") else "")),
        ("weights", f"`{files.get('weights')}` (sha256 `{files.get('weights_sha256')}`)"),
    ]
    lines += _table(["", ""], facts)
    lines += ["", "## Validation", "",
              f"Best epoch {val.get('best_epoch')} by `{val.get('key_metric')}` on the held-out validation pairs "
              f"(`pipelines/splits/harvard_val10.json`: 10 % of the training pairs, chosen by file name; the "
              f"slices share patients with the training pairs), metric profile `{val.get('profile')}`.", ""]
    names = [m for m in val.get("metrics", []) if m in best] or list(best)
    if names:
        rows = [["this run (validation)", *[best[m] for m in names]]]
        if paper:
            rows.append(["paper (its test set)", *[paper.get(m) for m in names]])
        lines += _table(["", *names], rows)
    else:
        lines.append("No validation metrics were recorded.")
    if paper:
        lines += ["", f"Paper figures: {PAPER_REFERENCES.get(net, net)}. They are not directly comparable with "
                  "the validation row: different images, and the paper's conventions (e.g. MI in bits, mean "
                  "SSIM) may differ from this profile's; score the paper's test pairs with "
                  "`medfuse evaluate --profile paper` for a like-for-like comparison."]
    if quality:
        lines += [""] + quality_section(net, task, quality, paper)
    for n in notes:
        lines += ["", str(n)]
    lines += ["", "## Intended use", "",
              "Research on multimodal image fusion. Not a medical device; not for diagnosis.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m medfuse.engines.card SUMMARY.json [--quality Q.json] [--notes N.md]``: print a card."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m medfuse.engines.card", description="Render a model card.")
    p.add_argument("summary", help="RUN/summary.json of medfuse train")
    p.add_argument("--quality", help="quality.json of benchmarks/bench_quality.py")
    p.add_argument("--notes", action="append", default=[], help="Markdown file appended to the card")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    summary = json.loads(Path(args.summary).read_text())
    quality = None
    if args.quality:
        tasks = json.loads(Path(args.quality).read_text()).get("tasks", {})
        quality = tasks.get(str(summary.get("task")))
    notes = [Path(n).read_text().strip() for n in args.notes]
    sys.stdout.write(render_model_card(summary, notes=notes, quality=quality))


if __name__ == "__main__":
    main()
