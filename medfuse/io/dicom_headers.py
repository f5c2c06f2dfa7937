"""DICOM headers: read one file with pydicom, check it is an image, take its identity meta.

Every failure becomes one :class:`~medfuse.errors.InputError` line naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from medfuse.errors import InputError

__all__ = ["read_header"]

#: SOP classes that hold pixel data but are not images medfuse can fuse.
_UNSUPPORTED_SOP = {
    "1.2.840.10008.5.1.4.1.1.66.4": "a segmentation (SEG) object",
    "1.2.840.10008.5.1.4.1.1.30": "a parametric map object",
}


def _one_line(exc: BaseException | str, limit: int = 160) -> str:
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
