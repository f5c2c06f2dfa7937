"""The two sources of a fused volume, on the fused grid, as ``medfuse fuse`` fed them to the method.

:func:`slices_on_grid` runs the prepare stage of :func:`~medfuse.fusion.pipeline.fuse_volumes`
(:mod:`medfuse.fusion.volume.prepare`: window each input on its own grid, resample the moving one
onto the reference grid in physical space with the registration matrix, cut slices, colourise the
functional input and take its luma) on given inputs; :func:`load_fuse_output` reads a
``medfuse fuse`` output folder back: the fused NIfTI, and the sources re-read from the paths in
its run.json (or given), windowed with the same window specs and resampled with the folder's
``transform.tfm``. No registration is run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medfuse.errors import GeometryError, InputError

__all__ = ["OnGrid", "FusedOutput", "slices_on_grid", "load_fuse_output"]


@dataclass
class OnGrid:
    """Both inputs cut into slices on the reference grid.

    Attributes:
        windowed: ``[a, b]`` (N, C, H, W) MetaTensors in [0, 1] (C = 1, or 3 for an RGB input)
            with the slice geometry in their meta (``slice_affine``, ``slice_positions``).
        luma: ``[a, b]`` (N, 1, H, W) float tensors in [0, 1]: what the 2D method fuses (the
            functional input's BT.601 Y after colourising).
        chroma: (N, 2, H, W) Cb/Cr of the functional input, or None.
        windows: ``[a, b]`` ``{"preset", "lower", "upper"}`` per input.
    """

    windowed: list[Any]
    luma: list[torch.Tensor]
    chroma: torch.Tensor | None
    windows: list[dict[str, Any]]


def slices_on_grid(
    vols: Sequence[Any],
    windows: Sequence[Any],
    functional: Sequence[bool],
    reference: int,
    matrix: np.ndarray | None,
    axis: str | int = "axial",
    palette: str = "PET",
) -> OnGrid:
    """The prepare stage of ``medfuse fuse``.

    Args:
        vols: ``[a, b]`` (C, I, J, K) MetaTensors as :func:`medfuse.io.load_volume` reads them.
        windows: ``[a, b]`` :class:`~medfuse.transforms.Window` transforms.
        functional: ``[a, b]`` whether each input is colourised as the functional image.
        reference: 0 or 1, whose grid the result takes.
        matrix: (4, 4) RAS moving -> reference registration matrix, None for none.
        axis: slice axis ("axial", "coronal", "sagittal", 0, 1, 2).
        palette: DICOM palette of the functional input.

    Returns:
        :class:`OnGrid`.
    """
    from medfuse.fusion.volume.prepare import cut_on_grid, window_inputs

    windowed, wins = window_inputs(vols, windows, functional)
    sl, luma, chroma = cut_on_grid(windowed, functional, reference, matrix, axis, palette)
    return OnGrid(windowed=sl, luma=luma, chroma=chroma, windows=wins)


@dataclass
class FusedOutput:
    """A ``medfuse fuse`` output read back (see :func:`load_fuse_output`).

    Attributes:
        fused: (N, C, H, W) uint8 fused slices (C = 3 for colour), cut along the run's axis.
        sources: :class:`OnGrid` of the two inputs on the fused grid.
        slice_affine: (4, 4) (h, w, n) -> RAS mm of the slices.
        run: the run.json record ({} when there was none).
        source_paths: ``(a, b)`` paths the sources were read from.
        functional: ``(a, b)`` colourised flags.
        palette: palette of the functional input.
        notes: remarks (windows that differ from the recorded ones, defaults used).
    """

    fused: np.ndarray
    sources: OnGrid
    slice_affine: np.ndarray
    run: dict[str, Any]
    source_paths: tuple[str, str]
    functional: tuple[bool, bool]
    palette: str
    notes: list[str] = field(default_factory=list)


def _fused_path(path: Path) -> tuple[Path, Path | None]:
    """(fused NIfTI, run.json or None) of a fuse output folder or a fused volume file."""
    if path.is_dir():
        nii = path / "fused.nii.gz"
        if not nii.is_file():
            raise InputError(
                f"{path}: no fused.nii.gz (not a medfuse fuse output with --format "
                "nifti; 2D-folder outputs are scored with --fused)"
            )
        run = path / "run.json"
        return nii, run if run.is_file() else None
    if not path.is_file():
        raise InputError(f"{path}: no such file or folder")
    run = path.parent / "run.json"
    return path, run if run.is_file() else None


def _source(
    run: dict[str, Any], n: int, given: str | os.PathLike | None, run_path: Path
) -> str:
    if given is not None:
        if not Path(given).exists():
            raise InputError(f"{given}: no such file or folder")
        return str(given)
    if not run:
        raise InputError(
            f"{run_path}: no run.json beside the fused volume; give the sources with --a and --b"
        )
    recorded = run.get("inputs", [{}, {}])[n].get("path")
    for cand in (Path(recorded), run_path.parent.parent / recorded) if recorded else ():
        if cand.exists():
            return str(cand)
    raise InputError(f"{run_path}: source {'ab'[n]} {recorded} not found; give it with --{'ab'[n]}")


def load_fuse_output(
    path: str | os.PathLike,
    a: str | os.PathLike | None = None,
    b: str | os.PathLike | None = None,
) -> FusedOutput:
    """Read a fused volume and bring its two sources onto its grid as ``medfuse fuse`` did.

    With a run.json beside the fused volume (a ``medfuse fuse`` output folder), its record gives
    the source paths (overridden by ``a``/``b``), series, window specs, functional flags, palette,
    reference grid and slice axis, and ``transform.tfm`` the registration; nothing is registered
    again. Without one, ``a`` and ``b`` are needed and ``fuse``'s defaults apply with no
    registration (the modality windows, reference = the fused grid).

    Args:
        path: a ``medfuse fuse`` output folder, or a fused volume file (NIfTI, ...).
        a: source A path (default: run.json's).
        b: source B path (default: run.json's).

    Returns:
        :class:`FusedOutput`.

    Raises:
        InputError: missing or unreadable files.
        GeometryError: the fused volume is not on the reference input's grid.
    """
    from medfuse.fusion.pipeline import FUNCTIONAL_MODALITIES, parse_window
    from medfuse.io import load_volume
    from medfuse.registration import read_transform

    nii, run_file = _fused_path(Path(path))
    run = json.loads(run_file.read_text()) if run_file else {}
    if run and not str(run.get("command", "")).startswith("medfuse fuse"):
        raise InputError(f"{run_file}: not a medfuse fuse run.json")
    paths = (_source(run, 0, a, run_file or nii), _source(run, 1, b, run_file or nii))
    opts = run.get("options", {})
    vols = [load_volume(p, series_uid=opts.get(f"series_{ab}")) for p, ab in zip(paths, "ab")]
    fused_vol = load_volume(nii)
    notes: list[str] = []
    if run:
        functional = (bool(run["functional"]["a"]), bool(run["functional"]["b"]))
        ri = "ab".index(run["reference_grid"])
        palette = run.get("palette") or opts.get("palette") or "PET"
        axis = run.get("axis", "axial")
        matrix = None
        if run.get("registration", {}).get("kind", "none") != "none":
            assert run_file is not None  # run came from it
            tfm = run_file.parent / "transform.tfm"
            matrix = read_transform(tfm).matrix
        specs = (opts.get("window_a"), opts.get("window_b"))
    else:
        mods = [str(v.meta.get("modality") or "").upper() for v in vols]
        functional = (mods[0] in FUNCTIONAL_MODALITIES, mods[1] in FUNCTIONAL_MODALITIES)
        ri, palette, axis, matrix, specs = (
            (0 if functional[1] else 1),
            "PET",
            "axial",
            None,
            (None, None),
        )
        notes.append(
            f"{nii}: no run.json; sources windowed with the modality presets, not registered"
        )
    ref_aff = vols[ri].affine.numpy()
    if tuple(fused_vol.shape[1:]) != tuple(vols[ri].shape[1:]) or not np.allclose(
        fused_vol.affine.numpy(), ref_aff, atol=1e-3
    ):
        raise GeometryError(
            f"{nii}: voxel grid {tuple(fused_vol.shape[1:])} is not that of its "
            f"reference input {paths[ri]} {tuple(vols[ri].shape[1:])}"
        )
    src = slices_on_grid(
        vols, [parse_window(s) for s in specs], functional, ri, matrix, axis, palette
    )
    for n, ab in enumerate("ab"):
        rec = run.get("windows", {}).get(ab) or {}
        got = src.windows[n]
        if rec and any(
            abs(float(rec[k]) - float(got.get(k, np.nan))) > 1e-3 * max(1.0, abs(float(rec[k])))
            for k in ("lower", "upper")
        ):
            notes.append(
                f"{paths[n]}: window {got.get('lower'):g}..{got.get('upper'):g} differs "
                f"from the recorded {rec['lower']:g}..{rec['upper']:g}"
            )
    from medfuse.transforms import ExtractSlices

    cut = ExtractSlices(axis)(fused_vol)
    fused = cut.as_tensor().round().clamp(0, 255).to(torch.uint8).numpy()
    return FusedOutput(
        fused=fused,
        sources=src,
        slice_affine=np.asarray(cut.meta["slice_affine"]),
        run=run,
        source_paths=paths,
        functional=functional,
        palette=str(palette),
        notes=notes,
    )
