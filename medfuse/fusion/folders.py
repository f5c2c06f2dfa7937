"""Paper-style experiments: fuse two folders of matching 2D images pair by pair.

Given ``A/`` (CT, PET or SPECT) and ``B/`` (MRI) with the same file names (e.g.
``../shared/data/harvard/PET-MRI/PET`` and ``.../MRI``), writes into ``OUT/``:

* ``fused/<name>.png`` - the fused image, 8-bit grayscale (for colour tasks: the fused luma Y);
  score it with ``medfuse evaluate --a A --b B --fused METHOD=OUT/fused``;
* ``rgb/<name>.png`` - colour tasks only: the fused Y recombined with the source's Cb/Cr;
* ``run.json`` - inputs, method, task, timings.

A colour source (RGB PNG, as the Harvard PET/SPECT images are) is split into BT.601 YCbCr; a
grayscale source flagged functional is colourised with the palette first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medfuse.errors import InputError
from medfuse.io.writers import to_uint8, write_png

from .options import FuseOptions
from .stages import (
    StageClock,
    build_method,
    fuse_stage,
    resolve_method_name,
    run_record,
    split_colour,
    write_record,
)

__all__ = ["IMAGE_SUFFIXES", "is_image_folder", "fuse_folders", "read_image"]

#: 2D image suffixes (as ``medfuse evaluate`` reads).
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")

_TASK_BY_NAME = {"CT": "ct-mri", "PET": "pet-mri", "PT": "pet-mri", "SPECT": "spect-mri"}


def _images(folder: Path) -> dict[str, Path]:
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES:
            out[p.stem] = p
    return out


def is_image_folder(path: str | os.PathLike | None) -> bool:
    """True for a folder holding 2D image files (PNG/TIFF/BMP/JPEG) and no DICOM."""
    if path is None:
        return False
    p = Path(path)
    if not p.is_dir():
        return False
    n_img = n_other = 0
    try:
        entries = list(p.iterdir())
    except OSError:  # unreadable: the volume readers report it
        return False
    for f in entries:
        if f.is_file() and not f.name.startswith("."):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                n_img += 1
            else:
                n_other += 1
    return n_img > 0 and n_img >= n_other


def read_image(path: Path) -> np.ndarray:
    """A 2D image as (H, W) or (H, W, 3) uint8 (alpha dropped; 16-bit scaled to 8-bit).

    Raises:
        InputError: unreadable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
                arr = np.asarray(im.convert("RGB"))
                if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(
                    arr[..., 1], arr[..., 2]
                ):
                    arr = arr[..., 0]
            elif im.mode in ("I;16", "I;16B", "I", "F"):
                a = np.asarray(im, dtype=np.float64)
                lo, hi = float(a.min()), float(a.max())
                arr = (
                    np.zeros(a.shape, np.uint8)
                    if hi <= lo
                    else np.rint((a - lo) / (hi - lo) * 255).astype(np.uint8)
                )
            else:
                arr = np.asarray(im.convert("L"))
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: unreadable image ({' '.join(str(exc).split())[:120]})") from None
    return np.ascontiguousarray(arr)


