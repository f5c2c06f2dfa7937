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
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medfuse.errors import GeometryError, InputError

from .geometry import dicom_affine
from .guard import MARKER

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

#: relative tolerance on slice gaps (fraction of the mean gap); absolute floor in mm is 0.01.
SPACING_TOLERANCE: float = 0.01
_ABS_TOL_MM = 0.01

#: SOP classes that hold pixel data but are not images medfuse can fuse.
_UNSUPPORTED_SOP = {
    "1.2.840.10008.5.1.4.1.1.66.4": "a segmentation (SEG) object",
    "1.2.840.10008.5.1.4.1.1.30": "a parametric map object",
}


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM image series found in a folder.

    Attributes:
        series_instance_uid: SeriesInstanceUID.
        study_instance_uid: StudyInstanceUID ("" if absent).
        modality: DICOM Modality code ("" if absent).
        series_description: SeriesDescription ("" if absent).
        series_number: SeriesNumber or None.
        frame_of_reference_uid: FrameOfReferenceUID or None.
        files: the instance files, sorted by name (not by position).
        n_frames: total number of frames (slices) over the files.
    """

    series_instance_uid: str
    study_instance_uid: str
    modality: str
    series_description: str
    series_number: int | None
    frame_of_reference_uid: str | None
    files: tuple[Path, ...] = field(repr=False)
    n_frames: int = 0

    @property
    def n_files(self) -> int:
        """Number of instance files in the series."""
        return len(self.files)

    def describe(self) -> str:
        """One-line summary without patient identity: UID, modality, description, counts."""
        desc = self.series_description or "(no description)"
        return (
            f"{self.series_instance_uid} [{self.modality or '?'}] '{desc}' "
            f"{self.n_files} file(s), {self.n_frames} slice(s)"
        )


def _one_line(exc: BaseException, limit: int = 160) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def read_header(path: str | os.PathLike, stop_before_pixels: bool = True) -> Any:
    """Read a DICOM file with pydicom, turning failures into :class:`InputError`.

    Files without the 128-byte preamble/"DICM" prefix are retried with ``force=True`` and accepted
    only if they hold image attributes (Rows, Columns).

    Args:
        path: DICOM file.
        stop_before_pixels: skip the pixel data (fast header read).

    Returns:
        a ``pydicom.Dataset``.

    Raises:
        InputError: not a DICOM file, or unreadable.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    p = Path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=stop_before_pixels)
        except InvalidDicomError:
            ds = None
        except FileNotFoundError as exc:
            raise InputError(f"{p}: no such file") from exc
        except IsADirectoryError as exc:
            raise InputError(f"{p}: is a folder, not a DICOM file") from exc
        except Exception as exc:  # pydicom raises many kinds on corrupt files
            raise InputError(f"{p}: unreadable DICOM ({_one_line(exc)})") from exc
        if ds is None:
            try:
                ds = pydicom.dcmread(p, stop_before_pixels=stop_before_pixels, force=True)
                ok = "Rows" in ds and "Columns" in ds
            except Exception:
                ok = False
            if not ok:
                raise InputError(
                    f"{p}: not a DICOM image (no DICM file header and no Rows/Columns)"
                )
    if any("End of file reached" in str(w.message) for w in caught):
        raise InputError(
            f"{p}: truncated file (end of file reached inside the encapsulated pixel data or a "
            "sequence)"
        )
    return ds


# --------------------------------------------------------------------------------------------
# Frames: one 2D plane with its geometry, from a single-frame file or one frame of a multi-frame


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


def _check_image(ds: Any, path: Path) -> tuple[int, int, int]:
    sop = str(ds.get("SOPClassUID", ""))
    if sop in _UNSUPPORTED_SOP:
        raise InputError(f"{path}: {_UNSUPPORTED_SOP[sop]} is not an image medfuse can load")
    if "Rows" not in ds or "Columns" not in ds:
        name = getattr(ds.get("SOPClassUID"), "name", "") or "no SOP class"
        raise InputError(f"{path}: not an image ({name}; no Rows/Columns)")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples not in (1, 3):
        raise InputError(f"{path}: unsupported SamplesPerPixel {samples}")
    return int(ds.Rows), int(ds.Columns), samples


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
                    tuple(_floats(meas.PixelSpacing, 2, "PixelSpacing", path)),  # type: ignore[arg-type]
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


# --------------------------------------------------------------------------------------------
# Stacking frames into a volume


def _sort_and_check(frames: list[_Frame], label: str) -> tuple[list[_Frame], np.ndarray]:
    """Sort frames along the normal, check consistency; return (sorted frames, slice step)."""
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
    row, col = f0.orientation[:3], f0.orientation[3:]
    normal = np.cross(row, col)
    if np.linalg.norm(normal) < 0.5:
        raise GeometryError(f"{label}: degenerate ImageOrientationPatient {list(f0.orientation)}")
    normal = normal / np.linalg.norm(normal)
    order = sorted(range(len(frames)), key=lambda n: float(frames[n].position @ normal))
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


