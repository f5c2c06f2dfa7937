"""The stages both fusion jobs share: method choice, colour split, fusion, the run record.

A fusion job is a short sequence of named stages (docs/ARCHITECTURE.md draws it)::

    load -> register -> prepare -> fuse -> write -> record

:func:`~medfuse.fusion.pipeline.fuse_volumes` (volumes) and
:func:`~medfuse.fusion.folders.fuse_folders` (folders of 2D pairs) differ only in the stages where
their inputs differ (load, register, prepare, write); this module holds what they share:

* :class:`StageClock` - times each stage for run.json and draws its progress bar;
* :func:`resolve_method_name` / :func:`build_method` - ``--method`` (and "auto") to a
  :class:`~medfuse.fusion.base.FusionMethod`;
* :func:`split_colour` / :func:`fuse_stage` - functional inputs are fused by their luma Y and
  recombined with their Cb/Cr;
* :func:`run_record` / :func:`write_record` - the run.json fields every job writes.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from medfuse.errors import InputError

from .options import FuseOptions

__all__ = [
    "StageClock",
    "resolve_method_name",
    "build_method",
    "split_colour",
    "fuse_stage",
    "run_record",
    "write_record",
    "versions",
    "auto_method",
]


class StageClock:
    """Times the stages of one job (for run.json) and draws their progress bars.

    Args:
        progress: draw tqdm bars on stderr.
        log: called with one-line messages (no patient identity).
    """

    def __init__(self, progress: bool, log: Callable[[str], None] | None) -> None:
        self.progress = progress
        self.log = log or (lambda s: None)
        self.times: dict[str, float] = {}
        self._t_all = time.perf_counter()

    def bar(self, desc: str, total: int) -> Any:
        """A tqdm progress bar for ``total`` steps of stage ``desc`` (disabled when quiet)."""
        from tqdm.auto import tqdm

        return tqdm(
            total=total,
            desc=f"{desc:<9}",
            unit="it",
            disable=not self.progress,
            leave=True,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block as stage ``name``."""
        t0 = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - t0, 4)

    def finish(self) -> dict[str, float]:
        """Record the total time since the clock started; the stage times."""
        self.times["total"] = round(time.perf_counter() - self._t_all, 4)
        return dict(self.times)


def resolve_method_name(opt: FuseOptions, task: str | None) -> str:
    """The method a job runs: ``opt.method``, "network" for "auto" with a weights file, or the
    shipped network / Laplacian pyramid that "auto" picks for ``task``.

    Raises:
        InputError: an unknown method, or ``weights`` for a method that takes none.
    """
    from medfuse.fusion.base import METHODS, list_methods
    from medfuse.fusion.network import NetworkFusion

    known = list_methods()
    if opt.method == "auto":
        name = "network" if opt.weights else auto_method(task)
    else:
        name = opt.method
    if name not in known:
        raise InputError(f"unknown fusion method '{name}' (known: auto, {', '.join(known)})")
    if opt.weights and not issubclass(METHODS[name], NetworkFusion):
        raise InputError(f"--weights is for network methods; '{name}' takes none")
    if opt.tile and not issubclass(METHODS[name], NetworkFusion):
        raise InputError(f"--tile is for network methods; '{name}' fuses whole slices")
    return name


def build_method(name: str, opt: FuseOptions, task: str | None, device: torch.device) -> Any:
    """The :class:`~medfuse.fusion.base.FusionMethod` ``name`` on ``device`` (a network gets
    ``task``, ``opt.weights``, the tiling options and the backend).

    Raises:
        WeightsError: a network without usable weights.
    """
    from medfuse.fusion.base import METHODS, get_method
    from medfuse.fusion.network import NetworkFusion

    extra: dict[str, Any] = {}
    if issubclass(METHODS[name], NetworkFusion):
        extra = {"task": task, "weights": opt.weights}
        if opt.tile is not None:
            extra["tile"] = opt.tile
        if opt.tile_overlap is not None:
            extra["tile_overlap"] = opt.tile_overlap
        if opt.net_backend != "eager":
            extra["backend"] = opt.net_backend
        if opt.gpu_precision == "fp32":
            extra["amp"] = False
    return get_method(name, device=device, **extra)


