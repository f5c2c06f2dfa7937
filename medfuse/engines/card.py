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

__all__ = ["PAPER_REFERENCES", "PAPER_TARGETS", "main", "render_model_card"]

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


def render_model_card(summary: Mapping[str, Any], paper: Mapping[str, float] | None = None,
                      notes: Sequence[str] = ()) -> str:
    """A Markdown model card for a run.

    Args:
        summary: the run's ``summary.json`` (from :func:`medfuse.engines.workflow.run_training`).
        paper: the paper's figures for this task (default: :data:`PAPER_TARGETS` of the network
            and task, when known).
        notes: extra paragraphs (e.g. test-set results scored afterwards).

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
                      f"{summary.get('seconds_per_iteration')} s/iteration)"),
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
    for n in notes:
        lines += ["", str(n)]
    lines += ["", "## Intended use", "",
              "Research on multimodal image fusion. Not a medical device; not for diagnosis.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m medfuse.engines.card SUMMARY.json``: print the card of a run."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        raise SystemExit("usage: python -m medfuse.engines.card RUN/summary.json")
    sys.stdout.write(render_model_card(json.loads(Path(args[0]).read_text())))


if __name__ == "__main__":
    main()