def _meta_from(ds: Any) -> dict[str, Any]:
    def s(key: str) -> str:
        v = ds.get(key)
        return "" if v is None else str(v)

    return {
        "modality": s("Modality"),
        "frame_of_reference_uid": s("FrameOfReferenceUID") or None,
        "study_instance_uid": s("StudyInstanceUID"),
        "series_instance_uid": s("SeriesInstanceUID"),
        "series_description": s("SeriesDescription"),
    }


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


#: marker file medfuse writes into its output folders (:data:`medfuse.io.guard.MARKER`); a
#: folder holding it (or medfuse's run.json) is medfuse's own output and is not scanned as input.
OUTPUT_MARKER = MARKER
#: file-name suffixes that say "DICOM": such a file that cannot be read as DICOM is reported.
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


@dataclass(frozen=True)
class Unreadable:
    """A file of a series folder that looks like DICOM but could not be read.

    Attributes:
        path: the file (as found under the input folder, symbolic links not resolved).
        reason: why, in a few words (no patient data).
        series_instance_uid: the series it belongs to, when the header got that far.
    """

    path: Path
    reason: str
    series_instance_uid: str | None = None


def _is_medfuse_output(folder: Path) -> bool:
    """True for a folder medfuse wrote (marker file, or a run.json whose command is medfuse)."""
    if (folder / OUTPUT_MARKER).exists():
        return True
    run = folder / "run.json"
    try:
        if not run.is_file() or run.stat().st_size > 10_000_000:
            return False
        return str(json.loads(run.read_text()).get("command", "")).startswith("medfuse")
    except (OSError, ValueError, AttributeError):
        return False


def _iter_files(folder: Path, recursive: bool) -> Iterable[tuple[Path, str | None]]:
    """``(path, problem)`` for each file under ``folder``, each real file once.

    Symbolic links are resolved: a link to a folder is followed only inside ``folder`` and to a
    folder not visited yet (so cycles end and the scan never leaves the tree); a link to a file
    is read once per real file (link farms of DICOM files keep working). Hidden entries (names
    starting with '.') and medfuse's own output folders are skipped. ``problem`` is None, or why
    the file cannot be read (a dangling or looping link, an unreadable sub-folder).
    """
    root = folder.resolve()
    seen_dirs: set[Path] = set()
    seen_files: set[Path] = set()
    todo = [folder]
    while todo:
        here = todo.pop(0)
        real_dir = here.resolve()
        if real_dir in seen_dirs:
            continue
        seen_dirs.add(real_dir)
        try:
            names = sorted(os.listdir(here))
        except OSError as exc:
            if here == folder:
                raise InputError(f"{folder}: cannot read the folder ({exc.strerror})") from None
            yield here, f"folder cannot be read ({exc.strerror})"
            continue
        subdirs = []
        for name in names:
            p = here / name
            if name.startswith("."):
                continue
            try:
                real = p.resolve(strict=True)
            except (OSError, RuntimeError):  # dangling link or a loop of links
                yield p, "dangling or looping symbolic link"
                continue
            if real.is_dir():
                inside = real == root or root in real.parents
                if recursive and inside and real not in seen_dirs and not _is_medfuse_output(p):
                    subdirs.append(p)
            elif real not in seen_files:  # a link to a file is read (once), wherever it leads
                seen_files.add(real)
                yield p, None
        todo[:0] = subdirs  # depth first, in name order


#: the Sequence Delimitation Item that ends encapsulated (compressed) pixel data.
_SEQ_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _pixel_data_cut(p: Path, ds: Any) -> bool:
    """True when the file ends before its pixel data does (header read without pixels).

    Native data: the file is shorter than Rows x Columns x frames x samples x bits. Encapsulated
    data normally ends the file with a sequence delimiter; a file that does not is read in full.
    """
    import pydicom

    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None or "BitsAllocated" not in ds:
        return False
    if not ts.is_compressed:
        try:
            n = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
            n *= int(ds.get("NumberOfFrames", 1) or 1) * int(ds.BitsAllocated) // 8
        except (TypeError, ValueError):
            return False
        return os.path.getsize(p) < n
    with open(p, "rb") as fh:
        fh.seek(max(0, os.path.getsize(p) - len(_SEQ_END)))
        if fh.read() == _SEQ_END:
            return False
    with warnings.catch_warnings(record=True) as caught:  # unusual layout: read it all
        warnings.simplefilter("always")
        try:
            full = pydicom.dcmread(p)
        except Exception:  # noqa: BLE001 - any failure here is a damaged file
            return True
    return "PixelData" not in full or any("End of file" in str(w.message) for w in caught)