def auto_method(task: str | None) -> str:
    """The method ``--method auto`` picks for ``task``.

    A shipped network is picked only when its validation figures (``medfuse/weights/quality.json``,
    the model cards' table) beat every classical baseline on at least 4 of the 6 metrics of the
    ``paper`` profile (:func:`medfuse.nets.quality.auto_method`); otherwise the Laplacian pyramid,
    the best classical all-rounder on the validation split. ECFusion is tried before S3IMFusion.
    """
    from medfuse.nets.quality import auto_method as quality_auto_method

    return quality_auto_method(task)


def split_colour(
    x: torch.Tensor, functional: bool, palette: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The single-channel image a method fuses, and the chroma to put back.

    Args:
        x: (N, C, H, W) float32 in [0, 1], C = 1 (grey) or 3 (RGB).
        functional: colourise (grey) or keep (RGB) and split into BT.601 YCbCr.
        palette: DICOM palette for a grey functional input.

    Returns:
        ``(y, chroma)``: (N, 1, H, W) luma or grey, and (N, 2, H, W) Cb/Cr (None when not
        functional; an RGB anatomical input gives its luma).
    """
    from medfuse.transforms.colour import colourise, rgb_to_ycbcr

    if functional:
        rgb = x if x.shape[1] == 3 else colourise(x, palette)
        ycc = rgb_to_ycbcr(rgb)
        return ycc[:, :1].contiguous(), ycc[:, 1:]
    if x.shape[1] == 3:
        return rgb_to_ycbcr(x)[:, :1].contiguous(), None
    return x.contiguous(), None


def fuse_stage(
    method: Any,
    a: torch.Tensor,
    b: torch.Tensor,
    chroma: torch.Tensor | None,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse slice stacks in batches and recombine the chroma of a functional input.

    Args:
        method: a :class:`~medfuse.fusion.base.FusionMethod`.
        a, b: (N, 1, H, W) float32 in [0, 1].
        chroma: (N, 2, H, W) Cb/Cr of the functional input, or None.
        batch_size: slices per batch (None: from free memory).
        progress: called with the number of slices done after each batch.

    Returns:
        ``(fused_y, fused)``: (N, 1, H, W) fused luma and (N, C, H, W) output in [0, 1]
        (C = 3 when ``chroma`` is given).
    """
    from medfuse.fusion.slices import fuse_slices
    from medfuse.transforms.colour import ycbcr_to_rgb

    y = fuse_slices(method, a, b, batch_size=batch_size, progress=progress)
    if method.device.type == "cuda":
        torch.cuda.synchronize(method.device)
    fused = y if chroma is None else ycbcr_to_rgb(torch.cat([y, chroma], 1))
    return y, fused


def versions() -> dict[str, str]:
    """Versions of medfuse, Python and the libraries that shape an output (for run.json)."""
    import importlib.metadata as md

    from medfuse import __version__

    out = {"medfuse": __version__, "python": platform.python_version()}
    for pkg in (
        "torch",
        "monai",
        "SimpleITK",
        "highdicom",
        "pydicom",
        "nibabel",
        "numpy",
        "PyWavelets",
    ):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def run_record(
    command: str,
    inputs: dict[str, Any],
    task: str | None,
    method: Any,
    details: dict[str, Any],
    outputs: list[str],
    tmp: Path,
    opt: FuseOptions,
    clock: StageClock,
) -> dict[str, Any]:
    """The run.json record: the fields every job writes around the job's own.

    Args:
        command: "medfuse fuse" or "medfuse fuse (2D folders)".
        inputs: what the job read (placed after "created").
        task: the fusion task.
        method: the :class:`~medfuse.fusion.base.FusionMethod` that ran.
        details: how the job ran (device, registration, ...; placed after "method").
        outputs: written paths relative to the output folder, run.json last.
        tmp: the temporary output folder (its files are hashed).
        opt: the job's options (recorded without ``progress``).
        clock: the job's clock (finished here: its stage times and total).
    """
    from medfuse.io.checksums import output_hashes

    return {
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **inputs,
        "task": task,
        "method": method.info(),
        **details,
        "outputs": outputs,
        "output_sha256": output_hashes(tmp),
        "timings_s": clock.finish(),
        "versions": versions(),
        "options": {k: v for k, v in asdict(opt).items() if k != "progress"},
    }


def write_record(run: dict[str, Any], tmp: Path) -> None:
    """Write ``run`` as ``tmp/run.json``."""
    (tmp / "run.json").write_text(json.dumps(run, indent=2, default=str) + "\n")
