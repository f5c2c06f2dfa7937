"""S3IMFusion figures: parameters, FLOPs and CPU forward time for one 256x256 pair.

Run from the repository root::

    python benchmarks/bench_s3imfusion.py [--repeats 30] [--threads 2] [--size 256]

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs = 2 x MACs; it counts
convolutions and matrix products only). It does not count ``scaled_dot_product_attention`` on the
CPU, so the attention products ``QK^T`` and ``AV`` are added analytically (``4 N^2 E`` per
Transformer unit). Timing: batch 1, ``torch.inference_mode``, eval mode, ``torch.set_num_threads``;
the machine may be shared, so the minimum over the repeats (least-disturbed run) is the figure,
the median and the 1-minute load average are printed beside it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from medfuse.nets.s3imfusion import S3IMFusion, _attention_flops  # noqa: E402

PAIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "harvard" / "CT-MRI"


def _pair(size: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """A real Harvard CT/MRI pair in [-1, 1] (random when the data folder is missing)."""
    if (PAIR / "CT" / "16003.png").is_file():
        from PIL import Image

        ims = [np.asarray(Image.open(PAIR / m / "16003.png").convert("L"), dtype=np.float32) for m in ("CT", "MRI")]
        a, b = (torch.from_numpy(x / 127.5 - 1)[None, None] for x in ims)
        if size != a.shape[-1]:
            a, b = (torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear") for t in (a, b))
        return a, b, "Harvard CT-MRI 16003"
    g = torch.Generator().manual_seed(0)
    return (torch.rand(1, 1, size, size, generator=g) * 2 - 1 for _ in range(2)), "random"  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = S3IMFusion().eval()
    a, b, src = _pair(args.size)
    n_params = sum(p.numel() for p in net.parameters())
    with torch.inference_mode():
        with FlopCounterMode(display=False) as fc:
            net(a, b)
        counted = fc.get_total_flops()
        attn = _attention_flops(net, args.size, args.size)
        for _ in range(3):
            net(a, b)
        wall = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            net(a, b)
            wall.append(time.perf_counter() - t)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# S3IMFusion defaults, {args.size}x{args.size} pair ({src}), batch 1; torch {torch.__version__}, "
          f"python {platform.python_version()}, {platform.processor() or platform.machine()}, "
          f"{args.threads} threads, load average {load:.2f}")
    print(f"parameters          {n_params:,}")
    print(f"FLOPs (counted)     {counted / 1e9:.3f} GFLOP  (FlopCounterMode, FLOPs = 2 x MACs, conv + matmul)")
    print(f"FLOPs (attention)   {attn / 1e9:.3f} GFLOP  (QK^T and AV, analytic: not counted on CPU)")
    print(f"FLOPs (total)       {(counted + attn) / 1e9:.3f} GFLOP")
    print(f"forward ms          min {min(wall) * 1e3:.1f}   median {statistics.median(wall) * 1e3:.1f}   "
          f"({args.repeats} runs, inference_mode)")


if __name__ == "__main__":
    main()
