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

Usage::

    python benchmarks/bench_quality.py                       # shipped weights, all tasks
    python benchmarks/bench_quality.py --task pet-mri --weights ecfusion=runs/x/ecfusion-pet-mri.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: classical baselines of ``medfuse fuse`` (the issue's "every classical baseline").
BASELINES = ("average", "max", "laplacian", "dwt", "guided-filter")
TASKS = ("ct-mri", "pet-mri", "spect-mri")
PROFILES = ("paper", "vifb")


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


def run_task(task: str, weights: dict[str, str], out: Path, baselines: tuple[str, ...]) -> dict:
    """Fuse and score one task; returns ``{profile: {method: {metric: mean}}}`` plus timings."""
    from medfuse.engines.card import PAPER_METRICS
    from medfuse.fusion.folders import fuse_folders
    from medfuse.fusion.pipeline import FuseOptions
    from medfuse.metrics.evaluate import evaluate_folders, summary_text

    fa, fb = validation_folders(task, out)
    fused: dict[str, str] = {}
    times: dict[str, float] = {}
    methods = [(m, None) for m in baselines] + [(n, w) for n, w in weights.items()]
    for name, w in methods:
        dst = out / "fused" / name
        t0 = time.perf_counter()
        fuse_folders(fa, fb, dst, FuseOptions(method=name, task=task, weights=w,
                                              device="cpu", overwrite=True, progress=False))
        times[name] = round(time.perf_counter() - t0, 2)
        fused[name] = str(dst / "fused")
    result: dict = {"pairs": len(list(fa.iterdir())), "fuse_time_s": times, "profiles": {}}
    # the metrics of both papers' tables (ECFusion Tables 1-3, S3IMFusion Tables 1-2), once each
    metrics = list(dict.fromkeys(PAPER_METRICS["ecfusion"] + PAPER_METRICS["s3imfusion"]))
    for profile in PROFILES:
        res = evaluate_folders(fa, fb, fused, out_dir=out / f"eval_{profile}", profile=profile,
                               metrics=metrics, overwrite=True, plots=False, progress=False)
        result["profiles"][profile] = {m: {k: float(v["mean"]) for k, v in res.summary[m].items()}
                                       for m in res.summary}
        print(f"\n## {task}, profile {profile} ({result['pairs']} validation pairs)")
        print(summary_text(res))
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", action="append", choices=TASKS, help="task (repeatable; default all)")
    p.add_argument("--weights", action="append", default=[], metavar="NET=FILE",
                   help="score this weights file as NET (default: the shipped weights of each net)")
    p.add_argument("--nets", default="ecfusion,s3imfusion", help="networks to score (shipped weights)")
    p.add_argument("--baselines", default=",".join(BASELINES), help="classical methods to score")
    p.add_argument("--out", default="/tmp/medfuse-quality", help="work folder (results: OUT/quality.json)")
    args = p.parse_args(argv)
    from medfuse.nets.pretrained import pretrained_path

    out = Path(args.out)
    given = dict(w.split("=", 1) for w in args.weights)
    report: dict = {"split": "pipelines/splits/harvard_val10.json", "tasks": {}}
    for task in args.task or TASKS:
        weights = {}
        for net in [n for n in args.nets.split(",") if n]:
            path = given.get(net) or pretrained_path(net, task)
            if path is not None and Path(path).is_file():
                weights[net] = str(path)
        baselines = tuple(b for b in args.baselines.split(",") if b)
        report["tasks"][task] = run_task(task, weights, out / task, baselines)
        report["tasks"][task]["weights"] = weights
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {out / 'quality.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
