"""Inter-slice consistency and slice-mean fusion metrics of every method on two real volume pairs.

For each pair and method: ``python -m medfuse fuse A B -o WORK/<pair>/<method> --method M
--format nifti -q`` in a fresh process (skipped when that folder already holds a run.json, so an
interrupted run resumes), then ``medfuse.metrics.volume.evaluate_fuse_output`` on the folder: the
sources are re-read, windowed and resampled onto the fused grid by the pipeline's own functions
(the transform from the folder's transform.tfm), the 2D metrics are computed slice by slice, and
the inter-slice consistency (``medfuse.metrics.consistency``) on the whole volume.

Pairs:

* ``phantom``: MRI-DIR porcine phantom, A = CT_every4th, B = MR_T2 (rigid registration; task
  ct-mri, so the networks use their shipped CT-MRI weights);
* ``stroke``: C-STAR chronic stroke, A = FLAIR, B = T1 (co-registered, no registration); both MR,
  so the networks run with ``--task ct-mri`` (the grey-on-grey weights).

Usage::

    nice -n 19 env OMP_NUM_THREADS=1 python3 benchmarks/bench_consistency.py        # everything
    python3 benchmarks/bench_consistency.py --pairs stroke --methods average,max
    python3 benchmarks/bench_consistency.py --fuse-only      # only the (slow) fusion runs

Prints one Markdown table per pair (the docs/metrics.md tables) and writes ``WORK/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "volumes"
sys.path.insert(0, str(REPO))

METHODS = ("average", "max", "laplacian", "dwt", "guided-filter", "s3imfusion", "ecfusion")
PAIRS = {
    "phantom": (
        DATA / "mridir_phantom_ct_mr" / "CT_every4th",
        DATA / "mridir_phantom_ct_mr" / "MR_T2",
        [],
    ),
    "stroke": (
        DATA / "mit_mr_nifti" / "stroke" / "FLAIR.nii.gz",
        DATA / "mit_mr_nifti" / "stroke" / "T1.nii.gz",
        ["--task", "ct-mri"],
    ),
}
#: the slice-mean metrics reported beside the consistency (paper profile).
METRICS = ("MI", "Qabf", "SSIM", "VIF")


def fuse(pair: str, method: str, work: Path) -> Path:
    """Run ``medfuse fuse`` for one pair and method (skipped when already done)."""
    a, b, extra = PAIRS[pair]
    out = work / pair / method
    if (out / "run.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [
        sys.executable,
        "-m",
        "medfuse",
        "fuse",
        str(a),
        str(b),
        "-o",
        str(out),
        "--method",
        method,
        "--format",
        "nifti",
        "-q",
        "--overwrite",
        *extra,
    ]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
    print(f"fused {pair}/{method} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def score(folder: Path) -> dict:
    """Slice-mean metrics and the consistency of one fuse output folder."""
    from medfuse.metrics.volume import evaluate_fuse_output

    res = evaluate_fuse_output(folder, profile="paper", metrics=METRICS)
    return {
        "consistency": res.consistency,
        "n_slices": res.n_scored,
        **{m: res.summary[m]["mean"] for m in METRICS},
    }


def calibration(folder: Path, amplitudes: tuple[float, ...] = (0.02, 0.05)) -> dict[str, float]:
    """ISE of the ``average`` fusion with injected flicker: each slice's grey levels times
    ``1 + amp * N(0, 1)`` (seed 0), i.e. a slice-wise gain jitter of ``amp`` (std)."""
    import numpy as np

    from medfuse.fusion.sources import load_fuse_output
    from medfuse.metrics.consistency import interslice_excess

    out = load_fuse_output(folder)
    a, b = (x.numpy() * 255.0 for x in out.sources.luma)
    jitter = np.random.default_rng(0).standard_normal(out.fused.shape[0])[:, None, None, None]
    res = {}
    for amp in amplitudes:
        flick = np.clip(np.rint(out.fused.astype(np.float32) * (1 + amp * jitter)), 0, 255)
        res[f"average + {amp:.0%} slice gain jitter"] = interslice_excess(flick, a, b)
    return res


def table(pair: str, rows: dict[str, dict]) -> str:
    """One Markdown table: a row per method."""
    head = "| method | consistency ↓ | " + " | ".join(f"{m} ↑" for m in METRICS) + " |"
    lines = [
        f"**{pair}** (slices scored: {next(iter(rows.values()))['n_slices']})",
        "",
        head,
        "|---|---:|" + "---:|" * len(METRICS),
    ]
    for m, r in rows.items():
        lines.append(
            f"| {m} | {r['consistency']:.4f} | "
            + " | ".join(f"{r[k]:.4f}" if k in r else "" for k in METRICS)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default=",".join(PAIRS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--work", type=Path, default=Path("/tmp/medfuse-bench-consistency"))
    ap.add_argument("--fuse-only", action="store_true")
    args = ap.parse_args()
    pairs, methods = args.pairs.split(","), args.methods.split(",")
    for pair in pairs:  # the cheap methods first, so the tables fill early
        for m in methods:
            fuse(pair, m, args.work)
    if args.fuse_only:
        return
    results = {}
    for p in pairs:
        results[p] = {m: score(args.work / p / m) for m in methods}
        if "average" in methods:  # the scale: the same volume with known slice-wise flicker
            for name, v in calibration(args.work / p / "average").items():
                results[p][name] = {"consistency": v, "n_slices": results[p]["average"]["n_slices"]}
    (args.work / "results.json").write_text(json.dumps(results, indent=2))
    for p in pairs:
        print(table(p, results[p]) + "\n")


if __name__ == "__main__":
    main()
