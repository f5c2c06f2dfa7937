"""Stacking DICOM frames into a volume: decode the pixel data, rescale, place each plane at k.

Also :func:`read_dicom_file`, one DICOM file (single- or multi-frame) as a volume.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from medfuse.errors import InputError

from .dicom_frames import _Frame, _frames_of, _sort_and_check
from .dicom_headers import _check_image, _meta_from, _one_line, read_header
from .geometry import dicom_affine

__all__ = ["read_dicom_file"]


def _decode(ds: Any, path: Path) -> np.ndarray:
    """Decode pixel data to an array (frames, rows, cols[, samples]) or (rows, cols[, samples])."""
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise InputError(f"{path}: no pixel data (file truncated or not an image)")
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None:
        raise InputError(f"{path}: missing Transfer Syntax UID, cannot decode pixel data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ds.pixel_array
        except Exception as exc:
            text = _one_line(exc)
            if "less than expected" in text or "truncat" in text.lower():
                why = "truncated pixel data"
            elif ts.is_compressed:
                why = f"cannot decode {ts.name} pixel data"
            else:
                why = "cannot read pixel data"
            raise InputError(f"{path}: {why} ({text})") from exc


def _stack(
    frames: list[_Frame], label: str, decoded: dict[Path, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Decode and stack sorted frames: returns ((C, I, J, K) float32, RAS affine, headers)."""
    frames, step = _sort_and_check(frames, label)
    rows, cols, samples = frames[0].shape
    vol = np.empty((samples, cols, rows, len(frames)), dtype=np.float32)
    by_file: dict[Path, list[tuple[int, _Frame]]] = {}
    for k, f in enumerate(frames):
        by_file.setdefault(f.path, []).append((k, f))
    headers: dict[Path, Any] = {}
    for path, items in by_file.items():
        ds = items[0][1].header
        if decoded is not None and path in decoded:
            arr = decoded[path]
        else:
            if not any(t in ds for t in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
                ds = read_header(path, stop_before_pixels=False)
            arr = _decode(ds, path)
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        if n_frames > 1 and arr.ndim == (3 if samples == 1 else 4) and arr.shape[0] != n_frames:
            raise InputError(f"{path}: decoded {arr.shape[0]} frames, header says {n_frames}")
        for k, f in items:
            plane = arr[f.index] if (n_frames > 1) else arr
            plane = np.asarray(plane, dtype=np.float32)
            if plane.shape[:2] != (rows, cols):
                raise InputError(f"{path}: decoded size {plane.shape} does not match Rows/Columns")
            if f.slope != 1.0 or f.intercept != 0.0:
                plane = plane * np.float32(f.slope) + np.float32(f.intercept)
            if samples == 1:
                vol[0, :, :, k] = plane.T
            else:
                vol[:, :, :, k] = np.transpose(plane, (2, 1, 0))
        for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            if tag in ds:
                delattr(ds, tag)
        headers[path] = ds
    affine = dicom_affine(frames[0].orientation, frames[0].position, frames[0].pixel_spacing, step)
    ordered: list[Any] = []
    seen: set[Path] = set()
    for f in frames:  # one header per source instance, in slice order
        if f.path not in seen:
            seen.add(f.path)
            ordered.append(headers[f.path])
    return vol, affine, ordered


def read_dicom_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read one DICOM file (single- or multi-frame) as a volume.

    Args:
        path: DICOM file.

    Returns:
        ``(array, affine, meta)``: array (C, I, J, K) float32 with I = columns, J = rows,
        K = slices/frames sorted along the normal; affine (4, 4) voxel -> RAS; meta with modality,
        UIDs, description and ``dicom_datasets`` (the header without pixel data).

    Raises:
        InputError: not DICOM, not an image, undecodable or truncated pixel data.
        GeometryError: no or inconsistent geometry.
    """
    p = Path(path)
    ds = read_header(p, stop_before_pixels=False)
    _check_image(ds, p)
    decoded = {p: _decode(ds, p)}  # undecodable data is reported before missing geometry
    frames = _frames_of(ds, p)
    vol, affine, headers = _stack(frames, str(p), decoded)
    meta = _meta_from(ds)
    meta["dicom_datasets"] = headers
    return vol, affine, meta
