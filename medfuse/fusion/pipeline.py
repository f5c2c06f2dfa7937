"""``fuse_volumes``: the main medfuse job, from two volumes to DICOM SC, NIfTI and PNG outputs.

The job is a sequence of stages (each timed in run.json; :mod:`medfuse.fusion.stages` holds the
ones the 2D-folder job shares)::

    load      both inputs, geometry-true (:func:`load_stage`)
    register  when the frames of reference differ or when asked (:func:`register_stage`)
    prepare   window each modality on its own grid, bring the moving one onto the reference grid
              in physical space, cut slices, split a functional input into luma and chroma
              (:func:`prepare_stage`)
    fuse      slice batches on the device, chroma put back (:func:`~.stages.fuse_stage`)
    write     SC series, NIfTI, PNG montage, transform (:func:`write_stage`)
    record    run.json (:func:`~.stages.run_record`)

all inside a temporary folder renamed into place at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medfuse.errors import GeometryError, InputError

from .options import FORMATS, FuseOptions, parse_window
from .stages import (
    StageClock,
    auto_method,
    build_method,
    fuse_stage,
    resolve_method_name,
    run_record,
    split_colour,
    write_record,
)

__all__ = [
    "FuseOptions",
    "FuseResult",
    "Inputs",
    "Prepared",
    "fuse_volumes",
    "load_stage",
    "register_stage",
    "prepare_stage",
    "write_stage",
    "parse_window",
    "infer_task",
    "FORMATS",
    "FUNCTIONAL_MODALITIES",
    "MIN_OVERLAP",
]

#: modalities colourised as the functional input.
FUNCTIONAL_MODALITIES = ("PT", "NM")
#: fraction of the reference grid the moving image must cover after registration.
MIN_OVERLAP = 0.01
#: with unknown frames of reference, "auto" registers when less than this fraction overlaps.
AUTO_REGISTER_OVERLAP = 0.1

_TASK_BY_MODALITY = {"CT": "ct-mri", "PT": "pet-mri", "NM": "spect-mri"}

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
    """

    vols: list[Any]
    paths: tuple[str, str]
    modalities: tuple[str, str]
    functional: tuple[bool, bool]
    task: str | None
    ref: int

    @property
    def mov(self) -> int:
        """Index of the moving input."""
        return 1 - self.ref


@dataclass
class Registered:
    """The register stage's result: the transform, why it was (not) computed, the overlap."""

    result: Any
    why: str
    overlap: float

    @property
    def matrix(self) -> np.ndarray | None:
        """The 4x4 moving -> reference pre-affine, None without registration."""
        return None if self.result.kind == "none" else self.result.matrix


@dataclass
class Prepared:
    """The prepare stage's result: what the method fuses.

    Attributes:
        luma: per input (a, b): (N, 1, H, W) float32 in [0, 1] on the reference grid.
        chroma: (N, 2, H, W) Cb/Cr of the functional input, or None.
        grid: the reference input's slices (MetaTensor (N, C, H, W)) carrying the slice geometry
            (``meta["slice_affine"]``) the writers need.
        windows: per input, the window applied (run.json).
        mutual_information: MI (nats) before/after registration, None without registration.
    """

    luma: list[torch.Tensor]
    chroma: torch.Tensor | None
    grid: Any
    windows: list[dict[str, Any]]
    mutual_information: dict[str, float] | None


def infer_task(modality_a: str, modality_b: str) -> str | None:
    """The fusion task of two modalities ("ct-mri", "pet-mri", "spect-mri"), or None."""
    ma, mb = modality_a.upper(), modality_b.upper()
    if mb == "MR" and ma in _TASK_BY_MODALITY:
        return _TASK_BY_MODALITY[ma]
    if ma == "MR" and mb in _TASK_BY_MODALITY:
        return _TASK_BY_MODALITY[mb]
    return None


def _describe(vol: Any, path: str, role: str) -> dict[str, Any]:
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
    }


def _check_3d(vol: Any, path: str) -> None:
    small = [int(s) for s in vol.shape[1:] if int(s) < 2]
    if small:
        raise GeometryError(
            f"{path}: is a 2D image (shape {tuple(int(v) for v in vol.shape[1:])}); fuse two 3D "
            "volumes, or two folders of matching 2D images"
        )


