"""How far a network is from ``--method auto``'s bar: blends with the baselines, scored.

``--method auto`` picks a network for a task when it beats every classical baseline on at least 4
of the 6 metrics of the ECFusion paper's table (``medfuse.nets.quality.AUTO_METRICS``), under the
``paper`` profile on the validation split. This script asks whether the gap is a matter of the
network's intensities: it fuses the validation pairs with the network and with each classical
method (as ``benchmarks/bench_quality.py`` does), then scores the pixelwise blends
``(1 - w) * network + w * baseline`` for each baseline and weight ``w``, and prints, for each, the
six metrics and the ones on which it beats every baseline. If no blend with any baseline reaches
the bar, neither an intensity correction nor borrowing a baseline's output can close the gap; a
network has to fuse differently.

Usage::

    python benchmarks/bench_baseline_bar.py --task ct-mri --task spect-mri
    python benchmarks/bench_baseline_bar.py --task pet-mri --net s3imfusion --weights FILE \\
        --blend-weights 0.25,0.5,0.75
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_quality import BASELINES, TASKS, run_task, validation_folders  # noqa: E402


def blend_folder(net_dir: Path, base_dir: Path, out: Path, w: float) -> Path:
    """Write ``round((1 - w) * net + w * base)`` of every image of ``net_dir`` into ``out``.

    Both folders hold the same file names (8-bit grey PNGs: the fused luma of colour tasks).
    """
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(net_dir.iterdir()):
        x = np.asarray(Image.open(f), dtype=np.float64)
        y = np.asarray(Image.open(base_dir / f.name), dtype=np.float64)
        if x.shape != y.shape:
            raise SystemExit(f"{base_dir / f.name}: shape {y.shape}, the network's is {x.shape}")
        mixed = np.clip(np.rint((1.0 - w) * x + w * y), 0, 255).astype(np.uint8)
        Image.fromarray(mixed).save(out / f.name)
    return out


def bar_table(task: str, net: str, weights: str | None, blend_weights: list[float],
              out: Path) -> tuple[list[tuple[str, dict[str, float], list[str]]],
                                  dict[str, dict[str, float]]]:
    """Fuse, blend and score one task; print the table.

    Returns:
        ``[(label, {metric: mean}, wins)]`` for the network and each blend, and
        ``{baseline: {metric: mean}}``.
    """
    from medfuse.metrics.evaluate import evaluate_folders
    from medfuse.nets.pretrained import pretrained_path
    from medfuse.nets.quality import AUTO_METRICS, AUTO_MIN_WINS, compare

    path = weights or str(pretrained_path(net, task))
    result = run_task(task, {net: path}, out, BASELINES)
    paper = result["profiles"]["paper"]
    baselines = {b: paper[b] for b in BASELINES}
    fa, fb = validation_folders(task, out)  # the folders run_task fused (made once)
    net_dir = out / "fused" / net / "fused"
    fused = {net: str(net_dir)}
    for b in BASELINES:
        for w in blend_weights:
            label = f"{net}+{w:g}*{b}"
            fused[label] = str(blend_folder(net_dir, out / "fused" / b / "fused",
                                            out / "blend" / f"{b}-{w:g}", w))
    res = evaluate_folders(fa, fb, fused, out_dir=out / "eval_blend", profile="paper",
                           metrics=list(AUTO_METRICS), overwrite=True, plots=False,
                           progress=False)
    rows = []
    print(f"\n## {task}: {net} and its blends with each baseline ({result['pairs']} validation "
          f"pairs, paper profile; bar: {AUTO_MIN_WINS} of {len(AUTO_METRICS)} wins)")
    print("| method | " + " | ".join(AUTO_METRICS) + " | beats every baseline on |")
    print("|---|" + "---|" * (len(AUTO_METRICS) + 1))
    for b in BASELINES:
        print(f"| {b} | " + " | ".join(f"{baselines[b][m]:.4g}" for m in AUTO_METRICS) + " | |")
    for label in fused:
        means = {m: float(res.summary[label][m]["mean"]) for m in AUTO_METRICS}
        wins = compare(means, {}, baselines, AUTO_METRICS)["beats_all_baselines"]
        rows.append((label, means, wins))
        print(f"| {label} | " + " | ".join(f"{means[m]:.4g}" for m in AUTO_METRICS)
              + f" | {len(wins)}: {', '.join(wins) or '-'} |")
    reached = [r[0] for r in rows if len(r[2]) >= AUTO_MIN_WINS]
    print(f"\nreach the bar: {', '.join(reached) if reached else 'none'}")
    return rows, baselines


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", action="append", choices=TASKS, help="task (repeatable; default all)")
    p.add_argument("--net", default="ecfusion", help="network (default ecfusion)")
    p.add_argument("--weights", help="weights file (default: the shipped weights)")
    p.add_argument("--blend-weights", default="0.25,0.5",
                   help="weights w of the baseline in the blends (default 0.25,0.5)")
    p.add_argument("--out", default="/tmp/medfuse-baseline-bar", help="work folder")
    args = p.parse_args(argv)
    ws = [float(w) for w in args.blend_weights.split(",") if w]
    if any(not 0.0 <= w <= 1.0 for w in ws):
        p.error("--blend-weights must lie in [0, 1]")
    for task in args.task or TASKS:
        bar_table(task, args.net, args.weights, ws, Path(args.out) / task)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
