"""The write stage of the volume job: DICOM SC series, NIfTI, PNG montage and the transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..options import FuseOptions
from ..stages import StageClock
from .load import Inputs
from .prepare import Prepared
from .register import Registered

__all__ = ["write_stage"]


def write_stage(
    inp: Inputs,
    reg: Registered,
    prep: Prepared,
    fused: torch.Tensor,
    method_name: str,
    formats: tuple[str, ...],
    opt: FuseOptions,
    tmp: Path,
    clock: StageClock,
) -> tuple[list[str], float]:
    """Write the fused slices: DICOM SC series, NIfTI, PNG montage and review (as ``formats``
    and ``opt.review`` ask) and the transform, into ``tmp``.

    Args:
        fused: (N, C, H, W) float32 in [0, 1] on the reference grid's slices.

    Returns:
        ``(files, interslice_excess)``: the written paths relative to ``tmp`` (run.json not
        included), and the fused slices' inter-slice excess (docs/metrics.md).
    """
    from medfuse.io.writers import to_uint8, write_montage, write_nifti
    from medfuse.registration import write_transform
    from medfuse.transforms import StackSlices

    slices_u8 = to_uint8(fused)  # (N, C, H, W)
    display = slices_u8[:, 0] if slices_u8.shape[1] == 1 else np.moveaxis(slices_u8, 1, -1)
    n_files = len(display) * ("dicom" in formats) + ("nifti" in formats) + ("png" in formats) + 2
    bar = clock.bar("write", n_files)
    files: list[str] = []
    if "dicom" in formats:
        written = _write_dicom(inp, reg, prep, display, method_name, tmp / "dicom")
        files += [f"dicom/{p.name}" for p in written]
        bar.update(len(written))
    ref = inp.vols[inp.ref]
    if "nifti" in formats:
        vol = StackSlices(opt.axis)(torch.from_numpy(slices_u8), prep.grid)
        write_nifti(vol.as_tensor().numpy(), ref.affine.numpy(), tmp / "fused.nii.gz")
        files.append("fused.nii.gz")
        bar.update(1)
    if "png" in formats:
        write_montage(display, tmp / "preview.png")
        files.append("preview.png")
        bar.update(1)
    write_transform(reg.result.matrix, tmp / "transform.tfm")
    files.append("transform.tfm")
    bar.update(1)
    bar.close()
    from medfuse.metrics.consistency import fused_slices_ise

    ise = fused_slices_ise(slices_u8, prep.luma[0], prep.luma[1])
    if opt.review and "png" in formats:
        from medfuse.fusion.review import write_fuse_review

        write_fuse_review(
            tmp / "review.png",
            prep.slices,
            slices_u8,
            prep.grid.meta["slice_affine"],
            vols=inp.vols,
            paths=inp.paths,
            windows=prep.windows,
            functional=inp.functional,
            palette=opt.palette,
            method=method_name,
            task=inp.task,
            registration={
                "kind": reg.result.kind,
                "why": reg.why,
                "mi": prep.mutual_information,
            },
        )
        files.append("review.png")
    return files, ise


def _write_dicom(
    inp: Inputs,
    reg: Registered,
    prep: Prepared,
    display: np.ndarray,
    method_name: str,
    folder: Path,
) -> list[Path]:
    """The DICOM Secondary Capture series: identity of the reference (else the other) input,
    references to the source instances each fused slice overlaps."""
    from medfuse import __version__
    from medfuse.io.writers import write_secondary_capture

    folder.mkdir()
    ref, mov = inp.vols[inp.ref], inp.vols[inp.mov]
    identity_vol = ref if ref.meta.get("dicom_datasets") else mov
    identity = (identity_vol.meta.get("dicom_datasets") or [None])[0]
    sources = []
    mov_matrix = reg.matrix if reg.matrix is not None else np.eye(4)
    for v, m in ((ref, np.eye(4)), (mov, mov_matrix)):
        hdrs = v.meta.get("dicom_datasets") or []
        if hdrs:
            sources.append(
                {
                    "headers": hdrs,
                    "series_instance_uid": v.meta.get("series_instance_uid"),
                    "study_instance_uid": v.meta.get("study_instance_uid"),
                    "world_to_voxel": np.linalg.inv(m @ v.affine.numpy()),
                }
            )
    desc = _description(inp)
    series_number = (
        900 + int(getattr(identity, "SeriesNumber", 0) or 0) if identity is not None else 900
    )
    return write_secondary_capture(
        display,
        prep.grid.meta["slice_affine"],
        folder,
        identity,
        sources,
        series_description=f"medfuse {method_name}: {desc}",
        derivation=(
            f"medfuse {__version__} {method_name} fusion of {desc}; registration "
            f"{reg.result.kind}; reference grid {'ab'[inp.ref]}"
        ),
        series_number=series_number,
        software_version=f"medfuse {__version__}",
    )


def _description(inp: Inputs) -> str:
    return " + ".join(
        str(v.meta.get("series_description") or v.meta.get("modality") or Path(p).name)
        for v, p in zip(inp.vols, inp.paths)
    )