def _pooled_reference(ref: Any, max_size: int = 96) -> Any:
    """A coarse copy of the reference grid (average-pooled) for quick MI reports."""
    from monai.data import MetaTensor

    factors = [max(1, int(np.ceil(s / max_size))) for s in ref.shape[1:]]
    data = torch.nn.functional.avg_pool3d(
        ref.as_tensor()[None].float(), kernel_size=factors, stride=factors, ceil_mode=True
    )[0]
    scale = np.diag([*factors, 1]).astype(np.float64)
    shift = np.eye(4)
    shift[:3, 3] = (np.asarray(factors) - 1) / 2.0
    aff = ref.affine.numpy() @ shift @ scale
    return MetaTensor(data, affine=torch.as_tensor(aff), meta={"source_path": ""})


def _mi_report(ref_w: Any, mov_w: Any, matrix: np.ndarray) -> dict[str, float]:
    """Mutual information (nats) of the windowed pair before and after registration.

    Measured on a coarse copy of the reference grid, over the voxels the moving image covers.
    """
    from medfuse.registration import mutual_information
    from medfuse.transforms import ResampleToReference

    coarse = _pooled_reference(ref_w)
    rs = ResampleToReference()
    ones = mov_w[:1] * 0 + 1
    out = {}
    for name, m in (("before", np.eye(4)), ("after", matrix)):
        moved = rs(mov_w[:1], coarse, pre_affine=m)
        inside = rs(ones, coarse, pre_affine=m)[0] > 0.5
        out[name] = round(mutual_information(coarse[0], moved[0], mask=inside), 6)
    return out


def _rotation_deg(matrix: np.ndarray) -> float:
    """Rotation angle (degrees) of the linear part of a 4x4 (its closest rotation)."""
    u, _, vt = np.linalg.svd(np.asarray(matrix)[:3, :3])
    r = u @ vt
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))))


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


def _registration(opt: FuseOptions, ref: Any, mov: Any, st: StageClock) -> Any:
    from medfuse.registration import (
        RegistrationResult,
        field_of_view_overlap,
        read_transform,
        register,
    )

    mode = str(opt.register).lower()
    if opt.transform:
        res = read_transform(opt.transform)
        st.log(f"transform: read from {opt.transform}")
        return res, "transform file"
    fa, fb = ref.meta.get("frame_of_reference_uid"), mov.meta.get("frame_of_reference_uid")
    why = f"--register {mode}"
    if mode == "auto":
        if fa and fb:
            mode = "none" if fa == fb else "rigid"
            why = "same frame of reference" if fa == fb else "different frames of reference"
        else:
            overlap = field_of_view_overlap(ref, mov)
            mode = "rigid" if overlap < AUTO_REGISTER_OVERLAP else "none"
            why = f"frame of reference unknown, fields of view overlap {overlap:.0%}"
    if mode == "none":
        return RegistrationResult(matrix=np.eye(4), kind="none", initialisation=why), why
    bar = st.bar("register", 1)
    res = register(ref, mov, kind=mode)
    bar.update(1)
    bar.close()
    st.log(
        f"registration ({mode}, {why}): Mattes MI {res.metric_initial:.4f} -> "
        f"{res.metric_final:.4f} after {res.iterations} iterations ({res.initialisation}); "
        f"rotation {_rotation_deg(res.matrix):.1f} deg, translation "
        f"({', '.join(f'{v:.1f}' for v in res.matrix[:3, 3])}) mm; saved as transform.tfm"
    )
    return res, why


def load_stage(a: str | Path, b: str | Path, opt: FuseOptions, clock: StageClock) -> Inputs:
    """Load both volumes and decide the roles: functional input, task, reference grid.

    Raises:
        InputError: unreadable input, or two functional inputs.
        GeometryError: an input that is not 3D, or inconsistent geometry.
    """
    from medfuse.io import load_volume

    paths = (str(a), str(b))
    bar = clock.bar("load", 2)
    vols = []
    for p, uid in zip(paths, (opt.series_a, opt.series_b)):
        vols.append(load_volume(p, series_uid=uid))
        bar.update(1)
    bar.close()
    for v, p in zip(vols, paths):
        _check_3d(v, p)
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
        ref=_choose_reference(opt, mods, functional),
    )


