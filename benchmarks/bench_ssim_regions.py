"""Where a fusion method gains or loses the `paper` profile's SSIM: the score split by window kind.

The ``paper`` profile's SSIM (scikit-image defaults on 0..255 values, data_range 2: the
stabilising constants all but vanish) is the mean over all pixels of the two SSIM maps (fused vs
each source). This script fuses the validation pairs of a task with each method (as
``benchmarks/bench_quality.py`` does) and splits that mean by the 7x7 window around each pixel:

* ``black``: every pixel of the window is black (< 0.5 grey levels) in both sources;
* ``border``: the window mixes such pixels with others;
* ``inside``: no pixel of the window is black in both sources.

For each kind it prints the share of pixels, the mean SSIM against A and B, and the contribution
to the total (share x mean). It also prints how far the fused image lies from the MRI where the
other source is black, by MRI grey-level band (mean fused - MRI, and its mean absolute value):
there the max rule copies the MRI exactly.

Usage::

    python benchmarks/bench_ssim_regions.py --task pet-mri                  # ecfusion vs max
    python benchmarks/bench_ssim_regions.py --task ct-mri --methods ecfusion s3imfusion max \\
        --weights ecfusion=training_runs/x/ecfusion-ct-mri.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_quality import TASKS, _luma, validation_folders  # noqa: E402

KINDS = ("black", "border", "inside")
BANDS = (3, 6, 12, 25, 50, 100, 256)  # MRI grey-level band edges (the MRI has no 1..2)


def window_kinds(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean ``(H, W)`` masks of the three window kinds of two sources (0..255)."""
    black = ((a < 0.5) & (b < 0.5)).astype(np.float64)
    share = ndimage.uniform_filter(black, size=7)
    return {"black": share > 1 - 1e-9, "border": (share > 1e-9) & (share <= 1 - 1e-9),
            "inside": share <= 1e-9}


def split_ssim(fa: Path, fb: Path, fused: Path) -> dict:
    """The SSIM split over the pairs of two source folders and a fused folder."""
    from medfuse.metrics.similarity import ssim_maps_skimage

    sums = {k: np.zeros(4) for k in KINDS}  # pixels, SSIM vs A, vs B, vs both
    bands = np.zeros((len(BANDS) - 1, 3))  # pixels, sum(F - B), sum(|F - B|)
    total, n_img = 0.0, 0
    for pa in sorted(fa.iterdir()):
        a, b = _luma(pa), _luma(fb / pa.name)
        f = _luma(next(fused.glob(pa.stem + ".*")))
        sa, sb = ssim_maps_skimage(f.astype(np.float32),
                                   [a.astype(np.float32), b.astype(np.float32)])
        total += 0.5 * (float(sa.mean(dtype=np.float64)) + float(sb.mean(dtype=np.float64)))
        n_img += 1
        for kind, m in window_kinds(a, b).items():
            sums[kind] += (m.sum(), sa[m].sum(), sb[m].sum(), 0.5 * (sa[m].sum() + sb[m].sum()))
        only_b = a < 0.5
        idx = np.digitize(b[only_b], BANDS) - 1
        d = f[only_b] - b[only_b]
        for i in range(len(BANDS) - 1):
            sel = idx == i
            bands[i] += (sel.sum(), d[sel].sum(), np.abs(d[sel]).sum())
    n = sum(s[0] for s in sums.values())
    return {"ssim": total / n_img,
            "kinds": {k: {"share": s[0] / n, "vs_a": s[1] / s[0], "vs_b": s[2] / s[0],
                          "contribution": s[3] / n} for k, s in sums.items() if s[0]},
            "bands": [{"band": f"{BANDS[i]}..{BANDS[i + 1] - 1}", "pixels": int(r[0]),
                       "mean": r[1] / r[0], "mean_abs": r[2] / r[0]}
                      for i, r in enumerate(bands) if r[0]]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=TASKS, nargs="+", default=["pet-mri"])
    p.add_argument("--methods", nargs="+", default=["ecfusion", "max"])
    p.add_argument("--weights", nargs="*", default=[], metavar="NET=FILE")
    p.add_argument("--out", type=Path, default=Path("/tmp/medfuse_ssim_regions"))
    args = p.parse_args(argv)
    from medfuse.fusion.folders import fuse_folders
    from medfuse.fusion.pipeline import FuseOptions

    weights = dict(w.split("=", 1) for w in args.weights)
    for task in args.task:
        out = args.out / task
        fa, fb = validation_folders(task, out)
        print(f"\n{task}: {len(list(fa.iterdir()))} validation pairs, `paper` SSIM split by "
              "7x7 window kind")
        print(f"{'method':<14}{'kind':<8}{'share':>7}{'vs A':>8}{'vs B':>8}{'contrib':>9}")
        results = {}
        for method in args.methods:
            dst = out / "fused" / method
            fuse_folders(fa, fb, dst, FuseOptions(method=method, task=task,
                                                  weights=weights.get(method), device="cpu",
                                                  overwrite=True, progress=False))
            r = results[method] = split_ssim(fa, fb, dst / "fused")
            for kind, k in r["kinds"].items():
                print(f"{method:<14}{kind:<8}{k['share']:>7.3f}{k['vs_a']:>8.4f}{k['vs_b']:>8.4f}"
                      f"{k['contribution']:>9.4f}")
            print(f"{method:<14}{'SSIM':<8}{'':>23}{r['ssim']:>9.4f}")
        print(f"\n{task}: fused - MRI where {task.split('-')[0].upper()} is black, by MRI band "
              "(mean / mean absolute, grey levels)")
        print(f"{'band':<10}{'pixels':>9}" + "".join(f"{m:>20}" for m in args.methods))
        for i, band in enumerate(results[args.methods[0]]["bands"]):
            cells = "".join(f"{r['bands'][i]['mean']:>10.2f}{r['bands'][i]['mean_abs']:>10.2f}"
                            for r in results.values())
            print(f"{band['band']:<10}{band['pixels']:>9}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
