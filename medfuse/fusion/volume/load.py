"""The load stage of the volume job: both volumes, and the roles they play.

Reads both inputs geometry-true (:func:`medfuse.io.load_volume`), checks that they are 3D and not
both functional, and decides which one is functional (PET/SPECT, or ``--functional``), the task,
and whose grid the output takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medfuse.errors import GeometryError, InputError

from ..options import FuseOptions
from ..stages import StageClock

__all__ = [
    "Inputs",
    "load_stage",
    "infer_task",
    "describe_input",
    "patient_check",
    "FUNCTIONAL_MODALITIES",
]

#: modalities colourised as the functional input.
FUNCTIONAL_MODALITIES = ("PT", "NM")

_TASK_BY_MODALITY = {"CT": "ct-mri", "PT": "pet-mri", "NM": "spect-mri"}


@dataclass
class Inputs:
    """The load stage's result.

    Attributes:
        vols: the two volumes, MetaTensors (C, I, J, K) with RAS affines, in input order a, b.
        paths: their paths.
        modalities: DICOM modality codes ("" when unknown), upper case.
        functional: which inputs are colourised (PET/SPECT, or ``--functional``).
        task: the fusion task (given, or inferred from the modalities; None when unknown).
        ref: index of the input whose grid the output takes (the other one moves).
        patient: run.json's ``patient_check`` record (:func:`patient_check`).
    """

    vols: list[Any]
    paths: tuple[str, str]
    modalities: tuple[str, str]
    functional: tuple[bool, bool]
    task: str | None
    ref: int
    patient: dict[str, Any]

    @property
    def mov(self) -> int:
        """Index of the moving input."""
        return 1 - self.ref


def load_stage(a: str | Path, b: str | Path, opt: FuseOptions, clock: StageClock) -> Inputs:
    """Load both volumes and decide the roles: functional input, task, reference grid.

    Raises:
        InputError: unreadable input, two functional inputs, or two patients (without
            ``allow_different_patients``).
        GeometryError: an input that is not 3D, or inconsistent geometry.
    """
    from medfuse.io import load_volume

    paths = (str(a), str(b))
    bar = clock.bar("load", 2)
    vols = []
    for p, uid in zip(paths, (opt.series_a, opt.series_b)):
        vols.append(load_volume(p, series_uid=uid, skip_unreadable=opt.skip_unreadable))
        bar.update(1)
    bar.close()
    for v, p in zip(vols, paths):
        _check_3d(v, p)
        if v.meta.get("skipped_files"):
            clock.log(f"{p}: skipped {len(v.meta['skipped_files'])} unreadable file(s)")
    patient = patient_check(vols, paths, opt.allow_different_patients)
    mods = tuple(str(v.meta.get("modality") or "").upper() for v in vols)
    functional = tuple(
        (opt.functional == ab) or (m in FUNCTIONAL_MODALITIES) for ab, m in zip("ab", mods)
    )
    if all(functional):
        raise InputError(
            f"{paths[0]} and {paths[1]}: both inputs are functional ({mods[0]}, {mods[1]}); fuse a "
            "functional image with an anatomical one"
        )
    return Inputs(
        vols=vols,
        paths=paths,
        modalities=(mods[0], mods[1]),
        functional=(functional[0], functional[1]),
        task=opt.task or infer_task(*mods),
        ref=_choose_reference(opt, (mods[0], mods[1]), (functional[0], functional[1])),
        patient=patient,
    )


def infer_task(modality_a: str, modality_b: str) -> str | None:
    """The fusion task of two modalities ("ct-mri", "pet-mri", "spect-mri"), or None."""
    ma, mb = modality_a.upper(), modality_b.upper()
    if mb == "MR" and ma in _TASK_BY_MODALITY:
        return _TASK_BY_MODALITY[ma]
    if ma == "MR" and mb in _TASK_BY_MODALITY:
        return _TASK_BY_MODALITY[mb]
    return None


def describe_input(vol: Any, path: str, role: str) -> dict[str, Any]:
    """run.json's entry for one input (no patient identity)."""
    from medfuse.io import orientation_code, voxel_spacing

    aff = vol.affine.numpy()
    return {
        "role": role,
        "path": str(path),
        "format": vol.meta.get("source_format"),
        "modality": vol.meta.get("modality") or None,
        "series_instance_uid": vol.meta.get("series_instance_uid") or None,
        "study_instance_uid": vol.meta.get("study_instance_uid") or None,
        "frame_of_reference_uid": vol.meta.get("frame_of_reference_uid"),
        "series_description": vol.meta.get("series_description") or None,
        "shape": [int(v) for v in vol.shape],
        "spacing_mm": [round(v, 6) for v in voxel_spacing(aff)],
        "orientation": orientation_code(aff),
        "n_instances": len(vol.meta.get("dicom_datasets") or []),
        "skipped_files": list(vol.meta.get("skipped_files") or []),
    }


def patient_check(vols: list[Any], paths: tuple[str, str], allow: bool) -> dict[str, Any]:
    """Check that A and B are the same patient (PatientID, and PatientBirthDate when both have it).

    Returns the run.json record (never the values): ``status`` is "matched",
    "allowed-different" or "not checkable" (an input without DICOM patient identity).

    Raises:
        InputError: the identities differ and ``allow`` is False.
    """
    hdrs = [(v.meta.get("dicom_datasets") or [None])[0] for v in vols]
    if any(h is None for h in hdrs):
        return {"status": "not checkable", "why": "an input has no DICOM patient identity"}
    ids = [str(h.get("PatientID") or "").strip() for h in hdrs]
    births = [str(h.get("PatientBirthDate") or "").strip() for h in hdrs]
    if not any(ids):
        return {"status": "not checkable", "why": "neither input has a PatientID"}
    compared = ["PatientID"] + (["PatientBirthDate"] if all(births) else [])
    differ = [
        k
        for k, vals in (("PatientID", ids), ("PatientBirthDate", births))
        if k in compared and vals[0] != vals[1]
    ]
    if not differ:
        return {"status": "matched", "compared": compared}
    if not allow:
        raise InputError(
            f"{paths[0]} and {paths[1]}: different patients ({' and '.join(differ)} differ); "
            "fuse images of one patient, or pass --allow-different-patients"
        )
    return {"status": "allowed-different", "compared": compared, "differ": differ}


def _check_3d(vol: Any, path: str) -> None:
    small = [int(s) for s in vol.shape[1:] if int(s) < 2]
    if small:
        raise GeometryError(
            f"{path}: is a 2D image (shape {tuple(int(v) for v in vol.shape[1:])}); fuse two 3D "
            "volumes, or two folders of matching 2D images"
        )
    import torch

    if not bool(torch.isfinite(vol.as_tensor()).any()):
        raise InputError(f"{path}: no finite voxel value (the image is all NaN or infinite)")


def _choose_reference(
    opt: FuseOptions, mods: tuple[str, str], functional: tuple[bool, bool]
) -> int:
    if opt.reference in ("a", "b"):
        return 0 if opt.reference == "a" else 1
    if functional[0] != functional[1]:
        return 1 if functional[0] else 0
    if (mods[0] == "MR") != (mods[1] == "MR"):
        return 0 if mods[0] == "MR" else 1
    return 1
