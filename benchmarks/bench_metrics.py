"""Speed of the fusion metrics: all metrics of each profile on one 256x256 triplet, one CPU core.

Run from the repository root::

    python benchmarks/bench_metrics.py [--repeats 20]

Thread pools are pinned to one thread before numpy/scipy load. The machine may be shared, so the
figure reported is the minimum over the repeats (the least-disturbed run), with the median and the
minimum CPU time of the calling thread (less sensitive to other processes) beside it.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from medfuse.metrics import DEFAULT_METRICS, PROFILES, FusionMetrics  # noqa: E402

TRIPLET = (Path(__file__).resolve().parents[2] / "shared" / "reference" / "triplets" / "PET-MRI"
           / "25016")


def _time(fn, repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (this thread) seconds per call."""
    fn()  # warm-up (imports, FFT plans, caches)
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - t)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--per-metric", action="store_true", help="also time each metric alone")
    args = ap.parse_args()
    if TRIPLET.is_dir():
        f, a, b = (np.asarray(Image.open(TRIPLET / f"{n}.png")) for n in ("F_max", "A", "B"))
        src = f"reference triplet PET-MRI/25016 (F_max), {f.shape[0]}x{f.shape[1]}"
    else:
        rng = np.random.default_rng(0)
        a, b = (rng.integers(0, 256, (256, 256)).astype(np.uint8) for _ in range(2))
        f = np.maximum(a, b)
        src = "random 256x256 triplet (reference folder not found)"
    print(f"# medfuse metrics speed: {src}; python {platform.python_version()}, "
          f"numpy {np.__version__}, {platform.processor() or platform.machine()}; 1 thread; "
          f"{args.repeats} repeats")
    print(f"{'profile':8s} {'metrics':>7s} {'min ms':>8s} {'median ms':>10s} {'min CPU ms':>11s}")
    for profile in PROFILES:
        fm = FusionMetrics(profile)
        # partial binds fm (and f, a, b) now; _time calls it only within this iteration anyway
        ts, cs = _time(functools.partial(fm, f, a, b), args.repeats)
        print(f"{profile:8s} {len(DEFAULT_METRICS[profile]):7d} {min(ts) * 1e3:8.1f} "
              f"{statistics.median(ts) * 1e3:10.1f} {min(cs) * 1e3:11.1f}")
        if args.per_metric:
            for m in fm.metrics:
                one = FusionMetrics(profile, [m])
                t1, _ = _time(functools.partial(one, f, a, b), max(3, args.repeats // 4))
                print(f"    {m:6s} {min(t1) * 1e3:7.2f} ms")


if __name__ == "__main__":
    main()
