"""Model cards: render a Markdown card from a training run's ``summary.json``.

The card states what was trained (network, task, recipe, data, split), how (hardware, wall time,
epochs), the best validation metrics of the run, and the paper's published figures for the same
task next to them, with a warning that the two are not directly comparable (our validation split
and metric profile are not the paper's test set and table conventions). The paper rows are the
papers' own tables (:data:`PAPER_TARGETS`); the comparison with them and with the classical
baselines is :mod:`medfuse.nets.quality`'s.

Usage::

    python -m medfuse.engines.card runs/ecfusion_ct-mri/summary.json > card.md
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medfuse.nets.quality import (
    AUTO_METRICS,
    AUTO_MIN_WINS,
    PAPER_METRICS,
    baseline_score,
    beats_baselines,
    compare,
    read_quality,
)

__all__ = [
    "PAPER_METRICS", "PAPER_REFERENCES", "PAPER_TARGETS", "baseline_score", "compare", "main",
    "quality_section",
    "render_model_card",
]

#: The papers' own rows (ECFusion Tables 1-3, whose conventions the ``paper`` metric profile
#: reproduces; S3IMFusion Tables 1-2 on its own 21-pair CT-MRI split, partly other conventions).
PAPER_TARGETS: dict[str, dict[str, dict[str, float]]] = {
    "ecfusion": {
        "ct-mri": {"MI": 3.6244, "Qabf": 0.6497, "VIF": 0.6707, "SSIM": 0.6554, "Qcb": 0.6981,
                   "Qcv": 1150.07},
        "pet-mri": {"MI": 4.5539, "Qabf": 0.7555, "VIF": 0.8788, "SSIM": 0.6487, "Qcb": 0.6552,
                    "Qcv": 71.50},
        "spect-mri": {"MI": 4.5115, "Qabf": 0.7378, "VIF": 0.8796, "SSIM": 0.6152, "Qcb": 0.6779,
                      "Qcv": 50.37},
    },
    "s3imfusion": {
        "ct-mri": {"EN": 5.414, "AG": 8.045, "MI": 3.196, "SSIM": 0.885, "PSNR": 63.664,
                   "Qabf": 0.415, "SCD": 1.569, "SF": 38.077},
        "spect-mri": {"EN": 5.984, "AG": 12.648, "MI": 3.791, "SSIM": 0.925, "PSNR": 62.927,
                      "Qabf": 0.614, "SCD": 1.245, "SF": 43.484},
    },
}

PAPER_REFERENCES: dict[str, str] = {
    "ecfusion": "Luo et al. 2025, ECFusion (Tables 1-3: the paper's 24 Harvard test pairs per "
                "task)",
    "s3imfusion": "Lv et al. 2025, S3IMFusion (Tables 1-2: its own 21-pair CT-MRI / SPECT-MRI "
                  "test split)",
}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:.1f}"
    return "" if v is None else str(v)


def _listed(names: Sequence[str]) -> str:
    return f" ({', '.join(names)})" if names else ""


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return lines


def quality_section(net: str, task: str, quality: Mapping[str, Any],
                    paper: Mapping[str, float] | None = None, name: str | None = None) -> list[str]:
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
             f"{quality.get('pairs')} validation pairs, fused in paper-style folder mode (8-bit "
             "PNG, the fused luma for colour tasks) and scored with `medfuse evaluate`; reproduce "
             f"with `python benchmarks/bench_quality.py --task {task}`. The paper row is the "
             "paper's own table on its test set (not among medfuse's data): a like-for-like metric "
             "convention (`paper` profile) on different images.", ""]
    for profile in ("paper", "vifb"):
        scores = profiles.get(profile)
        if not scores or name not in scores:
            continue
        rows = [[f"**{name} (this model)**", *[scores[name].get(m) for m in metrics]]]
        if profile == "paper" and paper:
            rows.append(["paper (its test set)", *[paper.get(m) for m in metrics]])
        base = {k: v for k, v in scores.items() if k != name and k not in PAPER_METRICS}
        rows += [[k, *[v.get(m) for m in metrics]] for k, v in base.items()]
        lines += [f"Profile `{profile}`" + (" (the conventions of the ECFusion paper's tables, "
                  "docs/metrics.md)" if profile == "paper" else
                  " (VIFB toolbox; the profile of the training validation)") + ":", ""]
        lines += _table(["", *[m + (" (lower)" if m == "Qcv" else "") for m in metrics]], rows)
        lines.append("")
        if profile == "paper":
            c = compare(scores[name], paper, base, metrics)
            n_paper = len([m for m in metrics if m in paper])
            if n_paper:
                lines.append(f"- Paper's row reached on {len(c['reaches_paper'])} of {n_paper} "
                             f"metrics{_listed(c['reaches_paper'])}.")
            else:
                lines.append("- The paper has no table for this task.")
            for m, (mv, pv, gap) in c["short_of_paper"].items():
                lines.append(f"  - {m}: {_fmt(mv)} vs {_fmt(pv)} ({gap:+.1%}).")
            wins = c["beats_all_baselines"]
            lines.append(f"- Beats every classical baseline on {len(wins)} of {len(metrics)} "
                         f"metrics{_listed(wins)}.")
            for m, who in c["lost_to"].items():
                lines.append(f"  - {m}: not better than {', '.join(who)}.")
            auto = compare(scores[name], {}, base, AUTO_METRICS)["beats_all_baselines"]
            picked = "picks" if beats_baselines(scores[name], base) else "does not pick"
            lines.append(f"- `medfuse fuse --method auto` {picked} it: it beats every baseline on "
                         f"{len(auto)} of {', '.join(AUTO_METRICS)} (needs {AUTO_MIN_WINS}).")
            lines.append("")
    return lines


def _training_facts(summary: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The rows of the card's training table."""
    hw = summary.get("hardware", {}) or {}
    files = summary.get("files", {}) or {}
    cpu = f"CPU ({hw.get('processor', '?')}, {hw.get('torch_threads', '?')} threads)"
    software = (f"torch {hw.get('torch', '?')}, MONAI {hw.get('monai', '?')}, "
                f"ignite {hw.get('ignite', '?')}")
    wall = (f"{summary.get('wall_time_s')} s (training {summary.get('train_time_s')} s, "
            f"{summary.get('seconds_per_iteration')} s/iteration)")
    if summary.get("resumed_from_epoch"):
        wall += (f"; resumed after epoch {summary['resumed_from_epoch']}: these figures are the "
                 "last session's")
        if summary.get("epoch_time_total_s"):
            wall += f", all epochs trained in {summary['epoch_time_total_s']:.0f} s"
    return [
        ("config", summary.get("name")),
        ("network kwargs", json.dumps(summary.get("network_kwargs", {}))),
        ("seed", summary.get("seed")),
        ("epochs", f"{summary.get('epochs')} of {summary.get('max_epochs')}"),
        ("iterations", summary.get("iterations")),
        ("batch size (per process)", summary.get("batch_size")),
        ("processes", summary.get("world_size")),
        ("training items / epoch", summary.get("train_items")),
        ("validation pairs", summary.get("validation_items")),
        ("mixed precision", summary.get("amp") or "off"),
        ("hardware", hw.get("gpu") or cpu),
        ("software", software),
        ("wall time", wall),
        ("weights", f"`{files.get('weights')}` (sha256 `{files.get('weights_sha256')}`)"),
    ]


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
    lines = [f"# {net} - {task}", "",
             f"Fusion network `{net}` (medfuse.nets) trained by `medfuse train` for the "
             f"{task.upper()} task on the Harvard Whole Brain Atlas training pairs (BT.601 luma of "
             "PET/SPECT, inputs in [-1, 1]).", "",
             "## Training", ""]
    lines += _table(["", ""], _training_facts(summary))
    lines += ["", "## Validation", "",
              f"Best epoch {val.get('best_epoch')} by `{val.get('key_metric')}` on the held-out "
              "validation pairs (`pipelines/splits/harvard_val10.json`: 10 % of the training "
              "pairs, chosen by file name; the slices share patients with the training pairs), "
              f"metric profile `{val.get('profile')}`.", ""]
    names = [m for m in val.get("metrics", []) if m in best] or list(best)
    if names:
        rows = [["this run (validation)", *[best[m] for m in names]]]
        if paper:
            rows.append(["paper (its test set)", *[paper.get(m) for m in names]])
        lines += _table(["", *names], rows)
    else:
        lines.append("No validation metrics were recorded.")
    if paper:
        lines += ["", f"Paper figures: {PAPER_REFERENCES.get(net, net)}. They are not directly "
                  "comparable with the validation row: different images, and the paper's "
                  "conventions (e.g. MI in bits, mean SSIM) may differ from this profile's; score "
                  "the paper's test pairs with `medfuse evaluate --profile paper` for a "
                  "like-for-like comparison."]
    if quality:
        lines += [""] + quality_section(net, task, quality, paper)
    for n in notes:
        lines += ["", str(n)]
    lines += ["", "## Intended use", "",
              "Research on multimodal image fusion. Not a medical device; not for diagnosis.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m medfuse.engines.card SUMMARY.json [--quality Q.json] [--notes N.md]``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m medfuse.engines.card",
                                description="Render a model card.")
    p.add_argument("summary", help="RUN/summary.json of medfuse train")
    p.add_argument("--quality", help="quality.json of benchmarks/bench_quality.py")
    p.add_argument("--notes", action="append", default=[],
                   help="Markdown file appended to the card")
    args = p.parse_args(sys.argv[1:] if argv is None else list(argv))
    summary = json.loads(Path(args.summary).read_text())
    quality = None
    if args.quality:
        quality = read_quality(args.quality).get("tasks", {}).get(str(summary.get("task")))
    notes = [Path(n).read_text().strip() for n in args.notes]
    sys.stdout.write(render_model_card(summary, notes=notes, quality=quality))


if __name__ == "__main__":
    main()