def _scan_one(p: Path) -> tuple[Any | None, str | None]:
    """``(header, None)`` for an image instance, ``(None, None)`` for a file to ignore quietly
    (not DICOM, or DICOM without an image: RTSTRUCT, SR, ...), ``(None | header, reason)`` for a
    DICOM file that cannot be read (the header is returned when it names its series)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except InvalidDicomError:
            if not p.name.lower().endswith(_DICOM_SUFFIXES):
                return None, None  # README, .txt, thumbnails...: not DICOM
            try:
                ds = pydicom.dcmread(p, stop_before_pixels=True, force=True)
            except Exception:
                return None, "not readable as DICOM"
            if "Rows" not in ds or "SeriesInstanceUID" not in ds:
                return None, "not readable as DICOM (no DICM header, no image attributes)"
        except PermissionError:
            return None, "permission denied"
        except OSError as exc:
            return None, _one_line(exc.strerror or exc, 80)
        except Exception as exc:  # pydicom raises many kinds on corrupt files
            return None, f"corrupt DICOM header ({_one_line(exc, 80)})"
    if any("End of file" in str(w.message) for w in caught):
        return (ds if "SeriesInstanceUID" in ds else None), "truncated file"
    sop = ds.get("SOPClassUID") or getattr(ds.get("file_meta"), "MediaStorageSOPClassUID", None)
    sop_name = getattr(sop, "name", "") or ""
    if sop is None or "SeriesInstanceUID" not in ds or "StudyInstanceUID" not in ds:
        return None, "truncated or incomplete header (no SOP class, study or series UID)"
    if "Rows" not in ds or "Columns" not in ds:
        if "Image Storage" in sop_name or sop_name == "RT Dose Storage":
            return ds, "truncated or incomplete header (no Rows/Columns)"
        return None, None  # not an image instance (RTSTRUCT, SR, ...)
    if _pixel_data_cut(p, ds):
        return ds, "truncated pixel data"
    return ds, None


def _scan(
    folder: Path, recursive: bool
) -> tuple[dict[str, list[tuple[Path, Any]]], list[Unreadable]]:
    """Image instances grouped by SeriesInstanceUID, and the DICOM files that could not be read."""
    groups: dict[str, list[tuple[Path, Any]]] = {}
    bad: list[Unreadable] = []
    for p, problem in _iter_files(folder, recursive):
        if p.name.upper() == "DICOMDIR":
            continue
        ds, reason = (None, problem) if problem else _scan_one(p)
        if reason:
            uid = None
            if ds is not None and "SeriesInstanceUID" in ds:
                uid = str(ds.SeriesInstanceUID)
            bad.append(Unreadable(p, reason, uid))
        elif ds is not None:
            groups.setdefault(str(ds.SeriesInstanceUID), []).append((p, ds))
    return groups, bad


def _info(uid: str, items: list[tuple[Path, Any]]) -> SeriesInfo:
    ds = items[0][1]
    num = ds.get("SeriesNumber")
    try:
        num = int(num) if num not in (None, "") else None
    except (TypeError, ValueError):
        num = None
    n_frames = sum(int(d.get("NumberOfFrames", 1) or 1) for _, d in items)
    meta = _meta_from(ds)
    return SeriesInfo(
        series_instance_uid=uid,
        study_instance_uid=meta["study_instance_uid"],
        modality=meta["modality"],
        series_description=meta["series_description"],
        series_number=num,
        frame_of_reference_uid=meta["frame_of_reference_uid"],
        files=tuple(sorted(p for p, _ in items)),
        n_frames=n_frames,
    )


def find_series(folder: str | os.PathLike, recursive: bool = True) -> list[SeriesInfo]:
    """List the DICOM image series in a folder (headers only, pixel data is not read).

    Files that are not DICOM, and DICOM instances without an image (RTSTRUCT, SR, ...), are
    skipped.

    Args:
        folder: folder to scan.
        recursive: also scan sub-folders (default True; symbolic links are followed inside
            ``folder`` only; hidden folders and medfuse's own outputs are skipped).

    Returns:
        the series sorted by (study UID, series number, description).

    Raises:
        InputError: ``folder`` is not a folder.
    """
    f = Path(folder)
    if not f.is_dir():
        raise InputError(f"{f}: not a folder")
    with warnings.catch_warnings():  # pydicom complains lazily about odd values (invalid UIs...)
        warnings.simplefilter("ignore")
        groups, _ = _scan(f, recursive)
        infos = [_info(uid, items) for uid, items in groups.items()]
    infos.sort(
        key=lambda s: (
            s.study_instance_uid,
            s.series_number or 0,
            s.series_description,
            s.series_instance_uid,
        )
    )
    return infos


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
