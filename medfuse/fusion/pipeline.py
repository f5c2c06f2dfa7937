"""``fuse_volumes``: the main medfuse job, from two volumes to DICOM SC, NIfTI and PNG outputs.

The job is a short sequence of named stages, each timed in run.json::

    load      both inputs, geometry-true; roles, task, reference grid   (volume/load.py)
    register  when the frames of reference differ or when asked          (volume/register.py)
    prepare   window, resample onto the reference grid, slice, luma/chroma (volume/prepare.py)
    fuse      slice batches on the device, chroma put back              (stages.py, shared)
    write     SC series, NIfTI, PNG montage, transform                  (volume/write.py)
    record    run.json                                                  (stages.py, shared)

all inside a temporary folder renamed into place at the end. The 2D-folder job
(:func:`~medfuse.fusion.folders.fuse_folders`) runs the same shared stages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medfuse.errors import InputError

from .options import FORMATS, FuseOptions, parse_window
from .stages import (
    StageClock,
    auto_method,
    build_method,
    fuse_stage,
    resolve_method_name,
    run_record,
    write_record,
)
from .volume.load import FUNCTIONAL_MODALITIES, Inputs, describe_input, infer_task, load_stage
from .volume.prepare import Prepared, prepare_stage
from .volume.register import MIN_OVERLAP, Registered, register_stage
from .volume.write import write_stage

__all__ = [
    "FuseOptions",
    "FuseResult",
    "fuse_volumes",
    "parse_window",
    "infer_task",
    "FORMATS",
    "FUNCTIONAL_MODALITIES",
    "MIN_OVERLAP",
]

#: the method ``--method auto`` picks for a task (kept under its old private name).
_auto_method = auto_method


@dataclass
class FuseResult:
    """What :func:`fuse_volumes` wrote.

    Attributes:
        out_dir: the output folder.
        files: written files relative to ``out_dir``.
        run: the run.json record.
    """

    out_dir: Path
    files: list[str] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)


def _record_details(
    inp: Inputs,
    reg: Registered,
    prep: Prepared,
    fused_shape: tuple[int, ...],
    device: torch.device,
    batch_size: int,
    formats: tuple[str, ...],
    opt: FuseOptions,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The volume job's run.json entries: what was read, and how it ran."""
    n_slices, _, hh, ww = fused_shape
    inputs = {
        "inputs": [describe_input(v, p, ab) for v, p, ab in zip(inp.vols, inp.paths, "ab")],
        "patient_check": inp.patient,
        "reference_grid": "ab"[inp.ref],
        "moving": "ab"[inp.mov],
        "functional": {"a": inp.functional[0], "b": inp.functional[1]},
        "palette": opt.palette.upper() if any(inp.functional) else None,
    }
    details = {
        "device": str(device),
        "batch_size": batch_size,
        "axis": opt.axis,
        "n_slices": n_slices,
        "slice_size": [hh, ww],
        "registration": {
            **reg.result.to_dict(),
            "why": reg.why,
            "transform_file": "transform.tfm",
            "mutual_information_nats": prep.mutual_information,
            "field_of_view_overlap": round(reg.overlap, 4),
        },
        "windows": {"a": prep.windows[0], "b": prep.windows[1]},
        "formats": list(formats),
    }
    return inputs, details


def fuse_volumes(
    a: str | Path,
    b: str | Path,
    out_dir: str | Path,
    options: FuseOptions | None = None,
    log: Callable[[str], None] | None = None,
) -> FuseResult:
    """Fuse two volumes and write the outputs (see docs/fuse.md).

    Args:
        a: first input (CT, PET or SPECT by convention): DICOM series folder or file, NIfTI, MHA,
            NRRD.
        b: second input (MR by convention).
        out_dir: output folder (created atomically).
        options: :class:`FuseOptions`.
        log: called with one-line progress messages (no patient identity).

    Returns:
        :class:`FuseResult`.

    Raises:
        InputError, GeometryError, RegistrationError, OutputError, WeightsError: one clear line.
    """
    from medfuse.fusion.slices import auto_batch_size, resolve_device
    from medfuse.io.atomic import AtomicOutputDir, check_output_dir

    opt = options or FuseOptions()
    clock = StageClock(opt.progress, log)
    out = check_output_dir(out_dir, opt.overwrite, inputs=(a, b))
    opt.check()
    device = resolve_device(opt.device)
    for p in (a, b):
        if not Path(p).exists():
            raise InputError(f"{p}: no such file or folder")
    name, method = _early_method(opt, device)

    with AtomicOutputDir(out, overwrite=opt.overwrite, inputs=(a, b), command="fuse") as tmp:
        with clock.stage("load"):
            inp = load_stage(a, b, opt, clock)
        name = name or resolve_method_name(opt, inp.task)
        method = method or build_method(name, opt, inp.task, device)
        _log_inputs(clock, inp, name)
        with clock.stage("register"):
            reg = register_stage(inp, opt, clock)
        with clock.stage("prepare"):
            prep = prepare_stage(inp, reg, opt)
            if prep.mutual_information:
                mi = prep.mutual_information
                clock.log(f"mutual information (nats): {mi['before']:.4f} -> {mi['after']:.4f}")
        n_slices, _, hh, ww = prep.luma[0].shape
        bs = opt.batch_size or auto_batch_size(method, hh, ww, n_slices)
        with clock.stage("fuse"):
            bar = clock.bar("fuse", n_slices)
            fused_y, fused = fuse_stage(
                method, prep.luma[0], prep.luma[1], prep.chroma, bs, bar.update
            )
            bar.close()
        has_dicom = any(v.meta.get("dicom_datasets") for v in inp.vols)
        formats = opt.formats or (FORMATS if has_dicom else ("nifti", "png"))
        with clock.stage("write"):
            files, ise = write_stage(inp, reg, prep, fused, name, formats, opt, tmp, clock)
        inputs, details = _record_details(
            inp, reg, prep, tuple(fused_y.shape), device, bs, formats, opt
        )
        details["interslice_excess"] = ise  # inter-slice excess, docs/metrics.md
        files.append("run.json")
        run = run_record("medfuse fuse", inputs, inp.task, method, details, files, tmp, opt, clock)
        write_record(run, tmp)
    clock.log(f"wrote {len(files)} files to {out} in {clock.times['total']:.1f} s")
    return FuseResult(out_dir=out, files=files, run=run)


def _early_method(opt: FuseOptions, device: torch.device) -> tuple[str | None, Any]:
    """Check a named method before any heavy work; build a network whose weights are known
    already (``weights`` or ``task`` given), so weights problems show first."""
    if opt.method == "auto" and not opt.weights:
        return None, None  # depends on the task the inputs imply
    name = resolve_method_name(opt, opt.task)
    from medfuse.fusion.base import METHODS
    from medfuse.fusion.network import NetworkFusion

    if issubclass(METHODS[name], NetworkFusion) and (opt.weights or opt.task):
        return name, build_method(name, opt, opt.task, device)
    return name, None


def _log_inputs(clock: StageClock, inp: Inputs, method_name: str) -> None:
    v, m = inp.vols, inp.modalities
    clock.log(
        f"inputs: a={m[0] or '?'} {tuple(v[0].shape[1:])}, b={m[1] or '?'} "
        f"{tuple(v[1].shape[1:])}; reference grid: {'ab'[inp.ref]}; method: {method_name}"
    )
