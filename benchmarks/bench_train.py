"""Seconds per training step (forward, loss, backward, Adam step) of a training config.

Builds the network, loss and optimiser of a config (``pipelines/<net>_<task>.json``), draws real
batches from its training dataset, and times ``--steps`` steps after ``--warmup`` untimed ones.

    python benchmarks/bench_train.py pipelines/ecfusion_ct-mri.json
    python benchmarks/bench_train.py pipelines/ecfusion_ct-mri.json input_size=128
    python benchmarks/bench_train.py pipelines/s3imfusion_ct-mri.json --random-vgg   # n/a for S3IM

``--random-vgg`` replaces ECFusion's ImageNet VGG19 (needed by the perceptual loss, absent on
offline machines) by a randomly initialised one of the same shape: the same cost, for timing only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="+", help="config file(s), then key=value overrides")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--random-vgg", action="store_true")
    args = ap.parse_args()

    from monai.data import DataLoader
    from monai.utils import set_determinism

    from medfuse.engines.recipes import load_config

    files = [c for c in args.config if "=" not in c]
    overrides = [c for c in args.config if "=" in c]
    tmp = tempfile.TemporaryDirectory()
    if args.random_vgg:
        from safetensors.torch import save_file

        from medfuse.losses.perceptual import VGGFeatures

        path = Path(tmp.name) / "vgg19_random.safetensors"
        save_file({k: v.contiguous() for k, v in VGGFeatures("vgg19").state_dict().items()}, str(path))
        overrides.append(f"loss#vgg_weights={json.dumps(str(path))}")
    parser = load_config(files, overrides)
    set_determinism(0)
    dev = torch.device(args.device)
    net = parser.get_parsed_content("network_def").to(dev)
    loss_fn = parser.get_parsed_content("loss")
    loss_fn = loss_fn.to(dev) if isinstance(loss_fn, torch.nn.Module) else loss_fn
    opt = parser.get_parsed_content("optimizer")
    batch = int(parser.get_parsed_content("trainer#batch_size"))
    parser["train_limit"] = max(batch, 4)  # enough pairs for full batches, few to load
    ds = parser.get_parsed_content("train_dataset")
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0, drop_last=True)
    batches = []
    while len(batches) < args.steps + args.warmup:
        batches += [(b["a"].to(dev), b["b"].to(dev)) for b in loader]
    times = []
    for i, (a, b) in enumerate(batches[: args.steps + args.warmup]):
        t = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(net(a, b), a, b)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
    times.sort()
    print(json.dumps({"config": files, "overrides": overrides[:-1] if args.random_vgg else overrides,
                      "random_vgg": args.random_vgg, "batch": batch, "input": list(a.shape),
                      "threads": torch.get_num_threads(), "steps": len(times),
                      "median_s_per_step": round(times[len(times) // 2], 3), "min_s": round(times[0], 3),
                      "max_s": round(times[-1], 3)}))


if __name__ == "__main__":
    main()
