"""Size, cost and speed of medfuse's fusion networks at one 256x256 pair.

Run from the repository root::

    python benchmarks/bench_nets.py [--nets ecfusion s3imfusion] [--repeats 20] [--threads 2]
    python benchmarks/bench_nets.py --backends [--sizes 256 512] [--thread-counts 1 2]
    python benchmarks/bench_nets.py --precision --gpu-batch 64     # on a GPU: fp32 / bf16 / fp16

For each registered network: parameters, FLOPs at one 256x256 pair (``torch.utils.flop_counter``,
which counts 2 FLOPs per multiply-accumulate; MACs are printed too), and the CPU forward time per
pair at batch 1 under ``inference_mode`` (contiguous and channels_last; the process CPU time per
forward is printed too, a figure less disturbed by other load than wall time). The machine may be
shared, so the figure reported is the minimum over the repeats (the least-disturbed run) with the
median beside it. With CUDA available
it also reports GPU throughput (pairs/s at ``--gpu-batch`` with bf16 autocast and channels_last)
and peak GPU memory of a batch-1 forward.

``--backends`` compares, in one run and interleaved (each repeat runs every path once, so they
share the machine's load), with the shipped CT-MRI weights: ``reference`` (today's eager code,
``medfuse.nets.blocks.reference_kernels``), ``eager`` (the default eager path: fused oneDNN
convolutions, cached position bias) and ``onnxruntime`` (``medfuse.nets.ort_backend``): median
wall ms per batch-1 pair for each size and thread count, the ratio to the reference, and the load
average (the machine is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from medfuse.nets import get_network, list_networks, load_pretrained, with_backend  # noqa: E402
from medfuse.nets.blocks import reference_kernels  # noqa: E402


def _pair(batch: int, size: int = 256, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(batch, 1, size, size, generator=g) * 2 - 1
    b = torch.rand(batch, 1, size, size, generator=g) * 2 - 1
    return a.to(device), b.to(device)


def cpu_ms(net: torch.nn.Module, repeats: int,
           channels_last: bool = False) -> tuple[float, float, float]:
    """Wall ms (min, median) and process CPU ms (min) per batch-1 forward."""
    a, b = _pair(1)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        a, b = (t.contiguous(memory_format=torch.channels_last) for t in (a, b))
    wall, cpu = [], []
    with torch.inference_mode():
        net(a, b)
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            net(a, b)
            wall.append((time.perf_counter() - t) * 1e3)
            cpu.append((time.process_time() - c) * 1e3)
    return min(wall), statistics.median(wall), min(cpu)


def gpu_figures(net: torch.nn.Module, batch: int, repeats: int) -> tuple[float, float]:
    net = net.cuda().to(memory_format=torch.channels_last)
    a, b = _pair(batch, device="cuda")
    a, b = (a.contiguous(memory_format=torch.channels_last),
            b.contiguous(memory_format=torch.channels_last))
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        for _ in range(3):
            net(a, b)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(repeats):
            net(a, b)
        torch.cuda.synchronize()
        rate = batch * repeats / (time.perf_counter() - t)
        a1, b1 = _pair(1, device="cuda")
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        net(a1, b1)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**30
    return rate, peak


DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _real_pair(batch: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The Harvard CT-MRI pair 16003 (``../shared/data``) repeated ``batch`` times, in [-1, 1];
    the random pair where the data is not beside the repository."""
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "harvard" / "CT-MRI"
    if not (root / "CT" / "16003.png").is_file():
        return _pair(batch, device=device)
    import numpy as np
    from PIL import Image

    def load(kind: str) -> torch.Tensor:
        img = np.asarray(Image.open(root / kind / "16003.png").convert("L"), dtype=np.float32)
        return (torch.from_numpy(img) / 127.5 - 1.0)[None, None].repeat(batch, 1, 1, 1)

    return load("CT").to(device), load("MRI").to(device)


