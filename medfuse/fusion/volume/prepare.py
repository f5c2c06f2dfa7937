"""The prepare stage of the volume job: what the fusion method sees.

Windows each input on its own grid, brings the moving one onto the reference grid in physical
space (the registration as a pre-affine), cuts slices along the chosen axis and splits a
functional input into the luma the method fuses and the chroma put back afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..options import FuseOptions, parse_window
from ..stages import split_colour
from .load import Inputs
from .register import Registered, mi_report

__all__ = ["Prepared", "prepare_stage", "window_inputs", "cut_on_grid"]


@dataclass
class Prepared:
    """The prepare stage's result: what the method fuses.

    Attributes:
        luma: per input (a, b): (N, 1, H, W) float32 in [0, 1] on the reference grid.
        chroma: (N, 2, H, W) Cb/Cr of the functional input, or None.
        grid: the reference input's slices (MetaTensor (N, C, H, W)) carrying the slice geometry
            (``meta["slice_affine"]``) the writers need.
        slices: per input (a, b): the windowed slices (MetaTensor (N, C, H, W) in [0, 1]) on the
            reference grid, before the luma/chroma split (the review shows them).
        windows: per input, the window applied (run.json).
        mutual_information: MI (nats) before/after registration, None without registration.
    """

    luma: list[torch.Tensor]
    chroma: torch.Tensor | None
    grid: Any
    windows: list[dict[str, Any]]
    mutual_information: dict[str, float] | None
    slices: list[Any]


def window_inputs(
    vols: Sequence[Any], windows: Sequence[Any], functional: Sequence[bool]
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Window each input on its own grid.

    Args:
        vols: ``[a, b]`` (C, I, J, K) MetaTensors (:func:`medfuse.io.load_volume`).
        windows: ``[a, b]`` :class:`~medfuse.transforms.Window` transforms.
        functional: ``[a, b]`` colourised flags (an RGB anatomical input is reduced to its luma;
            an RGB functional input is scaled to [0, 1] as it is).

    Returns:
        ``(windowed, applied)``: ``[a, b]`` MetaTensors in [0, 1], and the window applied to
        each (run.json).
    """
    from medfuse.transforms.colour import rgb_to_ycbcr

    applied: list[dict[str, Any]] = []
    windowed = []
    for n, v in enumerate(vols):
        x = v
        if x.shape[0] == 3 and not functional[n]:  # RGB anatomical input: use its luma
            x = rgb_to_ycbcr(x, dim=0)[:1]
        if x.shape[0] == 3:  # an already coloured functional input: window each channel as is
            lo, hi = float(x.min()), float(x.max())
            y = (x - lo) / max(hi - lo, 1e-6)
            y.meta["window"] = {"preset": "rgb range", "lower": lo, "upper": hi}
        else:
            y = windows[n](x)
        applied.append(dict(y.meta.get("window", {})))
        windowed.append(y)
    return windowed, applied


def cut_on_grid(
    windowed: Sequence[Any],
    functional: Sequence[bool],
    reference: int,
    matrix: np.ndarray | None,
    axis: str | int,
    palette: str,
) -> tuple[list[Any], list[torch.Tensor], torch.Tensor | None]:
    """Resample the moving input onto the reference grid, cut slices, split off the chroma.

    Args:
        windowed: ``[a, b]`` windowed MetaTensors (:func:`window_inputs`).
        functional: ``[a, b]`` colourised flags.
        reference: 0 or 1, whose grid the result takes.
        matrix: (4, 4) RAS moving -> reference registration matrix, None for none.
        axis: slice axis ("axial", "coronal", "sagittal", 0, 1, 2).
        palette: DICOM palette of a grey functional input.

    Returns:
        ``(slices, luma, chroma)``: ``[a, b]`` (N, C, H, W) MetaTensors with the slice geometry
        in their meta; ``[a, b]`` (N, 1, H, W) luma in [0, 1]; (N, 2, H, W) Cb/Cr or None.
    """
    from medfuse.transforms import ExtractSlices, ResampleToReference

    ref_w, mov_w = windowed[reference], windowed[1 - reference]
    moved = ResampleToReference()(mov_w, ref_w, pre_affine=matrix)
    on_grid = [ref_w, moved] if reference == 0 else [moved, ref_w]
    cut = ExtractSlices(axis)
    sl = [cut(v) for v in on_grid]
    luma: list[torch.Tensor] = []
    chroma = None
    for n in range(2):
        y, c = split_colour(sl[n].as_tensor(), functional[n], palette)
        luma.append(y)
        chroma = c if c is not None else chroma
    return sl, luma, chroma


def prepare_stage(inp: Inputs, reg: Registered, opt: FuseOptions) -> Prepared:
    """Window each input on its own grid, resample the moving one onto the reference grid, cut
    slices along ``opt.axis`` and split a functional input into luma and chroma."""
    from medfuse.transforms.colour import rgb_to_ycbcr

    windows = [parse_window(opt.window_a), parse_window(opt.window_b)]
    windowed, applied = window_inputs(inp.vols, windows, inp.functional)
    ref_w, mov_w = windowed[inp.ref], windowed[inp.mov]
    mi = None
    if reg.matrix is not None:
        mi = mi_report(
            ref_w[:1] if ref_w.shape[0] == 1 else rgb_to_ycbcr(ref_w, 0)[:1],
            mov_w[:1] if mov_w.shape[0] == 1 else rgb_to_ycbcr(mov_w, 0)[:1],
            reg.matrix,
        )
    sl, luma, chroma = cut_on_grid(
        windowed, inp.functional, inp.ref, reg.matrix, opt.axis, opt.palette
    )
    return Prepared(
        luma=luma,
        chroma=chroma,
        grid=sl[inp.ref],
        windows=applied,
        mutual_information=mi,
        slices=sl,
    )
