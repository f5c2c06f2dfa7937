"""Inter-slice consistency and slice-mean fusion metrics of every method on two real volume pairs.

For each pair and method: ``python -m medfuse fuse A B -o WORK/<pair>/<method> --method M
--format nifti -q`` in a fresh process (skipped when that folder already holds a run.json, so an
interrupted run resumes), then ``medfuse.fusion.scoring.evaluate_fuse_output`` on the folder: the
sources are re-read, windowed and resampled onto the fused grid by the pipeline's own functions
(the transform from the folder's transform.tfm), the 2D metrics are computed slice by slice, and
the inter-slice excess (``medfuse.metrics.consistency``) on the whole volume at three scales:
pixels (the ISE that run.json and ``medfuse evaluate`` report), 16x16 pixel blocks and slice
means (tolerance 0 for the pooled ones: rounding averages out). Calibration rows: the ``average``
fusion with injected slice-wise gain jitter (2 %, 5 %) and with every pixel taken at random from A
or B.

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


#: the scales reported: (column, pool, tolerance): pixels (the ISE), 16 px blocks, slice means.
SCALES = (("ISE", 1, 1.0), ("ISE 16px", 16, 0.0), ("ISE slice mean", 0, 0.0))


def _scales(fused, a, b) -> dict[str, float]:
    from medfuse.metrics.consistency import interslice_excess

    return {c: interslice_excess(fused, a, b, tolerance=t, pool=p) for c, p, t in SCALES}


def _sources(folder: Path):
    from medfuse.fusion.sources import load_fuse_output

    out = load_fuse_output(folder)
    return out, *(x.numpy() * 255.0 for x in out.sources.luma)


def score(folder: Path) -> dict:
    """Slice-mean metrics and the inter-slice excess at three scales of one fuse output folder."""
    from medfuse.fusion.scoring import evaluate_fuse_output

    res = evaluate_fuse_output(folder, profile="paper", metrics=METRICS)
    out, a, b = _sources(folder)
    scales = _scales(out.fused, a, b)
    assert abs(scales["ISE"] - res.consistency) < 1e-9
    return {"n_slices": res.n_scored, **scales, **{m: res.summary[m]["mean"] for m in METRICS}}


def calibration(folder: Path, amplitudes: tuple[float, ...] = (0.02, 0.05)) -> dict[str, dict]:
    """The ``average`` fusion with injected flicker: each slice's grey levels times
    ``1 + amp * N(0, 1)`` (seed 0), a slice-wise gain jitter of ``amp`` (std); and with every
    pixel taken at random from A or B (seed 0), a texture-level switching."""
    import numpy as np

    out, a, b = _sources(folder)
    rng = np.random.default_rng(0)
    jitter = rng.standard_normal(out.fused.shape[0])[:, None, None, None]
    res = {}
    for amp in amplitudes:
        flick = np.clip(np.rint(out.fused.astype(np.float32) * (1 + amp * jitter)), 0, 255)
        res[f"*average + {amp:.0%} slice gain jitter*"] = _scales(flick, a, b)
    switch = np.where(rng.random(a.shape) < 0.5, a, b)
    res["*each pixel from A or B at random*"] = _scales(np.rint(switch), a, b)
    return res


def table(pair: str, rows: dict[str, dict]) -> str:
    """One Markdown table: a row per method."""
    cols = [c for c, _, _ in SCALES]
    n = next(iter(rows.values()))["n_slices"]
    lines = [
        f"**{pair}** (slices scored: {n})",
        "",
        "| method | "
        + " | ".join(f"{c} ↓" for c in cols)
        + " | "
        + " | ".join(f"{m} ↑" for m in METRICS)
        + " |",
        "|---|" + "---:|" * (len(cols) + len(METRICS)),
    ]
    for m, r in rows.items():
        lines.append(
            f"| {m} | "
            + " | ".join(f"{r[c]:.4f}" for c in cols)
            + " | "
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
        if "average" in methods:  # the scale: the same volume with known injected flicker
            for name, v in calibration(args.work / p / "average").items():
                results[p][name] = {**v, "n_slices": results[p]["average"]["n_slices"]}
    (args.work / "results.json").write_text(json.dumps(results, indent=2))
    for p in pairs:
        print(table(p, results[p]) + "\n")


if __name__ == "__main__":
    main()
