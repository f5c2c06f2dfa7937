"""Write (or check) pipelines/bundles/<net>_<task>/ for every shipped weights file.

Usage::

    python scripts/make_bundles.py            # (re)write a bundle per medfuse/weights/*.safetensors
    python scripts/make_bundles.py --check    # exit 1 when a committed bundle no longer matches

Each bundle is what ``medfuse export-bundle --net NET --task TASK`` writes; its only large file is
models/model.pt (the weights' tensors, same size as the .safetensors). Bundles whose weights are
gone are reported (and removed with ``--prune``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

__all__ = ["main", "shipped_weights"]

REPO = Path(__file__).resolve().parents[1]


def shipped_weights(weights_dir: Path) -> dict[str, Path]:
    """Bundle name -> weights file, for every ``*.safetensors`` in ``weights_dir``."""
    from medfuse.bundle import bundle_name
    from medfuse.nets.pretrained import read_weights

    out = {}
    for path in sorted(weights_dir.glob("*.safetensors")):
        _, meta = read_weights(path)
        network = meta.get("network") or path.stem.split("-", 1)[0]
        out[bundle_name(network, meta.get("task") or None)] = path
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    sys.path.insert(0, str(REPO))
    from medfuse.bundle import export_bundle
    from medfuse.bundle.check import bundle_problems
    from medfuse.errors import MedfuseError
    from medfuse.io.guard import MARKER

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights-dir", type=Path, default=REPO / "medfuse" / "weights")
    ap.add_argument("--out", type=Path, default=REPO / "pipelines" / "bundles")
    ap.add_argument("--check", action="store_true", help="only check the existing bundles")
    ap.add_argument("--prune", action="store_true", help="remove bundles whose weights are gone")
    args = ap.parse_args(argv)

    try:
        wanted = shipped_weights(args.weights_dir)
    except MedfuseError as exc:
        print(f"make_bundles: error: {exc}", file=sys.stderr)
        return 1
    problems: list[str] = []
    for name, weights in wanted.items():
        dest = args.out / name
        if args.check:
            found = bundle_problems(dest, weights)
            problems += found
            print(f"{dest}: {'ok' if not found else 'MISMATCH'}")
            continue
        export_bundle(dest, weights=weights, overwrite=True)
        # the output marker holds its creation time: committed bundles would change at every run
        # (without it, configs/metadata.json still tells medfuse the folder is its own)
        (dest / MARKER).unlink(missing_ok=True)
        print(f"wrote {dest} from {weights.name}")
    stale = (sorted(p for p in args.out.glob("*/") if p.is_dir() and p.name not in wanted)
             if args.out.is_dir() else [])
    for p in stale:
        if args.prune and not args.check:
            shutil.rmtree(p)
            print(f"removed {p} (no weights)")
        else:
            problems.append(f"{p}: no weights file for this bundle in {args.weights_dir}")
    for line in problems:
        print(line, file=sys.stderr)
    if not wanted:
        print(f"no weights in {args.weights_dir}: no bundles written")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
