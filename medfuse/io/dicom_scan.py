"""DICOM series discovery: walk a folder, group image instances by series, report bad files.

The walk is symbolic-link safe (never leaves the folder, ends on cycles), skips hidden entries and
medfuse's own output folders; only headers are read.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medfuse.errors import InputError

from .dicom_headers import _meta_from, _one_line
from .guard import MARKER

__all__ = ["SeriesInfo", "Unreadable", "find_series", "OUTPUT_MARKER"]


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
