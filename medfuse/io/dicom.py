"""DICOM reading: series discovery and geometry-true volumes from series or single files.

Geometry rules (see docs/io.md):

* Voxel ``(i, j, k)`` = (column, row, slice). The in-plane axes come from ImageOrientationPatient
  and PixelSpacing; slices are ordered by the projection of ImagePositionPatient on the slice normal
  (never by InstanceNumber or file name) and the slice step is measured from the positions (never
  from SliceThickness or SpacingBetweenSlices).
* Uneven slice spacing (e.g. a missing slice) is a :class:`~medfuse.errors.GeometryError` unless
  every gap is within ``SPACING_TOLERANCE`` (1 % of the mean gap, at least 0.01 mm) of the mean.
* Two frames at one position (several echoes, phases or time points in one series) is a
  GeometryError naming the count.
* Enhanced multi-frame objects take geometry from the per-frame functional groups
  (PlanePositionSequence) and the shared/per-frame PlaneOrientation and PixelMeasures; RT Dose uses
  GridFrameOffsetVector. A multi-frame object without any of these (e.g. planar NM, secondary
  capture) has no geometry: GeometryError.
* A single slice gets a slice step of SpacingBetweenSlices, else SliceThickness, else 1 mm along the
  normal: with one slice it positions nothing and only sets the voxel depth.
* Intensities: RescaleSlope/Intercept (per frame for enhanced objects, so CT is in HU), RT Dose
  DoseGridScaling (Gy). Colour images (SamplesPerPixel 3) become 3 channels of RGB.

The code lives in :mod:`.dicom_headers` (header reading), :mod:`.dicom_frames` (frame geometry,
sorting and spacing checks), :mod:`.dicom_stack` (decoding and stacking, single files) and
:mod:`.dicom_scan` (series discovery); this module reads a series and re-exports the public names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from medfuse.errors import InputError

from .dicom_frames import SPACING_TOLERANCE, _Frame, _frames_of
from .dicom_headers import _meta_from, read_header
from .dicom_headers import _one_line as _one_line  # re-exported for .volume
from .dicom_scan import OUTPUT_MARKER, SeriesInfo, Unreadable, _info, _scan, find_series
from .dicom_stack import _stack, read_dicom_file

__all__ = [
    "SeriesInfo",
    "find_series",
    "read_dicom_file",
    "read_dicom_series",
    "read_header",
    "SPACING_TOLERANCE",
    "OUTPUT_MARKER",
    "Unreadable",
]


def _unreadable_error(folder: Path, bad: list[Unreadable]) -> InputError:
    first = bad[0]
    more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
    return InputError(
        f"{folder}: {len(bad)} file(s) of the series could not be read: "
        f"{_relative(first.path, folder)} ({first.reason}){more}; repair or remove them, or "
        "fuse without them (--skip-unreadable)"
    )


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return path.name


def read_dicom_series(
    folder: str | os.PathLike,
    series_uid: str | None = None,
    recursive: bool = True,
    skip_unreadable: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read one DICOM series from a folder as a volume.

    Every DICOM file of the series that cannot be read (truncated or corrupt header, truncated
    pixel data, permission denied, a dangling symbolic link or one leading out of ``folder``) is
    an error, unless ``skip_unreadable``; files whose series is unknown (header cut before the
    SeriesInstanceUID) count for the series read. Files that are not DICOM are ignored.

    Args:
        folder: folder holding the series' files (other series may be there too).
        series_uid: SeriesInstanceUID to pick; required when the folder holds several series.
        recursive: also scan sub-folders.
        skip_unreadable: read the series without its unreadable files (listed in the
            ``skipped_files`` meta) instead of failing.

    Returns:
        ``(array, affine, meta)`` as :func:`read_dicom_file`, ``dicom_datasets`` holding one header
        (without pixel data) per instance in slice order, plus ``series_count`` (series found) and
        ``skipped_files`` (``[{"file": path relative to folder, "reason": ...}]``).

    Raises:
        InputError: no series, several series and no (or an unknown) ``series_uid``,
            unreadable files (without ``skip_unreadable``), undecodable data.
        GeometryError: inconsistent geometry (uneven spacing, mixed orientation, duplicates).
    """
    f = Path(folder)
    if not f.is_dir():
        raise InputError(f"{f}: not a folder")
    groups, bad = _scan(f, recursive)
    if not groups:
        if bad and not skip_unreadable:
            raise _unreadable_error(f, bad)
        raise InputError(f"{f}: no DICOM image series found")
    if series_uid is None and len(groups) > 1:
        listing = "; ".join(_info(u, it).describe() for u, it in sorted(groups.items()))
        raise InputError(
            f"{f}: {len(groups)} series found, choose one with series_uid (medfuse fuse: "
            f"--series-a/--series-b): {listing}"
        )
    if series_uid is not None and series_uid not in groups:
        listing = "; ".join(_info(u, it).describe() for u, it in sorted(groups.items()))
        raise InputError(f"{f}: series {series_uid} not found; series here: {listing}")
    uid = series_uid if series_uid is not None else next(iter(groups))
    bad = [b for b in bad if b.series_instance_uid in (None, uid)]
    if bad and not skip_unreadable:
        raise _unreadable_error(f, bad)
    items = sorted(groups[uid], key=lambda t: t[0])
    frames: list[_Frame] = []
    for p, ds in items:
        frames.extend(_frames_of(ds, p))
    vol, affine, headers = _stack(frames, f"{f} (series {uid})")
    meta = _meta_from(items[0][1])
    meta["dicom_datasets"] = headers
    meta["series_count"] = len(groups)
    meta["skipped_files"] = [{"file": _relative(b.path, f), "reason": b.reason} for b in bad]
    return vol, affine, meta
