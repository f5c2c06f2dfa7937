"""Ship a finished training run only when it beats the weights that ship: one command.

For each ``RUN`` folder of ``medfuse train`` this

1. scores the run's weights and the shipped weights of the same network and task in one
   ``benchmarks/bench_quality.py --against-shipped`` run on the validation split (with the
   classical baselines), into ``OUT/<net>_<task>/quality.json``;
2. decides (:func:`verdict`): the run must be better than the shipped weights on a strict majority
   of the metrics of both papers' tables under the ``paper`` profile (:data:`METRICS`), its
   background level no more than half a grey level above theirs, and it must not beat every
   classical baseline on fewer of the ``--method auto`` metrics than they do;
3. if it is better: ``scripts/ship_weights.py`` (weights, card, ``quality.json``), then
   ``scripts/make_bundles.py`` (the MONAI bundles).

Usage::

    python scripts/ship_run.py training_runs/s3imfusion_pet-mri training_runs/s3imfusion_spect-mri
    python scripts/ship_run.py --dry-run training_runs/s3imfusion_pet-mri   # score and decide only

Then run the tests that check shipped weights, cards and bundles (docs/training.md). Exit code 0
when every run was shipped (or, with ``--dry-run``, would be), 1 when one was not better, 2 for a
run folder that is not a finished run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "scripts"))

from medfuse.nets.quality import AUTO_METRICS, PAPER_METRICS, compare  # noqa: E402

#: the metrics of both papers' tables (ECFusion's six first), each once.
METRICS: tuple[str, ...] = tuple(dict.fromkeys(m for ms in PAPER_METRICS.values() for m in ms))
#: how far (grey levels) the new background level may lie above the shipped one.
BACKGROUND_TOLERANCE = 0.5


def verdict(net: str, task_quality: Mapping) -> tuple[bool, list[str]]:
    """Whether the scored run beats the shipped weights, and the reasons, one line each.

    Args:
        net: the network.
        task_quality: ``quality.json["tasks"][task]`` of ``bench_quality.py --against-shipped``.
    """
    if not task_quality.get("shipped", {}).get("weights", {}).get(net):
        return True, ["ok   no shipped weights to beat"]
    scores = task_quality["profiles"]["paper"]
    new, old = scores[net], task_quality["shipped"]["profiles"]["paper"][net]
    metrics = [m for m in METRICS if m in new and m in old]
    wins = compare(new, {}, {"shipped": old}, metrics)["beats_all_baselines"]
    losses = compare(old, {}, {"new": new}, metrics)["beats_all_baselines"]
    bg_new = task_quality["background"][net]
    bg_old = task_quality["shipped"]["background"][net]
    base = {k: v for k, v in scores.items() if k not in PAPER_METRICS}
    auto_new = compare(new, {}, base, AUTO_METRICS)["beats_all_baselines"]
    auto_old = compare(old, {}, base, AUTO_METRICS)["beats_all_baselines"]
    checks = [
        (len(wins) * 2 > len(metrics),
         f"better than the shipped weights on {len(wins)} of {len(metrics)} metrics "
         f"({', '.join(wins) or '-'}); worse on {', '.join(losses) or '-'} (needs a majority)"),
        (bg_new <= bg_old + BACKGROUND_TOLERANCE,
         f"background {bg_new:.2f} grey levels against {bg_old:.2f} "
         f"(at most {BACKGROUND_TOLERANCE} more)"),
        (len(auto_new) >= len(auto_old),
         f"beats every classical baseline on {len(auto_new)} of the --method auto metrics "
         f"({', '.join(auto_new) or '-'}) against {len(auto_old)} ({', '.join(auto_old) or '-'})"),
    ]
    return all(ok for ok, _ in checks), [("ok   " if ok else "FAIL ") + line for ok, line in checks]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    import bench_quality
    import make_bundles
    import ship_weights

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished run folders of medfuse train")
    p.add_argument("--out", type=Path, default=Path("/tmp/medfuse-ship"),
                   help="work folder of the scoring runs")
    p.add_argument("--dry-run", action="store_true", help="score and decide; change nothing")
    args = p.parse_args(argv)
    better = []
    for run in args.runs:
        try:
            summary = json.loads((run / "summary.json").read_text())
        except (OSError, ValueError) as exc:
            print(f"{run}: not a finished run of medfuse train ({exc})", file=sys.stderr)
            return 2
        net, task = summary["network"], summary["task"]
        weights = run.resolve() / f"{net}-{task}.safetensors"
        if not summary.get("completed") or not weights.is_file():
            state = "present" if weights.is_file() else "missing"
            print(f"{run}: the run has not finished (completed: {summary.get('completed')}, "
                  f"{weights.name} {state})", file=sys.stderr)
            return 2
        out = args.out / f"{net}_{task}"
        bench_quality.main(["--task", task, "--nets", net, "--against-shipped",
                            "--weights", f"{net}={weights}", "--out", str(out)])
        ok, reasons = verdict(net, json.loads((out / "quality.json").read_text())["tasks"][task])
        print(f"\n{run}: {'BETTER than' if ok else 'not better than'} the shipped {net} {task}")
        print("\n".join("  " + r for r in reasons))
        if ok:
            better.append((run, out / "quality.json"))
    if better and not args.dry_run:
        for run, quality in better:
            ship_weights.main(["--quality", str(quality), str(run)])
        if make_bundles.main([]) != 0:
            return 1
    return 0 if len(better) == len(args.runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