def register_stage(inp: Inputs, opt: FuseOptions, clock: StageClock) -> Registered:
    """Register the moving input to the reference (or read ``opt.transform``, or skip).

    Raises:
        RegistrationError: registration failed.
        GeometryError: the fields of view do not overlap afterwards.
    """
    from medfuse.registration import field_of_view_overlap

    ref, mov = inp.vols[inp.ref], inp.vols[inp.mov]
    res, why = _registration(opt, ref, mov, clock)
    overlap = field_of_view_overlap(ref, mov, res.matrix)
    if overlap < MIN_OVERLAP:
        raise GeometryError(
            f"{inp.paths[inp.mov]} and {inp.paths[inp.ref]}: fields of view do not overlap after "
            f"registration ({overlap:.1%} of the reference grid covered)"
        )
    return Registered(result=res, why=why, overlap=overlap)


def prepare_stage(inp: Inputs, reg: Registered, opt: FuseOptions) -> Prepared:
    """Window each input on its own grid, resample the moving one onto the reference grid, cut
    slices along ``opt.axis`` and split a functional input into luma and chroma."""
    from medfuse.transforms import ExtractSlices, ResampleToReference
    from medfuse.transforms.colour import rgb_to_ycbcr

    windows = [parse_window(opt.window_a), parse_window(opt.window_b)]
    applied: list[dict[str, Any]] = [{}, {}]
    windowed = []
    for n, v in enumerate(inp.vols):
        x = v
        if x.shape[0] == 3 and not inp.functional[n]:  # RGB anatomical input: use its luma
            x = rgb_to_ycbcr(x, dim=0)[:1]
        if x.shape[0] == 3:  # an already coloured functional input: window each channel as is
            lo, hi = float(x.min()), float(x.max())
            y = (x - lo) / max(hi - lo, 1e-6)
            y.meta["window"] = {"preset": "rgb range", "lower": lo, "upper": hi}
        else:
            y = windows[n](x)
        applied[n] = dict(y.meta.get("window", {}))
        windowed.append(y)
    ref_w, mov_w = windowed[inp.ref], windowed[inp.mov]
    mi_report = None
    if reg.matrix is not None:
        mi_report = _mi_report(
            ref_w[:1] if ref_w.shape[0] == 1 else rgb_to_ycbcr(ref_w, 0)[:1],
            mov_w[:1] if mov_w.shape[0] == 1 else rgb_to_ycbcr(mov_w, 0)[:1],
            reg.matrix,
        )
    moved = ResampleToReference()(mov_w, ref_w, pre_affine=reg.matrix)
    on_grid: list[Any] = [None, None]
    on_grid[inp.ref], on_grid[inp.mov] = ref_w, moved
    cut = ExtractSlices(opt.axis)
    sl = [cut(v) for v in on_grid]
    luma: list[torch.Tensor] = []
    chroma = None
    for n in range(2):
        y, c = split_colour(sl[n].as_tensor(), inp.functional[n], opt.palette)
        luma.append(y)
        chroma = c if c is not None else chroma
    return Prepared(
        luma=luma, chroma=chroma, grid=sl[inp.ref], windows=applied, mutual_information=mi_report
    )


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
) -> list[str]:
    """Write the fused slices: DICOM SC series, NIfTI, PNG montage (as ``formats`` asks) and the
    transform, into ``tmp``.

    Args:
        fused: (N, C, H, W) float32 in [0, 1] on the reference grid's slices.

    Returns:
        the written paths relative to ``tmp`` (run.json not included).
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
    return files


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
        "inputs": [_describe(v, p, "ab"[n]) for n, (v, p) in enumerate(zip(inp.vols, inp.paths))],
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
    out = check_output_dir(out_dir, opt.overwrite)
    opt.check()
    device = resolve_device(opt.device)
    for p in (a, b):
        if not Path(p).exists():
            raise InputError(f"{p}: no such file or folder")
    name, method = _early_method(opt, device)

    with AtomicOutputDir(out, overwrite=opt.overwrite) as tmp:
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
            fused_y, fused = fuse_stage(method, *prep.luma, prep.chroma, bs, bar.update)
            bar.close()
        has_dicom = any(v.meta.get("dicom_datasets") for v in inp.vols)
        formats = opt.formats or (FORMATS if has_dicom else ("nifti", "png"))
        with clock.stage("write"):
            files = write_stage(inp, reg, prep, fused, name, formats, opt, tmp, clock)
        inputs, details = _record_details(
            inp, reg, prep, tuple(fused_y.shape), device, bs, formats, opt
        )
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


