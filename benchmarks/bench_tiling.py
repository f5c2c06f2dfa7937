"""Whole-slice against tiled network inference at 512x512: speed and the papers' metrics.

The phantom pair (``../shared/data/volumes/mridir_phantom_ct_mr``: CT_every4th onto MR_T2, 512x512
slices) is loaded, registered and prepared with the stages of ``medfuse fuse``
(:mod:`medfuse.fusion.volume`); ``--slices`` slices spread through the part where both sources have
content are fused by each network (shipped CT-MRI weights) whole (``--tile 0``) and in tiles of
``--tile`` pixels (``--tile-overlap``), one slice at a time. Printed per network and mode: seconds
per slice and the means of the ``paper`` profile's metrics (MI, Qabf, VIF, SSIM, Qcb, Qcv; Qcv
lower is better), which need no ground truth. The stroke volumes' slices (124x160) fit one tile, so
tiling never applies to them.

Usage::

    python3 benchmarks/bench_tiling.py                     # 8 slices, tile 256, overlap 0.25
    python3 benchmarks/bench_tiling.py --slices 16 --nets s3imfusion --tile-overlap 0.5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "volumes" / "mridir_phantom_ct_mr"
sys.path.insert(0, str(REPO))


def prepared_slices(n: int):
    """``(a, b)`` (n, 1, 512, 512) luma in [0, 1]: ``n`` slices of the registered phantom pair."""
    import numpy as np

    from medfuse.fusion.options import FuseOptions
    from medfuse.fusion.stages import StageClock
    from medfuse.fusion.volume.load import load_stage
    from medfuse.fusion.volume.prepare import prepare_stage
    from medfuse.fusion.volume.register import register_stage

    opt, clock = FuseOptions(progress=False), StageClock(False, None)
    inp = load_stage(DATA / "CT_every4th", DATA / "MR_T2", opt, clock)
    prep = prepare_stage(inp, register_stage(inp, opt, clock), opt)
    a, b = prep.luma
    cover = [(x.flatten(1) > 0.05).float().mean(1).numpy() for x in (a, b)]
    both = np.flatnonzero((cover[0] > 0.05) & (cover[1] > 0.05))
    pick = both[np.linspace(0, len(both) - 1, min(n, len(both))).round().astype(int)]
    return a[pick], b[pick]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--nets", default="s3imfusion,ecfusion")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--tile-overlap", type=float, default=0.25)
    args = ap.parse_args()

    import warnings

    import numpy as np

    from medfuse.fusion import get_method
    from medfuse.io.writers import to_uint8
    from medfuse.metrics import FusionMetrics

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    a, b = prepared_slices(args.slices)
    print(f"{len(a)} phantom slices {tuple(a.shape[-2:])}", flush=True)
    fm = FusionMetrics(profile="paper")
    warnings.simplefilter("ignore", RuntimeWarning)  # the NaN Qcb of flat slices, see below
    src = [(to_uint8(x[0]), to_uint8(y[0])) for x, y in zip(a, b)]
    for net in [s.strip() for s in args.nets.split(",") if s.strip()]:
        for tile in (0, args.tile):
            method = get_method(net, task="ct-mri", tile=tile, tile_overlap=args.tile_overlap)
            method(a[:1], b[:1])  # warm-up
            t0 = time.perf_counter()
            fused = [method(a[i : i + 1], b[i : i + 1]) for i in range(len(a))]
            dt = (time.perf_counter() - t0) / len(a)
            scores = [fm(to_uint8(f[0, 0]), sa, sb) for f, (sa, sb) in zip(fused, src)]
            # Qcb is NaN on a slice where a source is flat (no contrast to compare): left out
            means = {k: float(np.nanmean([s[k] for s in scores])) for k in scores[0]}
            mode = "whole" if tile == 0 else f"tile {tile}/{args.tile_overlap:g}"
            figures = "  ".join(f"{k} {v:.4g}" for k, v in means.items())
            print(f"{net:>11} {mode:>14}: {dt:6.2f} s/slice  {figures}", flush=True)


if __name__ == "__main__":
    main()