def fuse_folders(
    a: str | os.PathLike,
    b: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: FuseOptions | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fuse every pair of same-named 2D images of two folders (see module docstring).

    The stages of :func:`~medfuse.fusion.pipeline.fuse_volumes`, where the inputs differ: load
    reads image pairs, there is nothing to register, prepare groups the pairs by size and splits
    colour, write writes PNGs.

    Args:
        a: folder of source A images (CT, PET or SPECT; RGB means a colour task).
        b: folder of source B images (MRI).
        out_dir: output folder (written atomically).
        options: :class:`~medfuse.fusion.options.FuseOptions` (method, task, weights, device,
            batch_size, functional, palette, overwrite, progress are used).
        log: one-line messages.

    Returns:
        the run.json record.

    Raises:
        InputError: names do not match, sizes differ, unreadable images.
    """
    from medfuse.fusion.slices import resolve_device
    from medfuse.io.atomic import AtomicOutputDir, check_output_dir

    opt = options or FuseOptions()
    clock = StageClock(opt.progress, log)
    pa, pb = Path(a), Path(b)
    out = check_output_dir(out_dir, opt.overwrite, inputs=(pa, pb))
    opt.check()
    names, ia, ib = _pair_names(pa, pb)
    device = resolve_device(opt.device)
    task = opt.task or _TASK_BY_NAME.get(pa.name.upper()) or _TASK_BY_NAME.get(pb.name.upper())
    method_name = resolve_method_name(opt, task)
    method = build_method(method_name, opt, task, device)

    with clock.stage("load"):
        xs_a, xs_b = _load_pairs(names, ia, ib, clock)
    with clock.stage("fuse"):
        colour_a = any(x.ndim == 3 for x in xs_a) or opt.functional == "a"
        colour_b = any(x.ndim == 3 for x in xs_b) or opt.functional == "b"
        if colour_a and colour_b:
            raise InputError(
                f"{pa} and {pb}: both folders hold colour images; one must be the MRI"
            )
        bar = clock.bar("fuse", len(names))
        results: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        for idx in _by_size(xs_a):
            (ya, ca), (yb, cb) = (
                split_colour(_stack(xs, idx, colour, opt.palette), colour, opt.palette)
                for xs, colour in ((xs_a, colour_a), (xs_b, colour_b))
            )
            y, rgb = fuse_stage(method, ya, yb, ca if ca is not None else cb,
                                opt.batch_size, bar.update)
            for j, i in enumerate(idx):
                results[i] = (
                    to_uint8(y[j, 0]),
                    None if ca is None and cb is None else np.moveaxis(to_uint8(rgb[j]), 0, -1),
                )
        bar.close()

    colour = colour_a or colour_b
    with AtomicOutputDir(out, overwrite=opt.overwrite, inputs=(pa, pb), command="fuse") as tmp:
        with clock.stage("write"):
            _write_pngs(names, results, colour, tmp, clock)
            if opt.review:  # A | B | fused | alignment check for a sample of pairs
                from medfuse.fusion.review import write_pairs_review

                pairs = (results[i] for i in range(len(names)))
                shown = [y if rgb is None else rgb for y, rgb in pairs]
                write_pairs_review(tmp / "review.png", names, xs_a, xs_b, shown, method_name, task)
        inputs = {
            "inputs": {"a": str(pa), "b": str(pb), "pairs": len(names)},
            "colour_task": colour,
            "palette": opt.palette.upper() if colour else None,
        }
        outputs = (["fused/"] + (["rgb/"] if colour else []) + ["review.png"] * opt.review
                   + ["run.json"])
        run = run_record("medfuse fuse (2D folders)", inputs, task, method,
                         {"device": str(device)}, outputs, tmp, opt, clock)
        write_record(run, tmp)
    total = clock.times["total"]
    clock.log(f"fused {len(names)} pairs with {method_name} into {out} in {total:.1f} s")
    return run


def _pair_names(pa: Path, pb: Path) -> tuple[list[str], dict[str, Path], dict[str, Path]]:
    """The image names both folders hold (sorted), and each folder's name -> file map.

    Raises:
        InputError: an empty folder, or names without a partner.
    """
    ia, ib = _images(pa), _images(pb)
    if not ia:
        raise InputError(f"{pa}: no PNG/TIFF/BMP/JPEG image found")
    if not ib:
        raise InputError(f"{pb}: no PNG/TIFF/BMP/JPEG image found")
    missing = sorted(set(ia) ^ set(ib))
    if missing:
        raise InputError(
            f"{pa} and {pb}: image names do not match ({len(missing)} without a partner, e.g. "
            f"{', '.join(missing[:5])})"
        )
    return sorted(ia), ia, ib


def _load_pairs(
    names: list[str], ia: dict[str, Path], ib: dict[str, Path], clock: StageClock
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Read every pair (uint8, (H, W) or (H, W, 3)); the two images of a pair must match in size."""
    bar = clock.bar("load", len(names))
    xs_a, xs_b = [], []
    for n in names:
        ra, rb = read_image(ia[n]), read_image(ib[n])
        if ra.shape[:2] != rb.shape[:2]:
            raise InputError(
                f"{ia[n]} and {ib[n]}: sizes differ ({ra.shape[:2]} vs {rb.shape[:2]})"
            )
        xs_a.append(ra)
        xs_b.append(rb)
        bar.update(1)
    bar.close()
    return xs_a, xs_b


def _by_size(xs: list[np.ndarray]) -> list[list[int]]:
    """Indices of ``xs`` grouped by image size (each group is fused as one stack)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(xs):
        groups.setdefault(x.shape[:2], []).append(i)
    return list(groups.values())


def _stack(xs: list[np.ndarray], idx: list[int], colour: bool, palette: str) -> torch.Tensor:
    """Images ``idx`` of one folder as (N, C, H, W) float32 in [0, 1].

    A colour folder gives RGB (C = 3; a grey image among colour ones is repeated, a grey folder
    flagged functional is colourised with ``palette``); a grey folder gives C = 1 (an RGB image
    in it, its luma).
    """
    from medfuse.transforms.colour import colourise, rgb_to_ycbcr

    t = []
    for i in idx:
        x = torch.from_numpy(xs[i].astype(np.float32) / 255.0)
        if colour:
            if x.ndim == 3:
                t.append(x.permute(2, 0, 1))
            elif any(v.ndim == 3 for v in xs):  # a gray image among colour ones
                t.append(x[None].expand(3, -1, -1))
            else:  # a grayscale folder flagged functional: colourise it
                t.append(colourise(x[None], palette))
        else:
            t.append(x[None] if x.ndim == 2 else rgb_to_ycbcr(x.permute(2, 0, 1))[:1])
    return torch.stack(t)


def _write_pngs(
    names: list[str],
    results: dict[int, tuple[np.ndarray, np.ndarray | None]],
    colour: bool,
    tmp: Path,
    clock: StageClock,
) -> None:
    """``fused/<name>.png`` (and ``rgb/<name>.png`` for a colour task) into ``tmp``."""
    (tmp / "fused").mkdir()
    if colour:
        (tmp / "rgb").mkdir()
    bar = clock.bar("write", len(names))
    for i, n in enumerate(names):
        y, rgb = results[i]
        write_png(y, tmp / "fused" / f"{n}.png")
        if rgb is not None:
            write_png(rgb, tmp / "rgb" / f"{n}.png")
        bar.update(1)
    bar.close()