def precision_table(nets: list[str], batch: int, repeats: int, device: str) -> None:
    """Pairs/s at ``batch`` 256x256 pairs per call for float32, bfloat16 and float16 autocast
    (channels-last, shipped CT-MRI weights), with each dtype's error against float32 on a real pair
    in grey levels (mean and max), and the peak GPU memory of a batch-1 forward.

    ``medfuse fuse`` runs networks under float16 autocast on CUDA and the trainer's ``amp`` is
    bfloat16: this is the check that both stay near float32 on the device (issue 16's GPU item).
    """
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    print(f"{'network':<12} {'dtype':>5} {'pairs/s':>9} {'err mean':>9} {'err max':>8} "
          f"{'GiB@1':>6}  (batch {batch}, 256x256, {device})")
    for name in nets:
        net = load_pretrained(name, task="ct-mri").eval().to(device)
        net = net.to(memory_format=torch.channels_last)
        a, b = (t.contiguous(memory_format=torch.channels_last) for t in _real_pair(batch, device))
        ref = None
        for label, dtype in DTYPES.items():
            with torch.inference_mode(), torch.autocast(device.split(":")[0],
                                                        dtype=dtype or torch.float32,
                                                        enabled=dtype is not None):
                out = net(a, b).float()
                for _ in range(2):
                    net(a, b)
                sync()
                t = time.perf_counter()
                for _ in range(repeats):
                    net(a, b)
                sync()
                rate = batch * repeats / (time.perf_counter() - t)
                peak = float("nan")
                if cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                    net(a[:1], b[:1])
                    sync()
                    peak = torch.cuda.max_memory_allocated() / 2**30
            ref = out if ref is None else ref
            err = (out - ref).abs() * 127.5
            finite = bool(torch.isfinite(out).all())
            print(f"{name:<12} {label:>5} {rate:>9,.1f} {float(err.mean()):>9.3f} "
                  f"{float(err.max()):>8.2f} {peak:>6.3f}"
                  + ("" if finite else "  NON-FINITE OUTPUT"),
                  flush=True)


