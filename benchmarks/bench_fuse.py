"""Benchmark ``medfuse fuse``: per method, end to end on the phantom pair, and the fuse stage alone.

1. End to end: ``python -m medfuse fuse CT MR -o OUT --method M -q`` in a fresh process per method
   on the full MRI-DIR phantom pair (91 CT + 94 MR slices, 512x512; rigid registration; all
   outputs), stage times from run.json (load / register / prepare / fuse / write), the process's
   wall time (imports included) and its peak resident memory (``os.wait4``).
2. Fuse stage alone at 256x256: the Harvard CT-MRI pairs stacked (N slices) and fused with
   ``fuse_slices`` on ``--device``; slices per second (the GPU target is >= 2,000 at 256x256).

The networks run with their shipped CT-MRI weights (``--weights random`` for randomly initialised
ones, ``--weights FILE`` for a file). A method may name a network backend and tiling after ``+``:
``ecfusion+onnxruntime``, ``s3imfusion+tile256`` (``--tile 256``), ``ecfusion+onnxruntime+tile256``.
The end-to-end part ends with each method's total (pipeline) and process time as a ratio to the
first method's (laplacian by default) and its peak memory against the 2 GB target.

Usage::

    python3 benchmarks/bench_fuse.py                       # laplacian, s3imfusion, ecfusion
    python3 benchmarks/bench_fuse.py --e2e-methods laplacian,ecfusion,ecfusion+onnxruntime
    python3 benchmarks/bench_fuse.py --methods laplacian,dwt --skip-stage
    python3 benchmarks/bench_fuse.py --device cuda --skip-e2e --stage-slices 4096
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

NETWORKS = ("ecfusion", "s3imfusion")
#: the 2 GB peak-memory target of the speed issue.
PEAK_TARGET_MB = 2048


def _variant(spec: str) -> tuple[str, list[str]]:
    """``"ecfusion+onnxruntime+tile256"`` -> ("ecfusion", fuse flags for that variant)."""
    name, *parts = spec.split("+")
    flags: list[str] = []
    for part in parts:
        if part.startswith("tile"):
            flags += ["--tile", part[4:]]
        else:
            flags += ["--net-backend", part]
    return name, flags


def _network_weights(name: str, weights: str | None, folder: Path) -> list[str]:
    """The ``--weights`` flags of a network: shipped (none), ``random`` or a file."""
    if weights is None:
        return []
    if weights == "random":
        return ["--weights", str(_random_weights(name, folder))]
    return ["--weights", weights]


def _random_weights(name: str, folder: Path) -> Path:
    import torch

    from medfuse.nets import get_network, save_weights

    torch.manual_seed(0)
    return save_weights(
        get_network(name),
        folder / f"{name}-random.safetensors",
        name,
        task="ct-mri",
        extra={"note": "random weights for benchmarking"},
    )


def end_to_end(methods: list[str], weights: str | None, device: str) -> list[dict]:
    ct = DATA / "volumes" / "mridir_phantom_ct_mr" / "CT_every4th"
    mr = DATA / "volumes" / "mridir_phantom_ct_mr" / "MR_T2"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for spec in methods:
            m, variant_flags = _variant(spec)
            out = tmp / f"out-{spec}"
            cmd = [
                sys.executable,
                "-m",
                "medfuse",
                "fuse",
                str(ct),
                str(mr),
                "-o",
                str(out),
                "--method",
                m,
                "--device",
                device,
                "-q",
                *variant_flags,
            ]
            if m in NETWORKS:
                cmd += _network_weights(m, weights, tmp)
            env = dict(os.environ, PYTHONPATH=str(REPO))
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            err = proc.stderr.read().decode() if proc.stderr else ""
            if os.waitstatus_to_exitcode(status) != 0:
                print(f"{spec}: failed: {err.strip()}", file=sys.stderr)
                continue
            run = json.loads((out / "run.json").read_text())
            t = run["timings_s"]
            rows.append(
                {
                    "method": spec,
                    **t,
                    "wall": wall,
                    "slices": run["n_slices"],
                    "slices_per_s": run["n_slices"] / t["fuse"],
                    "peak_rss_mb": usage.ru_maxrss / 1024,
                }
            )
            r = rows[-1]
            print(
                f"{spec:>22}: load {r['load']:6.2f}  register {r['register']:6.2f}  prepare "
                f"{r['prepare']:6.2f}  fuse {r['fuse']:7.2f}  write {r['write']:6.2f}  total "
                f"{r['total']:7.2f} s  (process {wall:6.1f} s)  {r['slices_per_s']:8.1f} slices/s"
                f"  peak {r['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    return rows


def fuse_stage(
    methods: list[str], weights: str | None, device: str, n: int, batch_size: int | None
) -> list[dict]:
    import numpy as np
    import torch
    from PIL import Image

    from medfuse.fusion import get_method
    from medfuse.fusion.slices import auto_batch_size, fuse_slices, resolve_device

    dev = resolve_device(device)
    src = DATA / "harvard" / "CT-MRI"
    names = sorted(p.name for p in (src / "CT").glob("*.png"))
    imgs = [
        [np.asarray(Image.open(src / mod / nm).convert("L")) for nm in names]
        for mod in ("CT", "MRI")
    ]
    reps = -(-n // len(names))
    a, b = (
        torch.from_numpy(np.stack(x * reps)[:n].astype(np.float32) / 255.0)[:, None] for x in imgs
    )
    if dev.type == "cuda":
        a, b = a.pin_memory(), b.pin_memory()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in methods:
            name, flags = _variant(m)
            opts: dict = {}
            if name in NETWORKS:
                opts = {"task": "ct-mri"}
                if weights is not None:
                    opts["weights"] = (
                        _random_weights(name, Path(tmp)) if weights == "random" else weights
                    )
                for flag, value in zip(flags[::2], flags[1::2]):
                    key = {"--tile": "tile", "--net-backend": "backend"}[flag]
                    opts[key] = int(value) if flag == "--tile" else value
            method = get_method(name, device=dev, **opts)
            bs = batch_size or auto_batch_size(method, 256, 256, n)
            fuse_slices(method, a[:bs], b[:bs], batch_size=bs)  # warm-up (kernels, caches)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            fuse_slices(method, a, b, batch_size=bs)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            dt = time.perf_counter() - t0
            rows.append(
                {
                    "method": m,
                    "device": str(dev),
                    "slices": n,
                    "batch": bs,
                    "seconds": dt,
                    "slices_per_s": n / dt,
                }
            )
            print(
                f"{m:>22}: {n} slices 256x256 on {dev} (batch {bs}) in {dt:7.3f} s = "
                f"{n / dt:9.1f} slices/s",
                flush=True,
            )
    return rows


def ratios(rows: list[dict]) -> None:
    """Print each method's total and process time as a ratio to the first row's, and peak memory."""
    if not rows:
        return
    base = rows[0]
    print(f"== ratios to {base['method']} (pipeline total / process wall), peak memory ==")
    for r in rows:
        ok = "ok" if r["peak_rss_mb"] <= PEAK_TARGET_MB else f"over {PEAK_TARGET_MB} MB"
        r["ratio_total"] = r["total"] / base["total"]
        r["ratio_process"] = r["wall"] / base["wall"]
        print(
            f"{r['method']:>22}: total {r['ratio_total']:5.2f}x  process "
            f"{r['ratio_process']:5.2f}x  peak {r['peak_rss_mb']:6.0f} MB ({ok})",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="average,max,laplacian,dwt,guided-filter,ecfusion")
    ap.add_argument(
        "--weights", default=None, help="network weights: a file, or 'random' (default: shipped)"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--skip-stage", action="store_true")
    ap.add_argument(
        "--e2e-methods",
        default="laplacian,s3imfusion,ecfusion",
        help="methods for the end-to-end part (the first is the ratios' base)",
    )
    ap.add_argument("--stage-slices", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--json", default=None, help="write all figures to this JSON file")
    args = ap.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    result = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
    if not args.skip_e2e:
        e2e = [m.strip() for m in args.e2e_methods.split(",") if m.strip()]
        print("== end to end, phantom pair (91 CT + 94 MR slices, 512x512) ==", flush=True)
        result["end_to_end"] = end_to_end(e2e, args.weights, args.device)
        ratios(result["end_to_end"])
    if not args.skip_stage:
        print(f"== fuse stage alone, {args.stage_slices} Harvard slices at 256x256 ==", flush=True)
        result["fuse_stage"] = fuse_stage(
            methods, args.weights, args.device, args.stage_slices, args.batch_size
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
