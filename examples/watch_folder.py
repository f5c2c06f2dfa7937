"""Watch a folder and fuse each new study as it appears (plain polling, no extra dependency).

Usage::

    python examples/watch_folder.py INBOX OUTBOX [--interval 5] [--settle 30] [--once]
        [--method auto] [--task ct-mri] [--weights FILE] [--device auto] [--format nifti,png]

A study is a subfolder of INBOX holding exactly two inputs: two DICOM series folders, or two image
files (NIfTI, MHA, NRRD), or one of each. Input A is the first in name order (CT, PET or SPECT by
medfuse's convention), B the second (MR): name them e.g. ``1_ct`` and ``2_mr``. A study is taken
once nothing in it has changed for ``--settle`` seconds (copies still in progress are left alone).
Each study's outputs are written by ``medfuse.fusion.fuse_volumes`` into OUTBOX/<study>/
atomically (a temporary folder renamed into place), so a crash never leaves half a result and a
study with OUTBOX/<study>/run.json is done. A failing study is reported in OUTBOX/<study>.error.txt
and retried only when its files change; it never stops the others. ``--once`` handles what is
ready now and exits (1 if a study failed). Stop the loop with Ctrl-C. See docs/monai.md.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's medfuse

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".dcm")


def study_inputs(study: Path) -> list[Path]:
    """The study's inputs in A, B order: image files and series subfolders (hidden ones skipped)."""
    return sorted(
        p for p in study.iterdir()
        if not p.name.startswith(".") and (p.is_dir() or p.name.lower().endswith(IMAGE_SUFFIXES))
    )


def signature(study: Path) -> tuple[str, float]:
    """(hash of every file's path, size and mtime; newest mtime) of a study folder."""
    h, newest = hashlib.sha256(), 0.0
    for f in sorted(p for p in study.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(study)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        newest = max(newest, st.st_mtime)
    return h.hexdigest(), newest


def scan(inbox: Path, outbox: Path, args: argparse.Namespace) -> tuple[int, int]:
    """Fuse every ready, not yet done study once; returns (fused, failed)."""
    from medfuse.errors import MedfuseError
    from medfuse.fusion import FuseOptions, fuse_volumes

    fused = failed = 0
    for study in sorted(p for p in inbox.iterdir() if p.is_dir() and not p.name.startswith(".")):
        out, err = outbox / study.name, outbox / f"{study.name}.error.txt"
        if (out / "run.json").is_file():
            continue
        sig, newest = signature(study)
        if time.time() - newest < args.settle:
            continue  # still being copied
        if err.is_file() and err.read_text().splitlines()[0] == sig:
            continue  # failed before with exactly these files
        inputs = study_inputs(study)
        if len(inputs) != 2:
            continue  # not a complete pair (yet)
        opts = FuseOptions(method=args.method, task=args.task, weights=args.weights,
                           device=args.device,
                           formats=tuple(args.format.split(",")) if args.format else None,
                           progress=False)
        t0 = time.perf_counter()
        try:
            fuse_volumes(inputs[0], inputs[1], out, opts)
        except MedfuseError as exc:
            failed += 1
            tmp = err.with_name(err.name + ".tmp")
            tmp.write_text(f"{sig}\n{exc}\n")
            tmp.replace(err)
            print(f"{study.name}: failed: {exc}", flush=True)
            continue
        err.unlink(missing_ok=True)
        fused += 1
        print(f"{study.name}: fused into {out} in {time.perf_counter() - t0:.1f} s", flush=True)
    return fused, failed


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inbox", type=Path)
    ap.add_argument("outbox", type=Path)
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between scans")
    ap.add_argument("--settle", type=float, default=30.0,
                    help="seconds a study must stay unchanged")
    ap.add_argument("--once", action="store_true", help="handle what is ready now, then exit")
    ap.add_argument("--method", default="auto")
    ap.add_argument("--task", default=None)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--format", default=None, help="comma list of dicom, nifti, png")
    args = ap.parse_args(argv)
    if not args.inbox.is_dir():
        print(f"watch_folder: error: {args.inbox}: no such folder", file=sys.stderr)
        return 3
    args.outbox.mkdir(parents=True, exist_ok=True)
    if args.once:
        return 1 if scan(args.inbox, args.outbox, args)[1] else 0
    print(f"watching {args.inbox} every {args.interval:g} s (Ctrl-C stops)", flush=True)
    try:
        while True:
            scan(args.inbox, args.outbox, args)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