def at_commit(name: str, rev: str, like: torch.nn.Module) -> torch.nn.Module:
    """The network ``name`` as its module file was at git revision ``rev``, with ``like``'s weights.

    The file ``medfuse/nets/<name>.py`` of that revision is compiled as a module of its own (its
    imports resolve against today's package) and built with its default arguments (the shipped
    networks differ from them at most in the output activation, which has no weights and does not
    change the timing).
    """
    import importlib.util
    import subprocess
    import sys
    import tempfile

    root = Path(__file__).resolve().parents[1]
    src = subprocess.run(["git", "-C", str(root), "show", f"{rev}:medfuse/nets/{name}.py"],
                         capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / f"{name}_at_{rev}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    old = getattr(module, type(like).__name__)()
    old.load_state_dict(like.state_dict())
    return old.eval()


def backend_table(names: list[str], sizes: list[int], thread_counts: list[int],
                  repeats: int, rev: str | None = None) -> None:
    """Print median ms per pair of the reference, eager and onnxruntime paths (interleaved), and
    with ``rev`` the network's code at that git revision (its eager path then)."""
    print(f"{'network':<11} {'size':>4} {'thr':>3} {'reference':>10} {'eager':>8} {'x':>5}"
          f" {'onnxrt':>8} {'x':>5}"
          + (f" {'at ' + rev:>12} {'eager x':>7}" if rev else "")
          + "  load avg (1/5 min)")
    for name in names:
        net = load_pretrained(name, task="ct-mri")
        old = at_commit(name, rev, net) if rev else None
        for size in sizes:
            a, b = _pair(1, size)
            for threads in thread_counts:
                torch.set_num_threads(threads)
                ort = with_backend(net, "onnxruntime", threads)
                plain = contextlib.nullcontext
                paths = {"reference": (reference_kernels, net), "eager": (plain, net),
                         "onnxruntime": (plain, ort)}
                if old is not None:
                    paths["old"] = (plain, old)
                times: dict[str, list[float]] = {k: [] for k in paths}
                reps = max(3, repeats if size <= 256 else repeats // 3)
                with torch.inference_mode():
                    for ctx, fn in paths.values():  # warm-up (and the ORT export)
                        with ctx():
                            fn(a, b)
                    for _ in range(reps):
                        for key, (ctx, fn) in paths.items():
                            with ctx():
                                t = time.perf_counter()
                                fn(a, b)
                                times[key].append((time.perf_counter() - t) * 1e3)
                med = {k: statistics.median(v) for k, v in times.items()}
                load = os.getloadavg()
                print(f"{name:<11} {size:>4} {threads:>3} {med['reference']:>10.1f}"
                      f" {med['eager']:>8.1f}"
                      f" {med['reference'] / med['eager']:>5.2f} {med['onnxruntime']:>8.1f}"
                      f" {med['reference'] / med['onnxruntime']:>5.2f}"
                      + (f" {med['old']:>12.1f} {med['old'] / med['eager']:>7.2f}" if old else "")
                      + f"  {load[0]:.1f} / {load[1]:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="*", default=None,
                        help="networks (default: all registered)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2,
                        help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--gpu-batch", type=int, default=128)
    parser.add_argument("--backends", action="store_true",
                        help="compare reference / eager / onnxruntime")
    parser.add_argument("--sizes", nargs="*", type=int, default=[256, 512])
    parser.add_argument("--thread-counts", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--against-commit", default=None, metavar="REV",
                        help="with --backends: also time each network's code at git revision REV "
                             "(e.g. 547a05c, the code when issue 16 was filed)")
    parser.add_argument("--precision", action="store_true",
                        help="pairs/s and error against float32 of fp32, bf16 and fp16 autocast at "
                             "--gpu-batch (on --device, default cuda)")
    parser.add_argument("--device", default="cuda", help="with --precision: cuda or cpu")
    args = parser.parse_args()
    if args.precision:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            sys.exit("bench_nets.py --precision: no CUDA device (use --device cpu to try it here)")
        print(f"torch {torch.__version__}, "
              + (torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"))
        precision_table(args.nets or list_networks(), args.gpu_batch, max(3, args.repeats // 2),
                        args.device)
        return
    if args.backends:
        cpu = platform.processor() or platform.machine()
        print(f"torch {torch.__version__}, {cpu}, {os.cpu_count()} cores")
        backend_table(args.nets or list_networks(), args.sizes, args.thread_counts, args.repeats,
                      args.against_commit)
        return
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} threads")
    print(f"{'network':<12} {'params':>9} {'GFLOPs':>7} {'GMACs':>6} {'CPU ms min':>10} "
          f"{'median':>7} {'cpu-ms':>7}"
          f" {'ch-last min':>11} {'median':>7}"
          + ("   GPU pairs/s  GPU GiB@1" if torch.cuda.is_available() else ""))
    for name in args.nets or list_networks():
        try:
            net = get_network(name).eval()
        except (ImportError, AttributeError) as exc:
            print(f"{name:<12} not available ({exc})")
            continue
        params = sum(p.numel() for p in net.parameters())
        a, b = _pair(1)
        # the math SDPA backend decomposes attention into counted matmuls (the fused CPU kernel is
        # not counted by FlopCounterMode)
        with (FlopCounterMode(display=False) as counter, torch.inference_mode(),
              sdpa_kernel([SDPBackend.MATH])):
            net(a, b)
        flops = counter.get_total_flops() / 1e9
        best, med, cpu = cpu_ms(net, args.repeats)
        cl_best, cl_med, _ = cpu_ms(get_network(name).eval(), args.repeats, channels_last=True)
        line = (f"{name:<12} {params:>9,} {flops:>7.2f} {flops / 2:>6.2f} {best:>10.1f} "
                f"{med:>7.1f} {cpu:>7.0f}"
                f" {cl_best:>11.1f} {cl_med:>7.1f}")
        if torch.cuda.is_available():
            rate, peak = gpu_figures(net, args.gpu_batch, max(5, args.repeats // 2))
            line += f"   {rate:>11,.0f}  {peak:>9.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
