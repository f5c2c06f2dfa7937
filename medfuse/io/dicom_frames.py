"""DICOM frame geometry: one 2D plane per frame, sorted and checked along the slice normal.

A frame comes from a single-frame file or one frame of a multi-frame object (enhanced functional
groups, RT Dose GridFrameOffsetVector). See :mod:`medfuse.io.dicom` for the geometry rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medfuse.errors import GeometryError

from .dicom_headers import _check_image, _one_line

__all__ = ["SPACING_TOLERANCE"]

#: relative tolerance on slice gaps (fraction of the mean gap); absolute floor in mm is 0.01.
SPACING_TOLERANCE: float = 0.01
_ABS_TOL_MM = 0.01


@dataclass
class _Frame:
    path: Path
    header: Any  # pydicom Dataset (no pixel data)
    index: int | None  # frame index in a multi-frame object, None for a single-frame file
    position: np.ndarray  # (3,) LPS mm
    orientation: np.ndarray  # (6,)
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing)
    slope: float
    intercept: float
    shape: tuple[int, int, int]  # rows, columns, samples


def _floats(value: Any, n: int, what: str, path: Path) -> np.ndarray:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except Exception as exc:
        raise GeometryError(f"{path}: invalid {what} ({_one_line(exc)})") from exc
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise GeometryError(f"{path}: invalid {what} {list(value)!r}")
    return arr


def _fg_item(groups: Any, keyword: str) -> Any:
    """First item of ``keyword`` sequence inside a functional-groups item, or None."""
    if groups is None or keyword not in groups:
        return None
    seq = groups.get(keyword)
    return seq[0] if seq else None


def _frames_of(ds: Any, path: Path) -> list[_Frame]:
    """Describe every frame of a dataset with its own geometry."""
    shape = _check_image(ds, path)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    multi = "NumberOfFrames" in ds
    shared = (
        ds.SharedFunctionalGroupsSequence[0] if ds.get("SharedFunctionalGroupsSequence") else None
    )
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")

    if per_frame:  # enhanced multi-frame: functional groups
        if len(per_frame) != n_frames:
            raise GeometryError(
                f"{path}: {len(per_frame)} per-frame functional groups for {n_frames} frames"
            )
        frames = []
        for f, pf in enumerate(per_frame):
            pos = _fg_item(pf, "PlanePositionSequence")
            ori = _fg_item(pf, "PlaneOrientationSequence") or _fg_item(
                shared, "PlaneOrientationSequence"
            )
            meas = _fg_item(pf, "PixelMeasuresSequence") or _fg_item(
                shared, "PixelMeasuresSequence"
            )
            pvt = _fg_item(pf, "PixelValueTransformationSequence") or _fg_item(
                shared, "PixelValueTransformationSequence"
            )
            if (
                pos is None
                or ori is None
                or "ImagePositionPatient" not in pos
                or ("ImageOrientationPatient" not in ori)
            ):
                raise GeometryError(
                    f"{path}: no geometry (frame {f + 1} lacks PlanePosition/PlaneOrientation)"
                )
            if meas is None or "PixelSpacing" not in meas:
                raise GeometryError(f"{path}: no geometry (frame {f + 1} lacks PixelSpacing)")
            src = pvt if pvt is not None else ds
            frames.append(
                _Frame(
                    path,
                    ds,
                    f,
                    _floats(pos.ImagePositionPatient, 3, "ImagePositionPatient", path),
                    _floats(ori.ImageOrientationPatient, 6, "ImageOrientationPatient", path),
                    tuple(_floats(meas.PixelSpacing, 2, "PixelSpacing", path)),
                    float(src.get("RescaleSlope", 1.0) or 1.0),
                    float(src.get("RescaleIntercept", 0.0) or 0.0),
                    shape,
                )
            )
        return frames

    if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
        kind = getattr(ds.get("SOPClassUID"), "name", "") or "unknown SOP class"
        extra = ", no per-frame functional groups" if multi else ""
        raise GeometryError(
            f"{path}: no geometry (ImagePositionPatient/ImageOrientationPatient absent{extra}; "
            f"{kind}, Modality {ds.get('Modality') or '?'})"
        )
    if "PixelSpacing" not in ds:
        raise GeometryError(f"{path}: no geometry (PixelSpacing absent)")
    ipp = _floats(ds.ImagePositionPatient, 3, "ImagePositionPatient", path)
    iop = _floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient", path)
    ps = tuple(_floats(ds.PixelSpacing, 2, "PixelSpacing", path))
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    if "DoseGridScaling" in ds:
        slope *= float(ds.DoseGridScaling)
    if n_frames == 1:
        return [_Frame(path, ds, 0 if multi else None, ipp, iop, ps, slope, intercept, shape)]
    offsets = ds.get("GridFrameOffsetVector")
    if offsets is None or len(offsets) != n_frames:
        raise GeometryError(
            f"{path}: no geometry for {n_frames} frames (no per-frame positions or "
            "GridFrameOffsetVector)"
        )
    normal = np.cross(iop[:3], iop[3:])
    offs = _floats(offsets, n_frames, "GridFrameOffsetVector", path)
    if offs[0] != 0.0:  # PS3.3 C.8.8.3.2: relative when the first offset is 0, else absolute z
        offs = offs - offs[0]
    return [
        _Frame(path, ds, f, ipp + o * normal, iop, ps, slope, intercept, shape)
        for f, o in enumerate(offs)
    ]


def _sort_and_check(frames: list[_Frame], label: str) -> tuple[list[_Frame], np.ndarray]:
    """Sort frames along the normal, check consistency; return (sorted frames, slice step).

    The normal and the sort are highdicom's (:mod:`highdicom.spatial`). The spacing checks are
    medfuse's own: ``get_volume_positions`` answers only "not a volume" (no reason to report), finds
    duplicates by exact equality (here: closer than 0.01 mm), cannot combine the 0.01 mm floor with
    the 1 % tolerance, and requires the stack to run along the normal, refusing gantry-tilted
    series that this reader places with a sheared affine (positions on one line is enough here).
    """
    f0 = frames[0]
    for f in frames[1:]:
        if f.shape != f0.shape:
            raise GeometryError(
                f"{label}: slices differ in size ({f0.shape[1]}x{f0.shape[0]} vs "
                f"{f.shape[1]}x{f.shape[0]} in {f.path.name})"
            )
        if not np.allclose(f.orientation, f0.orientation, atol=1e-4):
            raise GeometryError(f"{label}: slices differ in orientation ({f.path.name})")
        if not np.allclose(f.pixel_spacing, f0.pixel_spacing, rtol=1e-4, atol=1e-6):
            raise GeometryError(f"{label}: slices differ in pixel spacing ({f.path.name})")
    from highdicom.spatial import get_normal_vector, get_plane_sort_index

    # index convention "RD" (i along a row, j down a column, right-handed): normal = row x column,
    # the direction in which k grows (sorting with highdicom's default "DR" would reverse it)
    orientation = [float(v) for v in f0.orientation]
    normal = get_normal_vector(orientation, index_convention="RD")
    if np.linalg.norm(normal) < 0.5:
        raise GeometryError(f"{label}: degenerate ImageOrientationPatient {list(f0.orientation)}")
    normal = normal / np.linalg.norm(normal)
    positions = [[float(v) for v in f.position] for f in frames]
    order = get_plane_sort_index(positions, orientation, "RD")
    frames = [frames[n] for n in order]
    if len(frames) == 1:
        hdr = f0.header
        depth = hdr.get("SpacingBetweenSlices") or hdr.get("SliceThickness") or 1.0
        try:
            depth = abs(float(depth)) or 1.0
        except (TypeError, ValueError):
            depth = 1.0
        return frames, normal * depth
    pos = np.stack([f.position for f in frames])
    d = pos @ normal
    gaps = np.diff(d)
    if np.min(gaps) < _ABS_TOL_MM:
        n_dup = int(np.sum(gaps < _ABS_TOL_MM)) + 1
        raise GeometryError(
            f"{label}: {n_dup} slices share a position (several echoes, phases or time points in "
            "one series?); split the series"
        )
    mean = float(np.mean(gaps))
    tol = max(_ABS_TOL_MM, SPACING_TOLERANCE * mean)
    if np.max(np.abs(gaps - mean)) > tol:
        raise GeometryError(
            f"{label}: uneven slice spacing, gaps from {np.min(gaps):.4g} to {np.max(gaps):.4g} mm "
            f"along the normal (missing slices?)"
        )
    step = (pos[-1] - pos[0]) / (len(frames) - 1)
    k = np.arange(len(frames))[:, None]
    resid = np.linalg.norm(pos - (pos[0] + k * step), axis=1)
    if np.max(resid) > tol:
        raise GeometryError(
            f"{label}: slice positions are not on one line (off by up to {np.max(resid):.3g} mm)"
        )
    return frames, step
