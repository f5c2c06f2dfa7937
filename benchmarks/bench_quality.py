"""Quality benchmark: score networks and the classical baselines on the validation split.

For each task, the validation pairs of ``pipelines/splits/harvard_val10.json`` are linked into
``OUT/<task>/val/{CT|PET|SPECT,MRI}/`` (the folder names tell ``medfuse fuse`` the task), fused
with every classical method of ``medfuse fuse`` and with each network's weights (paper-style 2D
folder mode), and scored with ``medfuse evaluate`` under the ``paper`` profile (the conventions
that reproduce the ECFusion paper's tables, ../shared/reference/PAPER_CONVENTIONS.md) and the
``vifb`` profile. Prints one table per task and profile and writes ``OUT/quality.json`` (what
``python -m medfuse.engines.card`` puts into the model cards).

The same, by hand, for one task (what this script runs through the library)::

    python benchmarks/bench_quality.py --task ct-mri --out /tmp/quality   # makes the val folders
    medfuse fuse /tmp/quality/ct-mri/val/CT /tmp/quality/ct-mri/val/MRI --method ecfusion \\
        --task ct-mri -o /tmp/quality/ct-mri/fused/ecfusion
    medfuse evaluate --a /tmp/quality/ct-mri/val/CT --b /tmp/quality/ct-mri/val/MRI \\
        --fused ecfusion=/tmp/quality/ct-mri/fused/ecfusion/fused --profile paper -o /tmp/eval

Each method's background level is recorded too (``background``: the mean fused grey level where
both sources are black, as ``val_background`` in training). With ``--against-shipped`` the
shipped weights of every network given by ``--weights`` are fused and scored in the same run; their
figures go under ``shipped`` (not ``profiles``, so nothing reads them as a method) for
``scripts/ship_run.py`` to decide whether the new weights beat what ships.

Usage::

    python benchmarks/bench_quality.py                       # shipped weights, all tasks
    python benchmarks/bench_quality.py --task pet-mri \\
        --weights ecfusion=runs/x/ecfusion-pet-mri.safetensors
    python benchmarks/bench_quality.py --task ct-mri --nets s3imfusion --against-shipped \\
        --weights s3imfusion=training_runs/s3imfusion_ct-mri/s3imfusion-ct-mri.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: classical baselines of ``medfuse fuse`` (the issue's "every classical baseline").
BASELINES = ("average", "max", "laplacian", "dwt", "guided-filter")
TASKS = ("ct-mri", "pet-mri", "spect-mri")
PROFILES = ("paper", "vifb")
#: the label of the shipped weights when scored beside new ones (``--against-shipped``).
SHIPPED_PREFIX = "shipped-"


def validation_folders(task: str, out: Path) -> tuple[Path, Path]:
    """Link the validation pairs of ``task`` into ``out/val/{A,MRI}`` and return the two folders."""
    from medfuse.engines.data import harvard_datalist
    from medfuse.engines.recipes import default_data_root

    root = Path(default_data_root())
    split = REPO / "pipelines" / "splits" / "harvard_val10.json"
    items = harvard_datalist(root, task, subset="val", split_file=split)
    a_name = task.split("-")[0].upper()
    fa, fb = out / "val" / a_name, out / "val" / "MRI"
    for folder in (fa, fb):
        folder.mkdir(parents=True, exist_ok=True)
    for it in items:
        for key, folder in (("a", fa), ("b", fb)):
            src = Path(it[key]).resolve()
            dst = folder / src.name
            if not dst.exists():
                os.symlink(src, dst)
    return fa, fb


def _luma(path: Path) -> np.ndarray:
    """A 2D image's grey levels (0..255; BT.601 luma of an RGB image), float64 (H, W)."""
    from medfuse.fusion.folders import read_image

    x = read_image(path).astype(np.float64)
    return x @ np.array([0.299, 0.587, 0.114]) if x.ndim == 3 else x


def background_level(fa: Path, fb: Path, fused: Path) -> float:
    """Mean fused grey level (0..255) where both sources are black (below 0.5 grey levels).

    The folder-mode counterpart of ``val_background`` (medfuse.engines.trainer.background_sums),
    over every pair's pixels together; NaN when no pixel is black in both sources.
    """
    total, count = 0.0, 0
    for a in sorted(fa.iterdir()):
        black = (_luma(a) < 0.5) & (_luma(fb / a.name) < 0.5)
        out = next(fused.glob(a.stem + ".*"))
        total += float(_luma(out)[black].sum())
        count += int(black.sum())
    return total / count if count else float("nan")


