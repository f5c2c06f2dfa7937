"""Find the DICOM instances under a folder (e.g. the ``dicom/`` series of a medfuse output)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medfuse.errors import InputError

__all__ = ["LocalInstance", "find_instances"]

_TAGS = ["SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"]


@dataclass(frozen=True)
class LocalInstance:
    """One DICOM Part-10 file on disk and the UIDs a transfer needs.

    Attributes:
        path: the file.
        sop_class_uid: SOPClassUID (selects the presentation context).
        sop_instance_uid: SOPInstanceUID.
        transfer_syntax_uid: the file meta TransferSyntaxUID.
        series_instance_uid: SeriesInstanceUID ("" if absent).
        study_instance_uid: StudyInstanceUID ("" if absent).
    """

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    series_instance_uid: str = ""
    study_instance_uid: str = ""


def _is_part10(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _read(path: Path) -> LocalInstance:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: unreadable DICOM file ({exc})") from None
    ts = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
    missing = [k for k, v in (("SOPClassUID", ds.get("SOPClassUID")),
                              ("SOPInstanceUID", ds.get("SOPInstanceUID")),
                              ("TransferSyntaxUID", ts)) if not v]
    if missing:
        raise InputError(f"{path}: DICOM file without {', '.join(missing)}")
    return LocalInstance(
        path=path,
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        transfer_syntax_uid=ts,
        series_instance_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        study_instance_uid=str(ds.get("StudyInstanceUID", "") or ""),
    )


def find_instances(path: str | os.PathLike) -> list[LocalInstance]:
    """All DICOM Part-10 files (``DICM`` marker at byte 128) at or under ``path``.

    Other files (NIfTI, PNG, run.json, ...) and hidden files or folders (names starting with
    ``.``, e.g. an unfinished atomic output) are skipped. Files are returned in path order.

    Args:
        path: a DICOM file or a folder searched recursively.

    Returns:
        one :class:`LocalInstance` per file.

    Raises:
        InputError: ``path`` is missing, holds no DICOM file, a DICOM file lacks its SOP class,
            SOP instance or transfer syntax UID, or two files share one SOPInstanceUID.
    """
    root = Path(path)
    if not root.exists():
        raise InputError(f"{root}: no such file or folder")
    if root.is_file():
        files = [root] if _is_part10(root) else []
    else:
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
        files = [f for f in files if f.is_file() and _is_part10(f)]
    if not files:
        raise InputError(f"{root}: no DICOM files found (a medfuse fuse output has them in dicom/)")
    found = [_read(f) for f in files]
    seen: dict[str, Path] = {}
    for inst in found:
        if inst.sop_instance_uid in seen:
            raise InputError(
                f"{inst.path}: same SOPInstanceUID {inst.sop_instance_uid} as "
                f"{seen[inst.sop_instance_uid]}"
            )
        seen[inst.sop_instance_uid] = inst.path
    return found
