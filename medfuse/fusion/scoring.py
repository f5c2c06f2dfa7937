"""Score fused volumes (``medfuse fuse`` outputs) against their sources, slice by slice.

For each fused volume, :func:`medfuse.fusion.sources.load_fuse_output` brings its two sources
onto the fused grid as ``fuse`` did (the window specs, functional flags and transform from its
run.json; no new registration). Every slice where both sources have content is scored with the
2D metrics (A as the luma the method fused, in 0..255), and the whole volume with the
inter-slice excess (:mod:`medfuse.metrics.consistency`). The result has the shape of
:func:`medfuse.metrics.evaluate.evaluate_folders`'s, so the same tables, CSV and plots follow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medfuse.errors import InputError
from medfuse.metrics.consistency import interslice_profile
from medfuse.metrics.evaluate import (
    EvaluationResult,
    check_method_names,
    check_results_dir,
    write_results,
)
from medfuse.metrics.profiles import FusionMetrics, aggregate

__all__ = ["VolumeScore", "score_fused_volume", "evaluate_fuse_output", "evaluate_volumes"]


@dataclass
class VolumeScore:
    """One fused volume scored.

    Attributes:
        rows: per scored slice ``{"image": "k037 S 12.5 mm", <metric>: value}``.
        summary: ``{metric: {"mean", "median", "std", "min", "max", "n"}}`` over the slices.
        consistency: the inter-slice excess (ISE) of the whole volume.
        per_gap: (N-1,) ISE of each neighbouring-slice gap.
        gap_positions_mm: (N-1,) signed position of each gap's midpoint along the slice normal.
        n_scored: slices scored; n_slices: slices in the volume.
        notes: remarks (skipped slices, windows).
        sources: what the volume was scored against.
    """

    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, float]]
    consistency: float
    per_gap: np.ndarray
    gap_positions_mm: np.ndarray
    n_scored: int
    n_slices: int
    notes: list[str]
    sources: dict[str, Any]


def score_fused_volume(
    path: str | os.PathLike,
    fm: FusionMetrics,
    a: str | os.PathLike | None = None,
    b: str | os.PathLike | None = None,
    progress: Any = None,
) -> VolumeScore:
    """Score one fused volume (a ``medfuse fuse`` output folder or its fused NIfTI).

    Args:
        path: the output folder, or a fused volume with a run.json beside it (else give a, b).
        fm: the :class:`FusionMetrics` scorer.
        a, b: source paths overriding the run.json's.
        progress: called with 1 after each slice (e.g. a tqdm bar's ``update``).

    Returns:
        :class:`VolumeScore`.
    """
    from medfuse.fusion.review import slice_position
    from medfuse.fusion.sources import load_fuse_output

    out = load_fuse_output(path, a, b)
    fused = out.fused  # (N, C, H, W) uint8
    la, lb = (x.numpy()[:, 0] * 255.0 for x in out.sources.luma)  # (N, H, W) 0..255
    n, h, w = la.shape
    rows, skipped = [], 0
    for k in range(n):
        if np.ptp(la[k]) == 0 or np.ptp(lb[k]) == 0:
            skipped += 1
        else:
            f = fused[k, 0] if fused.shape[1] == 1 else fused[k].transpose(1, 2, 0)
            letter, mm = slice_position(out.slice_affine, (h, w), k)
            try:
                rows.append({"image": f"k{k:03d} {letter} {mm:.1f} mm", **fm(f, la[k], lb[k])})
            except ValueError as exc:
                raise InputError(f"{path}: slice {k}: {exc}") from None
        if progress is not None:
            progress(1)
    notes = list(out.notes)
    if skipped:
        notes.append(f"{path}: {skipped} of {n} slices skipped (a source slice is blank)")
    if not rows:
        raise InputError(f"{path}: nothing to score: every slice has a blank source")
    prof = interslice_profile(
        fused, out.sources.luma[0], out.sources.luma[1], scales=(1.0, 255.0, 255.0)
    )
    aff = out.slice_affine
    normal = np.cross(aff[:3, 0], aff[:3, 1])
    axis = int(np.argmax(np.abs(normal)))
    centres = [aff @ np.array([(h - 1) / 2, (w - 1) / 2, k + 0.5, 1.0]) for k in range(n - 1)]
    agg = aggregate(rows)
    run = out.run
    sources = {
        "a": out.source_paths[0],
        "b": out.source_paths[1],
        "windows": {"a": out.sources.windows[0], "b": out.sources.windows[1]},
        "functional": {"a": out.functional[0], "b": out.functional[1]},
        "registration": (run.get("registration") or {}).get("kind", "none"),
        "method": (run.get("method") or {}).get("name"),
        "run_json_interslice_excess": run.get("interslice_excess"),
    }
    return VolumeScore(
        rows=rows,
        summary={m: agg[m] for m in fm.metrics},
        consistency=prof.value,
        per_gap=prof.per_gap(),
        gap_positions_mm=np.array([c[axis] for c in centres]),
        n_scored=len(rows),
        n_slices=n,
        notes=notes,
        sources=sources,
    )


def evaluate_fuse_output(
    path: str | os.PathLike,
    profile: str = "vifb",
    metrics: Sequence[str] | str | None = None,
    a: str | os.PathLike | None = None,
    b: str | os.PathLike | None = None,
) -> VolumeScore:
    """Score one ``medfuse fuse`` output folder (see :func:`score_fused_volume`)."""
    return score_fused_volume(path, FusionMetrics(profile=profile, metrics=metrics), a, b)


def evaluate_volumes(
    volumes: Mapping[str, str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    a: str | os.PathLike | None = None,
    b: str | os.PathLike | None = None,
    profile: str = "vifb",
    metrics: Sequence[str] | str | None = None,
    overwrite: bool = False,
    plots: bool = True,
    progress: bool | None = None,
) -> EvaluationResult:
    """Score fused volumes (one table column each) and write the tables and plots.

    Args:
        volumes: ``{method name: fuse output folder or fused volume}``, in column order.
        out_dir: output folder (written atomically); ``None`` computes without writing.
        a, b: source paths for every volume (default: each run.json's).
        profile: ``"vifb"``, ``"cddfuse"`` or ``"paper"``.
        metrics: 2D metric names (default: the profile's defaults).
        overwrite: replace existing results in ``out_dir``.
        plots: one box plot per metric and ``interslice.png``.
        progress: a progress bar (``None``: only on a terminal).

    Returns:
        :class:`~medfuse.metrics.evaluate.EvaluationResult` with ``volume`` (the ISE per method),
        ``interslice`` (per-gap profiles) and ``sources`` filled; rows are named
        ``k<slice> <position>``.

    Raises:
        ValueError: unknown profile or metric, no volume, bad method name.
        InputError, GeometryError: unreadable inputs, sources not found, grids that differ.
        OutputError: the output folder cannot be written, or holds results and not ``overwrite``.
    """
    from tqdm import tqdm

    check_method_names(volumes, "fused volume")
    fm = FusionMetrics(profile=profile, metrics=metrics)
    out = check_results_dir(out_dir, overwrite)
    rows: list[dict[str, object]] = []
    result = EvaluationResult(profile, fm.metrics, tuple(volumes), rows, {})
    bar = tqdm(desc="evaluate", unit="slice", disable=None if progress is None else not progress)
    for method, path in volumes.items():
        score = score_fused_volume(path, fm, a, b, progress=bar.update)
        rows += [{"method": method, **r} for r in score.rows]
        result.summary[method] = score.summary
        result.volume[method] = {"ISE": score.consistency}
        result.interslice[method] = {
            "positions_mm": [round(float(v), 3) for v in score.gap_positions_mm],
            "per_gap": [float(v) for v in score.per_gap],
        }
        result.sources[method] = {
            "path": str(path),
            "slices": score.n_slices,
            "scored": score.n_scored,
            **score.sources,
        }
        result.notes += score.notes
    bar.close()
    if out is not None:
        write_results(out, result, plots)
    return result