def run_task(task: str, weights: dict[str, str], out: Path, baselines: tuple[str, ...],
             shipped: dict[str, str] | None = None) -> dict:
    """Fuse and score one task; returns ``{profile: {method: {metric: mean}}}`` plus timings.

    Args:
        task: the task.
        weights: ``{net: weights file}`` to score as ``net``.
        out: work folder.
        baselines: the classical methods.
        shipped: ``{net: weights file}`` scored alongside as the currently shipped ``net``; their
            figures go to ``result["shipped"]`` (``profiles``, ``background``, ``weights``).
    """
    from medfuse.engines.card import PAPER_METRICS
    from medfuse.fusion.folders import fuse_folders
    from medfuse.fusion.pipeline import FuseOptions
    from medfuse.metrics.evaluate import evaluate_folders, summary_text

    fa, fb = validation_folders(task, out)
    fused: dict[str, str] = {}
    times: dict[str, float] = {}
    methods = ([(m, m, None) for m in baselines] + [(n, n, w) for n, w in weights.items()]
               + [(SHIPPED_PREFIX + n, n, w) for n, w in (shipped or {}).items()])
    for label, name, w in methods:
        dst = out / "fused" / label
        t0 = time.perf_counter()
        fuse_folders(fa, fb, dst, FuseOptions(method=name, task=task, weights=w,
                                              device="cpu", overwrite=True, progress=False))
        times[label] = round(time.perf_counter() - t0, 2)
        fused[label] = str(dst / "fused")
    result: dict = {"pairs": len(list(fa.iterdir())), "fuse_time_s": times, "profiles": {},
                    "background": {k: background_level(fa, fb, Path(v)) for k, v in fused.items()}}
    # the metrics of both papers' tables (ECFusion Tables 1-3, S3IMFusion Tables 1-2), once each
    metrics = list(dict.fromkeys(PAPER_METRICS["ecfusion"] + PAPER_METRICS["s3imfusion"]))
    for profile in PROFILES:
        res = evaluate_folders(fa, fb, fused, out_dir=out / f"eval_{profile}", profile=profile,
                               metrics=metrics, overwrite=True, plots=False, progress=False)
        result["profiles"][profile] = {m: {k: float(v["mean"]) for k, v in res.summary[m].items()}
                                       for m in res.summary}
        print(f"\n## {task}, profile {profile} ({result['pairs']} validation pairs)")
        print(summary_text(res))
    print("\nbackground level (grey levels where both sources are black): "
          + ", ".join(f"{k} {v:.2f}" for k, v in result["background"].items()))
    if shipped:
        from medfuse.nets.pretrained import sha256

        result["shipped"] = {"weights": dict(shipped), "profiles": {}, "background": {},
                             "sha256": {n: sha256(REPO / w) for n, w in shipped.items()}}
        for net in shipped:
            label = SHIPPED_PREFIX + net
            result["fuse_time_s"].pop(label)
            result["shipped"]["background"][net] = result["background"].pop(label)
            for profile, scores in result["profiles"].items():
                result["shipped"]["profiles"].setdefault(profile, {})[net] = scores.pop(label)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", action="append", choices=TASKS, help="task (repeatable; default all)")
    p.add_argument("--weights", action="append", default=[], metavar="NET=FILE",
                   help="score this weights file as NET (default: the shipped weights of each net)")
    p.add_argument("--nets", default="ecfusion,s3imfusion",
                   help="networks to score (shipped weights)")
    p.add_argument("--baselines", default=",".join(BASELINES), help="classical methods to score")
    p.add_argument("--out", default="/tmp/medfuse-quality",
                   help="work folder (results: OUT/quality.json)")
    p.add_argument("--against-shipped", action="store_true",
                   help="also score the shipped weights of each --weights network "
                        "(under 'shipped')")
    args = p.parse_args(argv)
    from medfuse.nets.pretrained import pretrained_path

    out = Path(args.out)
    given = dict(w.split("=", 1) for w in args.weights)
    report: dict = {"split": "pipelines/splits/harvard_val10.json", "tasks": {}}
    for task in args.task or TASKS:
        weights, shipped = {}, {}
        for net in [n for n in args.nets.split(",") if n]:
            path = given.get(net) or pretrained_path(net, task)
            if path is not None and Path(path).is_file():
                weights[net] = str(path)
            old = pretrained_path(net, task)
            if args.against_shipped and net in given and old is not None and old.is_file() \
                    and old.resolve() != Path(given[net]).resolve():
                shipped[net] = str(old.relative_to(REPO) if old.is_relative_to(REPO) else old)
        baselines = tuple(b for b in args.baselines.split(",") if b)
        report["tasks"][task] = run_task(task, weights, out / task, baselines, shipped)
        report["tasks"][task]["weights"] = weights
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {out / 'quality.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
