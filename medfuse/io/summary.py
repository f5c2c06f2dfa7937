"""Summaries of loaded volumes (what ``medfuse info`` prints), without patient identity."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from medfuse.errors import MedfuseError

from .dicom import find_series
from .geometry import orientation_code, voxel_spacing
from .volume import detect_format, read_volume

__all__ = ["volume_summary", "inspect_path", "format_summary"]


def volume_summary(vol: Any) -> dict[str, Any]:
    """JSON-ready facts about a volume (no patient name or ID).

    Args:
        vol: MetaTensor (C, I, J, K) with a RAS affine from :func:`load_volume`, or the
            ``(array, affine, meta)`` tuple of :func:`read_volume`.

    Returns:
        dict with "path", "format", "modality", "shape" [C, I, J, K], "spacing" [mm x3],
        "orientation" (e.g. "LPS"), "origin" (RAS mm of voxel (0, 0, 0)), "affine" (4x4 RAS),
        "frame_of_reference_uid", "study_instance_uid", "series_instance_uid",
        "series_description", "n_instances", "series_count".
    """
    if isinstance(vol, tuple):
        arr, aff, meta = vol
        shape = arr.shape
    else:
        aff, meta, shape = vol.affine.detach().cpu().numpy(), vol.meta, vol.shape
    aff = np.asarray(aff, dtype=np.float64)
    return {
        "path": str(meta.get("source_path", "")),
        "format": meta.get("source_format", ""),
        "modality": meta.get("modality", ""),
        "shape": [int(v) for v in shape],
        "spacing": [round(v, 6) for v in voxel_spacing(aff)],
        "orientation": orientation_code(aff),
        "origin": [round(float(v), 4) for v in aff[:3, 3]],
        "affine": [[round(float(v), 6) for v in row] for row in aff],
        "frame_of_reference_uid": meta.get("frame_of_reference_uid"),
        "study_instance_uid": meta.get("study_instance_uid", ""),
        "series_instance_uid": meta.get("series_instance_uid", ""),
        "series_description": meta.get("series_description", ""),
        "n_instances": len(meta.get("dicom_datasets", []) or []),
        "series_count": int(meta.get("series_count", 1)),
    }


def inspect_path(path: str | os.PathLike, series_uid: str | None = None) -> list[dict[str, Any]]:
    """Load and summarise every series at ``path`` (one entry per series of a folder).

    A folder holding several series gives one summary per series (each loaded, so undecodable
    data is reported); an error while loading one series becomes an entry with "error" and
    "exit_code" instead of stopping the others.

    Args:
        path: anything :func:`read_volume` accepts.
        series_uid: restrict a folder to this series.

    Returns:
        list of :func:`volume_summary` dicts (or ``{"path", "series_instance_uid", "error",
        "exit_code"}`` for a series that failed).

    Raises:
        MedfuseError: the path itself cannot be read (missing, not an image, no series).
    """
    p = Path(path)
    if detect_format(p) != "dicom-series" or series_uid is not None:
        return [volume_summary(read_volume(p, series_uid=series_uid))]
    series = find_series(p)
    if len(series) <= 1:
        return [volume_summary(read_volume(p))]
    out = []
    for info in series:
        try:
            out.append(volume_summary(read_volume(p, series_uid=info.series_instance_uid)))
        except MedfuseError as exc:
            out.append(
                {
                    "path": str(p),
                    "series_instance_uid": info.series_instance_uid,
                    "error": str(exc),
                    "exit_code": exc.exit_code,
                }
            )
    return out


def format_summary(s: dict[str, Any]) -> str:
    """Human-readable multi-line text of one :func:`volume_summary` dict."""
    if "error" in s:
        return f"{s['path']} series {s.get('series_instance_uid', '')}\n  error: {s['error']}"
    c, i, j, k = s["shape"]
    sp = " x ".join(f"{v:.4g}" for v in s["spacing"])
    origin = ", ".join(f"{v:.2f}" for v in s["origin"])
    lines = [
        s["path"],
        f"  format:             {s['format']}",
        f"  modality:           {s['modality'] or '(unknown)'}",
        f"  shape (C,I,J,K):    {c} x {i} x {j} x {k}",
        f"  spacing (mm):       {sp}",
        f"  orientation:        {s['orientation']}",
        f"  origin (RAS mm):    ({origin})",
        f"  frame of reference: {s['frame_of_reference_uid'] or '(none)'}",
        f"  series:             {s['series_description'] or '(no description)'}"
        + (f" [{s['series_instance_uid']}]" if s["series_instance_uid"] else ""),
        f"  series found:       {s['series_count']}",
    ]
    return "\n".join(lines)
