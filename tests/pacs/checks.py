"""What the PACS tests compare: pixel-data hashes per SOPInstanceUID, file trees before/after."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.pacs.orthanc import Orthanc

__all__ = ["pixel_hashes", "local_hashes", "stored_hashes", "tree_state", "assert_no_identity"]


def pixel_hashes(files: list[Path] | list[bytes]) -> dict[str, tuple[str, str]]:
    """SOPInstanceUID -> (sha256 of the PixelData bytes, transfer syntax) of DICOM files or
    blobs."""
    import io

    import pydicom

    out = {}
    for f in files:
        ds = pydicom.dcmread(io.BytesIO(f) if isinstance(f, bytes) else f)
        out[str(ds.SOPInstanceUID)] = (hashlib.sha256(ds.PixelData).hexdigest(),
                                       str(ds.file_meta.TransferSyntaxUID))
    return out


def local_hashes(folder: Path) -> dict[str, tuple[str, str]]:
    """:func:`pixel_hashes` of every ``*.dcm`` under ``folder``."""
    return pixel_hashes(sorted(folder.rglob("*.dcm")))


def stored_hashes(server: Orthanc, scratch: Path) -> dict[str, tuple[str, str]]:
    """:func:`pixel_hashes` of every instance Orthanc holds, read back through its REST API."""
    ids = server.json("/instances", scratch)
    return pixel_hashes(server.fetch(*(f"/instances/{i}/file" for i in ids), scratch=scratch))


def tree_state(folder: Path) -> dict[str, tuple[str, int]]:
    """Relative path -> (sha256, mtime_ns) of every file under ``folder``."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                         p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_no_identity(folder: Path, *outputs: str) -> None:
    """Fail if any output text holds the PatientName or PatientID of a file under ``folder``."""
    import pydicom

    ds = pydicom.dcmread(min(folder.rglob("*.dcm")), stop_before_pixels=True)
    for value in {str(ds.get("PatientName", "")), str(ds.get("PatientID", ""))} - {""}:
        for text in outputs:
            assert value not in text, f"patient identity {value!r} printed"
