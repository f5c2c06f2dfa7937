"""Writers for fused results: DICOM Secondary Capture series, NIfTI, PNG.

* :func:`write_secondary_capture` - one highdicom ``SCImage`` per slice (MONOCHROME2 8-bit or RGB,
  Explicit VR Little Endian), same Patient and Study as the identity source, a new DERIVED series,
  Source Image Sequence per slice and Referenced Series for the whole series, pixel spacing and
  patient orientation from the reference geometry. No Frame of Reference (the SC IOD has none).
* :func:`write_nifti` - uint8 volume with the reference affine (RGB as NIfTI RGB24).
* :func:`write_png` / :func:`write_montage` - 8-bit PNGs.

An error of the operating system while writing (disk full, quota, read-only) is one
:class:`~medfuse.errors.OutputError` line naming the file; the partial file is removed.

Each takes 8-bit data already quantised (``to_uint8``) so every output holds the same pixels.
"""

from __future__ import annotations

import datetime
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from medfuse.errors import OutputError
from medfuse.io.guard import os_reason

__all__ = [
    "to_uint8",
    "patient_orientation",
    "intersecting_instances",
    "write_secondary_capture",
    "write_nifti",
    "write_png",
    "write_montage",
]


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn an operating-system error while writing ``path`` (disk full, ...) into one line."""
    try:
        yield
    except OSError as exc:
        p = Path(path)
        try:
            p.unlink(missing_ok=True)  # no partial file
        except OSError:
            pass
        root = os_reason(exc)
        why = root.strerror if root is not None and root.strerror else str(exc).splitlines()[0]
        raise OutputError(f"{p}: cannot write ({why})") from None


def to_uint8(x: Any) -> np.ndarray:
    """[0, 1] floats (tensor or array) -> uint8 0..255 (rounded, clipped)."""
    arr = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    return np.clip(np.rint(np.asarray(arr, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def _letters(v_ras: np.ndarray) -> str:
    """DICOM patient-orientation letters of a RAS direction, dominant component first.

    Components under 0.1 (about 6 degrees of obliquity) are left out.
    """
    v = np.asarray(v_ras, dtype=np.float64)
    v = v / (np.linalg.norm(v) or 1.0)
    names = (("R", "L"), ("A", "P"), ("H", "F"))
    order = np.argsort(-np.abs(v))
    return "".join(names[i][0 if v[i] > 0 else 1] for i in order if abs(v[i]) >= 0.1) or "L"


def patient_orientation(slice_affine: np.ndarray) -> tuple[str, str]:
    """DICOM PatientOrientation (row direction, column direction) of slices cut by ExtractSlices.

    Args:
        slice_affine: (4, 4) (h, w, n) -> RAS mm: column 0 is the direction down a column (rows
            index h), column 1 the direction along a row (columns index w).

    Returns:
        e.g. ("L", "P") for an axial slice in the radiological layout.
    """
    a = np.asarray(slice_affine, dtype=np.float64)
    return _letters(a[:3, 1]), _letters(a[:3, 0])


def intersecting_instances(
    corners_world: np.ndarray, world_to_source: np.ndarray, n_instances: int
) -> list[int]:
    """Indices k of a source series' instances whose planes a fused slice touches.

    Args:
        corners_world: (M, 3) RAS mm points of the fused slice (its corners).
        world_to_source: (4, 4) RAS mm -> source voxel (i, j, k).
        n_instances: number of instances along k.

    Returns:
        sorted k indices in [0, n_instances) (empty if the slice misses the series).
    """
    m = np.asarray(world_to_source, dtype=np.float64)
    k = corners_world @ m[2, :3] + m[2, 3]
    lo, hi = int(math.floor(k.min() + 0.5 - 1e-6)), int(math.floor(k.max() + 0.5 + 1e-6))
    lo, hi = max(lo, 0), min(hi, n_instances - 1)
    return list(range(lo, hi + 1)) if lo <= hi else []


def _ref_item(ds: Any) -> Any:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    return item


def _series_item(series_uid: str, headers: Sequence[Any]) -> Any:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.SeriesInstanceUID = series_uid
    item.ReferencedInstanceSequence = [_ref_item(h) for h in headers]
    return item


def write_secondary_capture(
    slices: np.ndarray,
    slice_affine: np.ndarray,
    out_dir: str | os.PathLike,
    identity: Any | None,
    sources: Sequence[dict[str, Any]] = (),
    series_description: str = "medfuse fusion",
    derivation: str = "",
    series_number: int = 900,
    software_version: str = "",
) -> list[Path]:
    """Write fused slices as a DICOM Secondary Capture series (one file per slice).

    Args:
        slices: (N, H, W) uint8 grayscale or (N, H, W, 3) uint8 RGB, slice n at the reference
            position ``slice_affine @ (0, 0, n)``.
        slice_affine: (4, 4) (h, w, n) -> RAS mm of the reference slices (from ExtractSlices).
        out_dir: folder to write ``SC_0001.dcm``, ... into (must exist).
        identity: a pydicom Dataset whose Patient and Study the series joins (None: a new study
            with empty patient attributes).
        sources: the source series to reference, each a dict with "headers" (pydicom Datasets
            in k order), "series_instance_uid", "study_instance_uid" and "world_to_voxel"
            ((4, 4) reference RAS mm -> that source's voxel indices, registration included).
        series_description: SeriesDescription (cut to 64 characters).
        derivation: DerivationDescription text.
        series_number: SeriesNumber of the new series.
        software_version: SoftwareVersions.

    Returns:
        the written paths, in slice order.
    """
    import highdicom as hd
    from pydicom.uid import ExplicitVRLittleEndian

    arr = np.asarray(slices)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] != 3):
        raise OutputError(f"SC writer expects (N, H, W) or (N, H, W, 3) uint8, got {arr.shape}")
    rgb = arr.ndim == 4
    out = Path(out_dir)
    aff = np.asarray(slice_affine, dtype=np.float64)
    spacing = (float(np.linalg.norm(aff[:3, 0])), float(np.linalg.norm(aff[:3, 1])))
    orient = patient_orientation(aff)
    n, h, w = arr.shape[:3]
    series_uid = hd.UID()
    now = datetime.datetime.now()
    study_uid = str(identity.StudyInstanceUID) if identity is not None else hd.UID()
    corners_hw = np.array([[0, 0], [h - 1, 0], [0, w - 1], [h - 1, w - 1]], dtype=np.float64)

    # Referenced Series (same study) / Studies Containing Other Referenced Instances
    same: list[Any] = []
    other: dict[str, Any] = {}
    for src in sources:
        if not src.get("headers"):
            continue
        item = _series_item(src["series_instance_uid"], src["headers"])
        if src.get("study_instance_uid") == study_uid:
            same.append(item)
        else:
            other.setdefault(src.get("study_instance_uid", ""), []).append(item)

    paths: list[Path] = []
    for k in range(n):
        pix = np.ascontiguousarray(arr[k])
        common: dict[str, Any] = {
            "pixel_array": pix,
            "photometric_interpretation": "RGB" if rgb else "MONOCHROME2",
            "bits_allocated": 8,
            "coordinate_system": "PATIENT",
            "series_instance_uid": series_uid,
            "series_number": int(series_number),
            "sop_instance_uid": hd.UID(),
            "instance_number": k + 1,
            "manufacturer": "medfuse",
            "pixel_spacing": spacing,
            "patient_orientation": (orient[0][0], orient[1][0]),
            "transfer_syntax_uid": ExplicitVRLittleEndian,
            "series_description": series_description[:64],
            "software_versions": software_version or None,
            "content_date": now.date(),
            "content_time": now.time(),
            "series_date": now.date(),
            "series_time": now.time(),
        }
        with warnings.catch_warnings():  # e.g. single-component patient names in the source
            warnings.simplefilter("ignore", UserWarning)
            if identity is not None:
                sc = hd.sc.SCImage.from_ref_dataset(ref_dataset=identity, **common)
            else:
                sc = hd.sc.SCImage(study_instance_uid=study_uid, **common)
        # General Series Laterality is Type 2C: the source's, else empty (unknown)
        sc.Laterality = (
            str(getattr(identity, "Laterality", "") or "") if identity is not None else ""
        )
        sc.PatientOrientation = list(orient)  # oblique codes (e.g. "LP") beyond highdicom's enum
        sc.ImageType = ["DERIVED", "SECONDARY", "FUSION"]
        sc.ConversionType = "WSD"  # workstation: produced by software from other images
        sc.BurnedInAnnotation = "NO"
        sc.LossyImageCompression = "00"
        if derivation:
            sc.DerivationDescription = derivation[:1024]
        refs = []
        corners = np.stack(
            [
                aff[:3, 0] * hh + aff[:3, 1] * ww + aff[:3, 2] * k + aff[:3, 3]
                for hh, ww in corners_hw
            ]
        )
        for src in sources:
            headers = src.get("headers") or []
            for idx in intersecting_instances(corners, src["world_to_voxel"], len(headers)):
                refs.append(_ref_item(headers[idx]))
        if refs:
            sc.SourceImageSequence = refs
        if same:
            sc.ReferencedSeriesSequence = same
        if other:
            from pydicom.dataset import Dataset

            studies = []
            for uid, items in other.items():
                st = Dataset()
                st.StudyInstanceUID = uid
                st.ReferencedSeriesSequence = items
                studies.append(st)
            sc.StudiesContainingOtherReferencedInstancesSequence = studies
        path = out / f"SC_{k + 1:04d}.dcm"
        with _writing(path):
            sc.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_nifti(volume: np.ndarray, affine: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8 volume as NIfTI-1 with a RAS affine.

    Args:
        volume: (1, I, J, K) grayscale or (3, I, J, K) RGB uint8 (channel first, as medfuse).
        affine: (4, 4) voxel -> RAS mm.
        path: ``.nii`` or ``.nii.gz``.

    RGB volumes are stored as NIfTI RGB24 (datatype 128): one 3-byte vector voxel per (i, j, k),
    which ITK-SNAP, FSLeyes, 3D Slicer and ``medfuse.io.load_volume`` read as colour.
    """
    import nibabel as nib

    vol = np.asarray(volume)
    if vol.dtype != np.uint8 or vol.ndim != 4 or vol.shape[0] not in (1, 3):
        raise OutputError(f"NIfTI writer expects (1|3, I, J, K) uint8, got {vol.shape} {vol.dtype}")
    if vol.shape[0] == 1:
        data = vol[0]
    else:
        rgb = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
        data = np.empty(vol.shape[1:], dtype=rgb)
        for c, name in enumerate("RGB"):
            data[name] = vol[c]
    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    p = Path(path)
    with _writing(p):
        nib.save(img, str(p))
    return p


def write_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write (H, W) or (H, W, 3) uint8 as PNG."""
    from PIL import Image

    p = Path(path)
    arr = np.ascontiguousarray(image)
    with _writing(p):
        Image.fromarray(arr, mode="RGB" if arr.ndim == 3 else "L").save(p)
    return p


def write_montage(
    slices: np.ndarray, path: str | os.PathLike, max_tiles: int = 16, columns: int | None = None
) -> Path:
    """A PNG grid of evenly spaced slices (a quick look at the result).

    Args:
        slices: (N, H, W) or (N, H, W, 3) uint8.
        path: PNG path.
        max_tiles: at most this many slices, evenly spaced, first and last included.
        columns: tiles per row (default: about square).
    """
    arr = np.asarray(slices)
    n = arr.shape[0]
    idx = np.unique(np.linspace(0, n - 1, min(n, max_tiles)).round().astype(int))
    cols = columns or int(math.ceil(math.sqrt(len(idx))))
    rows = int(math.ceil(len(idx) / cols))
    h, w = arr.shape[1:3]
    grid = np.zeros((rows * h, cols * w, *arr.shape[3:]), dtype=np.uint8)
    for t, k in enumerate(idx):
        r, c = divmod(t, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = arr[k]
    return write_png(grid, path)
