"""``load_volume``: one entry point for DICOM series/files, NIfTI, MetaImage and NRRD.

Every reader returns a MONAI :class:`~monai.data.MetaTensor` of shape (C, I, J, K) float32 (C = 1,
or 3 for RGB sources) whose ``.affine`` (4x4 float64) maps voxel (i, j, k) to RAS world mm.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from medfuse.errors import GeometryError, InputError

from .dicom import _one_line, read_dicom_file, read_dicom_series
from .geometry import lps_to_ras

__all__ = ["load_volume", "read_volume", "detect_format", "SUPPORTED_SUFFIXES"]

#: file-name suffixes of the non-DICOM formats, mapped to ``source_format``.
SUPPORTED_SUFFIXES: dict[str, str] = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".mha": "metaimage",
    ".mhd": "metaimage",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
}

#: MetaImage "Modality" values -> DICOM modality codes.
_MET_MODALITY = {
    "MET_MOD_CT": "CT",
    "MET_MOD_MR": "MR",
    "MET_MOD_NM": "NM",
    "MET_MOD_US": "US",
    "MET_MOD_OTHER": "OT",
}


def detect_format(path: str | os.PathLike) -> str:
    """Guess the ``source_format`` of a path from its name (a folder is a DICOM series).

    Returns:
        one of "dicom-series", "nifti", "metaimage", "nrrd", or "dicom-file" for anything else.
    """
    p = Path(path)
    if p.is_dir():
        return "dicom-series"
    name = p.name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUPPORTED_SUFFIXES[suffix]
    return "dicom-file"


def _read_nifti(p: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    import nibabel as nib

    try:
        img: Any = nib.load(str(p))  # a Nifti1Image or Nifti2Image
        dtype = img.get_data_dtype()
        if dtype.names:  # RGB24 / RGBA32 structured voxels -> (..., 3)
            raw = np.asanyarray(img.dataobj)
            data = np.stack([raw[n] for n in dtype.names[:3]], axis=-1).astype(np.float32)
        else:
            data = np.asarray(img.get_fdata(dtype=np.float32))
        affine = np.asarray(img.affine, dtype=np.float64)
    except Exception as exc:
        raise InputError(f"{p}: unreadable NIfTI ({_one_line(exc)})") from exc
    if dtype.names:
        if data.ndim == 3:  # 2D RGB: (I, J, 3) -> (I, J, 1, 3)
            data = data[:, :, None, :]
        if data.ndim != 4:
            raise InputError(f"{p}: RGB NIfTI of shape {data.shape[:-1]} is not supported")
        arr = np.moveaxis(data, -1, 0)
    else:
        if data.ndim == 2:
            data = data[:, :, None]
        if data.ndim == 5 and data.shape[3] == 1:  # NIfTI vector image: (I, J, K, 1, C)
            arr = np.moveaxis(data[:, :, :, 0, :], -1, 0)
        elif data.ndim == 4 and data.shape[3] == 1:
            arr = data[None, :, :, :, 0]
        elif data.ndim == 3:
            arr = data[None]
        else:
            raise InputError(
                f"{p}: {data.ndim}D NIfTI of shape {data.shape} (time series?) is not supported; "
                "give one 3D volume"
            )
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise GeometryError(f"{p}: NIfTI affine is singular or not finite")
    return np.ascontiguousarray(arr, dtype=np.float32), affine, {"modality": ""}


def _read_sitk(p: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(p))
    except Exception as exc:
        raise InputError(f"{p}: unreadable image ({_one_line(exc)})") from exc
    dim = img.GetDimension()
    if dim not in (2, 3):
        raise InputError(f"{p}: {dim}D image is not supported; give one 2D or 3D volume")
    ncomp = img.GetNumberOfComponentsPerPixel()
    if ncomp not in (1, 3):
        raise InputError(f"{p}: {ncomp} components per pixel is not supported (1 or 3)")
    arr = sitk.GetArrayFromImage(img).astype(np.float32)  # (K, J, I[, C]) or (J, I[, C])
    if dim == 2:
        arr = arr[None]
    if ncomp == 1:
        arr = arr[..., None]
    arr = np.transpose(arr, (3, 2, 1, 0))  # (C, I, J, K)
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(dim, dim)
    spacing = np.asarray(img.GetSpacing(), dtype=np.float64)
    origin = np.asarray(img.GetOrigin(), dtype=np.float64)
    aff = np.eye(4)
    aff[:dim, :dim] = direction * spacing[None, :]
    aff[:dim, 3] = origin
    modality = ""
    if img.HasMetaDataKey("Modality"):
        modality = _MET_MODALITY.get(img.GetMetaData("Modality").strip(), "")
    return np.ascontiguousarray(arr), lps_to_ras(aff), {"modality": modality}


def read_volume(
    path: str | os.PathLike, series_uid: str | None = None, skip_unreadable: bool = False
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read a medical volume as NumPy: what :func:`load_volume` wraps, without torch or MONAI.

    ``medfuse info`` uses this so that it starts at once; everything else uses
    :func:`load_volume`.

    Args:
        path: as for :func:`load_volume`.
        series_uid: as for :func:`load_volume`.
        skip_unreadable: as for :func:`load_volume`.

    Returns:
        ``(array, affine, meta)``: (C, I, J, K) float32, (4, 4) float64 voxel -> RAS mm, and the
        ``.meta`` dict :func:`load_volume` documents.

    Raises:
        InputError: missing path, unsupported or undecodable file, several series and no choice.
        GeometryError: missing or inconsistent geometry.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    fmt = detect_format(p)
    with warnings.catch_warnings():  # pydicom/nibabel chatter about harmless header oddities
        warnings.simplefilter("ignore")
        if fmt == "dicom-series":
            arr, affine, meta = read_dicom_series(
                p, series_uid=series_uid, skip_unreadable=skip_unreadable
            )
        elif fmt == "dicom-file":
            arr, affine, meta = read_dicom_file(p)
            if series_uid is not None and meta.get("series_instance_uid") != series_uid:
                raise InputError(
                    f"{p}: belongs to series {meta.get('series_instance_uid')}, not {series_uid}"
                )
        elif fmt == "nifti":
            arr, affine, meta = _read_nifti(p)
        else:
            arr, affine, meta = _read_sitk(p)
    full: dict[str, Any] = {
        "modality": "",
        "frame_of_reference_uid": None,
        "study_instance_uid": "",
        "series_instance_uid": "",
        "series_description": "",
        "dicom_datasets": [],
        "series_count": 1,
        "skipped_files": [],
    }
    full.update(meta)
    full.update(
        {
            "source_path": str(p),
            "source_format": fmt,
            "filename_or_obj": str(p),
            "space": "RAS",
            "original_affine": affine.copy(),
            "spatial_shape": np.asarray(arr.shape[1:]),
        }
    )
    return arr, affine, full


def load_volume(
    path: str | os.PathLike, series_uid: str | None = None, skip_unreadable: bool = False
):
    """Load a medical volume with a geometry-true RAS affine.

    Args:
        path: a folder holding a DICOM series (or several: pick one with ``series_uid``), a DICOM
            file (single- or multi-frame), NIfTI (``.nii``/``.nii.gz``), MetaImage
            (``.mha``/``.mhd``) or NRRD (``.nrrd``/``.nhdr``).
        series_uid: SeriesInstanceUID to load from a folder holding several series.
        skip_unreadable: read a series folder without the DICOM files of the series that cannot
            be read (listed in meta "skipped_files") instead of failing.

    Returns:
        ``monai.data.MetaTensor`` of shape (C, I, J, K) float32 (C = 1, 3 for RGB sources),
        intensities after RescaleSlope/Intercept (HU for CT). ``.affine``: (4, 4) float64
        voxel -> RAS mm. ``.meta``: "modality" (DICOM code or ""), "source_path",
        "source_format" ("dicom-series" | "dicom-file" | "nifti" | "metaimage" | "nrrd"),
        "frame_of_reference_uid" (str | None), "study_instance_uid", "series_instance_uid",
        "series_description", "dicom_datasets" (pydicom Datasets without pixel data, one per source
        instance ordered along k; [] for non-DICOM), "series_count" (series found in a folder, 1
        otherwise), "skipped_files" (unreadable files left out with ``skip_unreadable``: dicts
        of "file", relative to the folder, and "reason"), plus MONAI's "filename_or_obj", "space"
        ("RAS"), "original_affine", "spatial_shape".

    Raises:
        InputError: missing path, unsupported or undecodable file, several series and no choice.
        GeometryError: missing or inconsistent geometry.
    """
    import torch
    from monai.data import MetaTensor

    arr, affine, full = read_volume(path, series_uid=series_uid, skip_unreadable=skip_unreadable)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = MetaTensor(
            torch.from_numpy(arr), affine=torch.as_tensor(affine, dtype=torch.float64), meta=full
        )
    return out
