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

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medfuse.errors import InputError

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
    options: Any = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fuse every pair of same-named 2D images of two folders (see module docstring).

    Args:
        a: folder of source A images (CT, PET or SPECT; RGB means a colour task).
        b: folder of source B images (MRI).
        out_dir: output folder (written atomically).
        options: :class:`~medfuse.fusion.pipeline.FuseOptions` (method, task, weights, device,
            batch_size, functional, palette, overwrite, progress are used).
        log: one-line messages.

    Returns:
        the run.json record.

    Raises:
        InputError: names do not match, sizes differ, unreadable images.
    """
    from medfuse.fusion.base import get_method
    from medfuse.fusion.pipeline import FuseOptions, _auto_method, _Stages, _versions
    from medfuse.fusion.slices import fuse_slices, resolve_device
    from medfuse.io.atomic import AtomicOutputDir, check_output_dir
    from medfuse.io.checksums import output_hashes
    from medfuse.io.writers import to_uint8, write_png
    from medfuse.transforms.colour import colourise, rgb_to_ycbcr, ycbcr_to_rgb

    opt = options or FuseOptions()
    st = _Stages(opt.progress, log)
    t_all = time.perf_counter()
    pa, pb = Path(a), Path(b)
    out = check_output_dir(out_dir, opt.overwrite, inputs=(pa, pb))
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
    names = sorted(ia)
    device = resolve_device(opt.device)
    task = opt.task or _TASK_BY_NAME.get(pa.name.upper()) or _TASK_BY_NAME.get(pb.name.upper())
    method_name = opt.method if opt.method != "auto" else _auto_method(task)
    if opt.method == "auto" and opt.weights:  # a weights file names its own network
        method_name = "network"
    from medfuse.fusion.base import METHODS, list_methods
    from medfuse.fusion.network import NetworkFusion

    if method_name not in list_methods():
        raise InputError(
            f"unknown fusion method '{method_name}' (known: auto, {', '.join(list_methods())})"
        )
    network = issubclass(METHODS[method_name], NetworkFusion)
    if opt.weights and not network:
        raise InputError(f"--weights is for network methods; '{method_name}' takes none")
    mopts = {"task": task, "weights": opt.weights} if network else {}
    method = get_method(method_name, device=device, **mopts)

    t0 = time.perf_counter()
    bar = st.bar("load", len(names))
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
    st.timed("load", t0)

    t0 = time.perf_counter()
    colour_a = any(x.ndim == 3 for x in xs_a) or opt.functional == "a"
    colour_b = any(x.ndim == 3 for x in xs_b) or opt.functional == "b"
    if colour_a and colour_b:
        raise InputError(f"{pa} and {pb}: both folders hold colour images; one must be the MRI")
    fused_y: list[np.ndarray] = []
    fused_rgb: list[np.ndarray | None] = []
    bar = st.bar("fuse", len(names))
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, xa in enumerate(xs_a):
        by_size.setdefault(xa.shape[:2], []).append(i)
    results: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    for _size, idx in by_size.items():
        srcs, chroma = [], None
        for xs, colour in ((xs_a, colour_a), (xs_b, colour_b)):
            t = []
            for i in idx:
                x = torch.from_numpy(xs[i].astype(np.float32) / 255.0)
                if colour:
                    if x.ndim == 3:
                        t.append(x.permute(2, 0, 1))
                    elif any(v.ndim == 3 for v in xs):  # a gray image among colour ones
                        t.append(x[None].expand(3, -1, -1))
                    else:  # a grayscale folder flagged functional: colourise it
                        t.append(colourise(x[None], opt.palette))
                else:
                    t.append(x[None] if x.ndim == 2 else rgb_to_ycbcr(x.permute(2, 0, 1))[:1])
            s = torch.stack(t)
            if colour:
                ycc = rgb_to_ycbcr(s)
                chroma, s = ycc[:, 1:], ycc[:, :1]
            srcs.append(s.contiguous())
        y = fuse_slices(method, srcs[0], srcs[1], batch_size=opt.batch_size, progress=bar.update)
        rgb = None if chroma is None else ycbcr_to_rgb(torch.cat([y, chroma], 1))
        for j, i in enumerate(idx):
            results[i] = (
                to_uint8(y[j, 0]),
                None if rgb is None else np.moveaxis(to_uint8(rgb[j]), 0, -1),
            )
    bar.close()
    for i in range(len(names)):
        fused_y.append(results[i][0])
        fused_rgb.append(results[i][1])
    st.timed("fuse", t0)

    t0 = time.perf_counter()
    colour = colour_a or colour_b
    bar = st.bar("write", len(names))
    with AtomicOutputDir(out, overwrite=opt.overwrite, inputs=(pa, pb), command="fuse") as tmp:
        (tmp / "fused").mkdir()
        if colour:
            (tmp / "rgb").mkdir()
        for n, y8, rgb8 in zip(names, fused_y, fused_rgb):
            write_png(y8, tmp / "fused" / f"{n}.png")
            if rgb8 is not None:
                write_png(rgb8, tmp / "rgb" / f"{n}.png")
            bar.update(1)
        bar.close()
        if opt.review:  # A | B | fused | alignment check for a sample of pairs
            from medfuse.fusion.review import write_pairs_review

            shown = [y if rgb is None else rgb for y, rgb in zip(fused_y, fused_rgb)]
            write_pairs_review(tmp / "review.png", names, xs_a, xs_b, shown, method_name, task)
        st.timed("write", t0)
        st.times["total"] = round(time.perf_counter() - t_all, 4)
        run = {
            "command": "medfuse fuse (2D folders)",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "inputs": {"a": str(pa), "b": str(pb), "pairs": len(names)},
            "colour_task": colour,
            "palette": opt.palette.upper() if colour else None,
            "task": task,
            "method": method.info(),
            "device": str(device),
            "outputs": ["fused/"] + (["rgb/"] if colour else []) + ["review.png"] * opt.review
            + ["run.json"],
            "output_sha256": output_hashes(tmp),
            "timings_s": dict(st.times),
            "versions": _versions(),
            "options": {k: v for k, v in asdict(opt).items() if k != "progress"},
        }
        (tmp / "run.json").write_text(json.dumps(run, indent=2, default=str) + "\n")
    st.log(f"fused {len(names)} pairs with {method_name} into {out} in {st.times['total']:.1f} s")
    return run
