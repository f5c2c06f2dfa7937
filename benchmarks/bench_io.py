"""Speed of the io/transforms foundation on the real phantom series (prints figures only).

Usage: python3 benchmarks/bench_io.py [--data ../shared/data] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's medfuse


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    )
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    from medfuse.io import find_series, load_volume
    from medfuse.transforms import ExtractSlices, ResampleToReference, StackSlices, Window

    print(f"import medfuse.io + transforms: {time.perf_counter() - t0:.2f} s")
    phantom = Path(args.data) / "volumes" / "mridir_phantom_ct_mr"
    ct_dir, mr_dir = phantom / "CT_every4th", phantom / "MR_T2"
    t, _ = _best(lambda: find_series(phantom), args.repeat)
    print(f"find_series (185 files, 2 series): {t:.3f} s")
    t, ct = _best(lambda: load_volume(ct_dir), args.repeat)
    print(f"load_volume CT 512x512x91: {t:.3f} s")
    t, mr = _best(lambda: load_volume(mr_dir), args.repeat)
    print(f"load_volume MR 512x512x94: {t:.3f} s")
    t, _ = _best(lambda: ResampleToReference()(mr, ct), args.repeat)
    print(f"ResampleToReference MR -> CT grid (23.9 M voxels): {t:.3f} s")
    t, _ = _best(lambda: Window("ct-brain")(ct), args.repeat)
    print(f"Window ct-brain (level/width): {t:.3f} s")
    t, _ = _best(lambda: Window("mr")(mr), args.repeat)
    print(f"Window mr (exact percentiles, 24.6 M voxels): {t:.3f} s")
    t, sl = _best(lambda: ExtractSlices("axial")(ct), args.repeat)
    print(f"ExtractSlices axial: {t:.3f} s")
    t, _ = _best(lambda: StackSlices()(sl), args.repeat)
    print(f"StackSlices: {t:.3f} s")


if __name__ == "__main__":
    main()
