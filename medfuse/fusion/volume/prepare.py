"""The prepare stage of the volume job: what the fusion method sees.

Windows each input on its own grid, brings the moving one onto the reference grid in physical
space (the registration as a pre-affine), cuts slices along the chosen axis and splits a
functional input into the luma the method fuses and the chroma put back afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..options import FuseOptions, parse_window
from ..stages import split_colour
from .load import Inputs
from .register import Registered, mi_report

__all__ = ["Prepared", "prepare_stage"]


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


def prepare_stage(inp: Inputs, reg: Registered, opt: FuseOptions) -> Prepared:
    """Window each input on its own grid, resample the moving one onto the reference grid, cut
    slices along ``opt.axis`` and split a functional input into luma and chroma."""
    from medfuse.transforms import ExtractSlices, ResampleToReference
    from medfuse.transforms.colour import rgb_to_ycbcr

    windows = [parse_window(opt.window_a), parse_window(opt.window_b)]
    applied: list[dict[str, Any]] = [{}, {}]
    windowed = []
    for n, v in enumerate(inp.vols):
        x = v
        if x.shape[0] == 3 and not inp.functional[n]:  # RGB anatomical input: use its luma
            x = rgb_to_ycbcr(x, dim=0)[:1]
        if x.shape[0] == 3:  # an already coloured functional input: window each channel as is
            lo, hi = float(x.min()), float(x.max())
            y = (x - lo) / max(hi - lo, 1e-6)
            y.meta["window"] = {"preset": "rgb range", "lower": lo, "upper": hi}
        else:
            y = windows[n](x)
        applied[n] = dict(y.meta.get("window", {}))
        windowed.append(y)
    ref_w, mov_w = windowed[inp.ref], windowed[inp.mov]
    mi = None
    if reg.matrix is not None:
        mi = mi_report(
            ref_w[:1] if ref_w.shape[0] == 1 else rgb_to_ycbcr(ref_w, 0)[:1],
            mov_w[:1] if mov_w.shape[0] == 1 else rgb_to_ycbcr(mov_w, 0)[:1],
            reg.matrix,
        )
    moved = ResampleToReference()(mov_w, ref_w, pre_affine=reg.matrix)
    on_grid: list[Any] = [None, None]
    on_grid[inp.ref], on_grid[inp.mov] = ref_w, moved
    cut = ExtractSlices(opt.axis)
    sl = [cut(v) for v in on_grid]
    luma: list[torch.Tensor] = []
    chroma = None
    for n in range(2):
        y, c = split_colour(sl[n].as_tensor(), inp.functional[n], opt.palette)
        luma.append(y)
        chroma = c if c is not None else chroma
    return Prepared(
        luma=luma,
        chroma=chroma,
        grid=sl[inp.ref],
        windows=applied,
        mutual_information=mi,
        slices=sl,
    )
