"""Start-up time of the command line (prints figures only).

Times whole commands as a user runs them (``python -m medfuse ...`` in a new process), best of
``--repeat``, next to ``python -c "import monai"`` for scale, and prints the machine load beside
them because the development machines are shared.

Usage: python3 benchmarks/bench_startup.py [--data ../shared/data] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _best(cmd: list[str], repeat: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, check=True)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    data = Path(args.data)
    py = [sys.executable]
    cases = [
        ("medfuse --help", [*py, "-m", "medfuse", "--help"]),
        ("medfuse fuse --help", [*py, "-m", "medfuse", "fuse", "--help"]),
        ("medfuse info <demo CT, 24 slices>", [*py, "-m", "medfuse", "info",
                                              str(REPO / "medfuse" / "data" / "demo" / "ct")]),
        ("medfuse info <phantom MR_T2, 94 x 512x512>",
         [*py, "-m", "medfuse", "info", str(data / "volumes/mridir_phantom_ct_mr/MR_T2")]),
        ("medfuse info <stroke T1.nii.gz>",
         [*py, "-m", "medfuse", "info", str(data / "volumes/mit_mr_nifti/stroke/T1.nii.gz")]),
        ("python -c 'import monai' (scale)", [*py, "-c", "import monai"]),
    ]
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    for name, cmd in cases:
        print(f"{name:<45} {_best(cmd, args.repeat):6.2f} s (best of {args.repeat})")
    print(f"load average after:  {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
