"""``fuse_volumes``: the main medfuse job, from two volumes to DICOM SC, NIfTI and PNG outputs.

Stages (each timed in run.json): load both inputs -> register (when the frames of reference differ
or when asked) -> prepare (window each modality on its own grid, bring the moving one onto the
reference grid in physical space, cut slices, colourise the functional input and take its luma) ->
fuse slice batches on the device -> write (SC series, NIfTI, PNG montage, transform, run.json) into a
temporary folder renamed into place at the end.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medfuse.errors import GeometryError, InputError

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

#: output formats ``--format`` accepts.
FORMATS = ("dicom", "nifti", "png")
#: modalities colourised as the functional input.
FUNCTIONAL_MODALITIES = ("PT", "NM")
#: fraction of the reference grid the moving image must cover after registration.
MIN_OVERLAP = 0.01
#: with unknown frames of reference, "auto" registers when less than this fraction overlaps.
AUTO_REGISTER_OVERLAP = 0.1

_TASK_BY_MODALITY = {"CT": "ct-mri", "PT": "pet-mri", "NM": "spect-mri"}


@dataclass
class FuseOptions:
    """Options of :func:`fuse_volumes` (the ``medfuse fuse`` flags).

    Attributes:
        method: fusion method name, or "auto" (a shipped network when its validation figures
            beat the classical baselines, see ``_auto_method``; else "laplacian").
        task: "ct-mri" | "pet-mri" | "spect-mri" (inferred from the modalities when None).
        weights: weights file for a network method.
        reference: "a", "b" or "auto" (the anatomical input: the non-functional one, else the MR).
        register: "auto" | "rigid" | "affine" | "none".
        transform: ITK transform file to apply instead of registering (moving -> reference as ITK
            writes it: fixed -> moving, LPS).
        axis: "axial" | "coronal" | "sagittal" | 0 | 1 | 2.
        device: "auto" | "cpu" | "cuda" | "cuda:N".
        batch_size: slices per batch (None: from free memory).
        window_a, window_b: window specs (see :func:`parse_window`), None for the modality preset.
        functional: "a" or "b" to colourise that input (PET and SPECT are functional anyway).
        palette: DICOM palette of the functional input.
        formats: subset of :data:`FORMATS` (None: all when an input is DICOM, else nifti and png).
        overwrite: replace an existing non-empty output folder.
        progress: show progress bars.
        series_a, series_b: SeriesInstanceUID to pick from folders holding several series.
        skip_unreadable: fuse a DICOM series without its unreadable files (recorded in run.json)
            instead of failing.
        allow_different_patients: fuse inputs whose PatientID (or PatientBirthDate) differ.
        review: write review.png (with the png format): A | B | fused | alignment check.
    """

    method: str = "auto"
    task: str | None = None
    weights: str | None = None
    reference: str = "auto"
    register: str = "auto"
    transform: str | None = None
    axis: str | int = "axial"
    device: str = "auto"
    batch_size: int | None = None
    window_a: str | None = None
    window_b: str | None = None
    functional: str | None = None
    palette: str = "PET"
    formats: tuple[str, ...] | None = None
    overwrite: bool = False
    progress: bool = True
    series_a: str | None = None
    series_b: str | None = None
    skip_unreadable: bool = False
    allow_different_patients: bool = False
    review: bool = True


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


def parse_window(spec: str | None) -> Any:
    """A :class:`~medfuse.transforms.Window` from a ``--window-a/--window-b`` spec.

    Args:
        spec: None or "auto" (modality preset), a preset name ("ct-bone", "mr", "dicom", ...),
            "LEVEL:WIDTH" (e.g. "40:400") or "pLO:HI" percentiles (e.g. "p1:99").

    Raises:
        InputError: a malformed spec.
    """
    from medfuse.transforms import Window

    if spec is None or spec == "auto":
        return Window("auto")
    text = str(spec).strip()
    try:
        if text.lower().startswith("p") and ":" in text:
            lo, hi = (float(v) for v in text[1:].split(":"))
            return Window(None, percentiles=(lo, hi))
        if ":" in text:
            level, width = (float(v) for v in text.split(":"))
            return Window(None, level=level, width=width)
    except ValueError:
        raise InputError(
            f"bad window '{spec}': use a preset, LEVEL:WIDTH (40:400) or pLO:HI (p1:99)"
        ) from None
    return Window(text)


def infer_task(modality_a: str, modality_b: str) -> str | None:
    """The fusion task of two modalities ("ct-mri", "pet-mri", "spect-mri"), or None."""
    ma, mb = modality_a.upper(), modality_b.upper()
    if mb == "MR" and ma in _TASK_BY_MODALITY:
        return _TASK_BY_MODALITY[ma]
    if ma == "MR" and mb in _TASK_BY_MODALITY:
        return _TASK_BY_MODALITY[mb]
    return None


def _auto_method(task: str | None) -> str:
    """The method ``--method auto`` picks for ``task``.

    A shipped network is picked only when its validation figures (``medfuse/weights/quality.json``,
    the model cards' table) beat every classical baseline on at least 4 of the 6 metrics of the
    ``paper`` profile (:func:`medfuse.nets.quality.auto_method`); otherwise the Laplacian pyramid,
    the best classical all-rounder on the validation split. ECFusion is tried before S3IMFusion.
    """
    from medfuse.nets.quality import auto_method

    return auto_method(task)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    from medfuse import __version__

    out = {"medfuse": __version__, "python": platform.python_version()}
    for pkg in (
        "torch",
        "monai",
        "SimpleITK",
        "highdicom",
        "pydicom",
        "nibabel",
        "numpy",
        "PyWavelets",
    ):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


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
        "skipped_files": list(vol.meta.get("skipped_files") or []),
    }


def _patient_check(vols: list[Any], paths: tuple[str, str], allow: bool) -> dict[str, Any]:
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
    differ = [k for k, vals in (("PatientID", ids), ("PatientBirthDate", births))
              if k in compared and vals[0] != vals[1]]
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
    if not bool(torch.isfinite(vol.as_tensor()).any()):
        raise InputError(f"{path}: no finite voxel value (the image is all NaN or infinite)")


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


class _Stages:
    """Stage timer + progress bars."""

    def __init__(self, progress: bool, log: Callable[[str], None] | None) -> None:
        self.progress = progress
        self.log = log or (lambda s: None)
        self.times: dict[str, float] = {}

    def bar(self, desc: str, total: int) -> Any:
        from tqdm.auto import tqdm

        return tqdm(
            total=total,
            desc=f"{desc:<9}",
            unit="it",
            disable=not self.progress,
            leave=True,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def timed(self, name: str, t0: float) -> None:
        self.times[name] = round(time.perf_counter() - t0, 4)


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
    if opt.reference != "auto":
        raise InputError(f"--reference must be a, b or auto, not '{opt.reference}'")
    if functional[0] != functional[1]:
        return 1 if functional[0] else 0
    if (mods[0] == "MR") != (mods[1] == "MR"):
        return 0 if mods[0] == "MR" else 1
    return 1


def _registration(opt: FuseOptions, ref: Any, mov: Any, paths: tuple[str, str], st: _Stages) -> Any:
    from medfuse.registration import (
        RegistrationResult,
        field_of_view_overlap,
        read_transform,
        register,
    )

    mode = str(opt.register).lower()
    if mode not in ("auto", "rigid", "affine", "none"):
        raise InputError(f"--register must be auto, rigid, affine or none, not '{opt.register}'")
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
    if res.warning:  # shown even with --quiet: the moving image was left where it was
        print(f"medfuse: warning: {res.warning}", file=sys.stderr, flush=True)
    st.log(
        f"registration ({mode}, {why}): Mattes MI {res.metric_initial:.4f} -> "
        f"{res.metric_final:.4f} after {res.iterations} iterations (best of {len(res.starts)} "
        f"starts: {res.initialisation}); "
        f"rotation {_rotation_deg(res.matrix):.1f} deg, translation "
        f"({', '.join(f'{v:.1f}' for v in res.matrix[:3, 3])}) mm; saved as transform.tfm"
    )
    return res, why


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
    from medfuse.fusion.base import get_method
    from medfuse.fusion.slices import auto_batch_size, fuse_slices, resolve_device
    from medfuse.io import load_volume
    from medfuse.io.atomic import AtomicOutputDir, check_output_dir
    from medfuse.io.checksums import output_hashes
    from medfuse.registration import field_of_view_overlap, write_transform
    from medfuse.transforms import ExtractSlices, ResampleToReference, StackSlices
    from medfuse.transforms.colour import colourise, palette_lut, rgb_to_ycbcr, ycbcr_to_rgb

    opt = options or FuseOptions()
    st = _Stages(opt.progress, log)
    t_all = time.perf_counter()
    out = check_output_dir(out_dir, opt.overwrite, inputs=(a, b))
    formats = tuple(opt.formats) if opt.formats else None
    if formats is not None:
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            raise InputError(f"--format takes a comma list of {', '.join(FORMATS)}, got {formats}")
    if opt.functional not in (None, "a", "b"):
        raise InputError(f"--functional must be a or b, not '{opt.functional}'")
    palette_lut(opt.palette)  # unknown palette: fail before any work
    win_a, win_b = parse_window(opt.window_a), parse_window(opt.window_b)
    device = resolve_device(opt.device)
    paths = (str(a), str(b))
    for p in paths:
        if not Path(p).exists():
            raise InputError(f"{p}: no such file or folder")

    from medfuse.fusion.base import METHODS, list_methods
    from medfuse.fusion.network import NetworkFusion

    known = list_methods()  # imports (registers) the built-in methods
    if opt.method == "auto" and opt.weights:  # a weights file names its own network
        opt = replace(opt, method="network")
    if opt.method != "auto" and opt.method not in known:
        raise InputError(
            f"unknown fusion method '{opt.method}' (known: auto, {', '.join(known)})"
        )
    network = opt.method != "auto" and issubclass(METHODS[opt.method], NetworkFusion)
    if not network and opt.weights:
        raise InputError(f"--weights is for network methods; '{opt.method}' takes none")
    method = None
    if network and (opt.weights or opt.task):  # weights problems show before any heavy work
        method = get_method(opt.method, device=device, task=opt.task, weights=opt.weights)

    with AtomicOutputDir(out, overwrite=opt.overwrite, inputs=(a, b), command="fuse") as tmp:
        # ---- load
        t0 = time.perf_counter()
        bar = st.bar("load", 2)
        vols = []
        for p, uid in zip(paths, (opt.series_a, opt.series_b)):
            vols.append(load_volume(p, series_uid=uid, skip_unreadable=opt.skip_unreadable))
            bar.update(1)
        bar.close()
        for v, p in zip(vols, paths):
            _check_3d(v, p)
            if v.meta.get("skipped_files"):
                st.log(f"{p}: skipped {len(v.meta['skipped_files'])} unreadable file(s)")
        patient = _patient_check(vols, paths, opt.allow_different_patients)
        st.timed("load", t0)
        mods = tuple(str(v.meta.get("modality") or "").upper() for v in vols)
        functional = tuple(
            (opt.functional == ab) or (m in FUNCTIONAL_MODALITIES) for ab, m in zip("ab", mods)
        )
        if all(functional):
            raise InputError(
                f"{paths[0]} and {paths[1]}: both inputs are functional ({mods[0]}, {mods[1]}); fuse a "
                "functional image with an anatomical one"
            )
        task = opt.task or infer_task(*mods)
        method_name = opt.method if opt.method != "auto" else _auto_method(task)
        if method is None:
            method_opts: dict[str, Any] = {}
            if issubclass(METHODS[method_name], NetworkFusion):
                method_opts = {"task": task, "weights": opt.weights}
            method = get_method(method_name, device=device, **method_opts)

        ri = _choose_reference(opt, mods, functional)
        mi = 1 - ri
        ref, mov = vols[ri], vols[mi]
        st.log(
            f"inputs: a={mods[0] or '?'} {tuple(vols[0].shape[1:])}, b={mods[1] or '?'} "
            f"{tuple(vols[1].shape[1:])}; reference grid: {'ab'[ri]}; method: {method_name}"
        )

        # ---- register
        t0 = time.perf_counter()
        reg, why = _registration(opt, ref, mov, paths, st)
        overlap = field_of_view_overlap(ref, mov, reg.matrix)
        if overlap < MIN_OVERLAP:
            raise GeometryError(
                f"{paths[mi]} and {paths[ri]}: fields of view do not overlap after registration "
                f"({overlap:.1%} of the reference grid covered)"
            )
        st.timed("register", t0)

        # ---- prepare: window on own grids, resample the moving one, slice
        t0 = time.perf_counter()
        windows = [win_a, win_b]
        wins: list[dict[str, Any]] = [{}, {}]
        windowed = []
        for n, v in enumerate(vols):
            x = v
            if x.shape[0] == 3 and not functional[n]:  # RGB anatomical input: use its luma
                x = rgb_to_ycbcr(x, dim=0)[:1]
            if x.shape[0] == 3:  # an already coloured functional input: window each channel as is
                lo, hi = float(x.min()), float(x.max())
                y = (x - lo) / max(hi - lo, 1e-6)
                y.meta["window"] = {"preset": "rgb range", "lower": lo, "upper": hi}
            else:
                y = windows[n](x)
            wins[n] = dict(y.meta.get("window", {}))
            windowed.append(y)
        ref_w, mov_w = windowed[ri], windowed[mi]
        mi_report = (
            _mi_report(
                ref_w[:1] if ref_w.shape[0] == 1 else rgb_to_ycbcr(ref_w, 0)[:1],
                mov_w[:1] if mov_w.shape[0] == 1 else rgb_to_ycbcr(mov_w, 0)[:1],
                reg.matrix,
            )
            if reg.kind != "none"
            else None
        )
        if mi_report:
            st.log(
                f"mutual information (nats): {mi_report['before']:.4f} -> {mi_report['after']:.4f}"
            )
        moved = ResampleToReference()(
            mov_w, ref_w, pre_affine=reg.matrix if reg.kind != "none" else None
        )
        on_grid = [None, None]
        on_grid[ri], on_grid[mi] = ref_w, moved
        cut = ExtractSlices(opt.axis)
        sl = [cut(v) for v in on_grid]
        geo_meta = sl[ri].meta
        rgb_parts = None
        src = []
        for n in range(2):
            s = sl[n].as_tensor()
            if functional[n]:
                rgb = s if s.shape[1] == 3 else colourise(s, opt.palette)
                ycc = rgb_to_ycbcr(rgb)
                rgb_parts = ycc[:, 1:]
                s = ycc[:, :1]
            src.append(s.contiguous())
        n_slices, _, hh, ww = src[0].shape
        st.timed("prepare", t0)

        # ---- fuse
        t0 = time.perf_counter()
        bs = opt.batch_size or auto_batch_size(method, hh, ww, n_slices)
        bar = st.bar("fuse", n_slices)
        fused_y = fuse_slices(method, src[0], src[1], batch_size=bs, progress=bar.update)
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        st.timed("fuse", t0)
        fused = fused_y if rgb_parts is None else ycbcr_to_rgb(torch.cat([fused_y, rgb_parts], 1))

        # ---- write
        t0 = time.perf_counter()
        has_dicom = any(v.meta.get("dicom_datasets") for v in vols)
        formats = formats or (FORMATS if has_dicom else ("nifti", "png"))
        from medfuse.io.writers import to_uint8, write_montage, write_nifti, write_secondary_capture

        slices_u8 = to_uint8(fused)  # (N, C, H, W)
        display = slices_u8[:, 0] if slices_u8.shape[1] == 1 else np.moveaxis(slices_u8, 1, -1)
        result = FuseResult(out_dir=out)
        n_files = (
            len(display) * ("dicom" in formats) + ("nifti" in formats) + ("png" in formats) + 2
        )
        bar = st.bar("write", n_files)
        desc = " + ".join(
            str(v.meta.get("series_description") or v.meta.get("modality") or Path(p).name)
            for v, p in zip(vols, paths)
        )
        files: list[str] = []
        if "dicom" in formats:
            (tmp / "dicom").mkdir()
            identity_vol = ref if ref.meta.get("dicom_datasets") else mov
            identity = (identity_vol.meta.get("dicom_datasets") or [None])[0]
            sources = []
            for v, m in ((ref, np.eye(4)), (mov, reg.matrix if reg.kind != "none" else np.eye(4))):
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
            from medfuse import __version__

            written = write_secondary_capture(
                display,
                geo_meta["slice_affine"],
                tmp / "dicom",
                identity,
                sources,
                series_description=f"medfuse {method_name}: {desc}",
                derivation=(
                    f"medfuse {__version__} {method_name} fusion of {desc}; registration "
                    f"{reg.kind}; reference grid {'ab'[ri]}"
                ),
                series_number=900 + int(getattr(identity, "SeriesNumber", 0) or 0)
                if identity is not None
                else 900,
                software_version=f"medfuse {__version__}",
            )
            files += [f"dicom/{p.name}" for p in written]
            bar.update(len(written))
        vol = StackSlices(opt.axis)(torch.from_numpy(slices_u8), sl[ri])
        if "nifti" in formats:
            write_nifti(vol.as_tensor().numpy(), ref.affine.numpy(), tmp / "fused.nii.gz")
            files.append("fused.nii.gz")
            bar.update(1)
        if "png" in formats:
            write_montage(display, tmp / "preview.png")
            files.append("preview.png")
            bar.update(1)
        write_transform(reg.matrix, tmp / "transform.tfm")
        files.append("transform.tfm")
        bar.update(1)
        from medfuse.fusion.review import write_fuse_review
        from medfuse.metrics.consistency import fused_slices_ise

        ise = fused_slices_ise(slices_u8, src[0], src[1])  # inter-slice excess, docs/metrics.md
        if opt.review and "png" in formats:
            write_fuse_review(tmp / "review.png", sl, slices_u8, geo_meta["slice_affine"],
                              vols=vols, paths=paths, windows=wins, functional=functional,
                              palette=opt.palette, method=method_name, task=task,
                              registration={"kind": reg.kind, "why": why, "mi": mi_report})
            files.append("review.png")
        st.timed("write", t0)
        st.times["total"] = round(time.perf_counter() - t_all, 4)
        run = {
            "command": "medfuse fuse",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "inputs": [_describe(v, p, "ab"[n]) for n, (v, p) in enumerate(zip(vols, paths))],
            "patient_check": patient,
            "reference_grid": "ab"[ri],
            "moving": "ab"[mi],
            "functional": {"a": functional[0], "b": functional[1]},
            "palette": opt.palette.upper() if any(functional) else None,
            "task": task,
            "method": method.info(),
            "device": str(device),
            "batch_size": bs,
            "axis": opt.axis,
            "n_slices": n_slices,
            "slice_size": [hh, ww],
            "registration": {
                **reg.to_dict(),
                "why": why,
                "transform_file": "transform.tfm",
                "mutual_information_nats": mi_report,
                "field_of_view_overlap": round(overlap, 4),
            },
            "windows": {"a": wins[0], "b": wins[1]},
            "interslice_excess": ise,
            "formats": list(formats),
            "outputs": files + ["run.json"],
            "output_sha256": output_hashes(tmp),
            "timings_s": dict(st.times),
            "versions": _versions(),
            "options": {k: v for k, v in asdict(opt).items() if k not in ("progress",)},
        }
        (tmp / "run.json").write_text(json.dumps(run, indent=2, default=str) + "\n")
        bar.update(1)
        bar.close()
        result.files = files + ["run.json"]
        result.run = run
    st.log(f"wrote {len(result.files)} files to {out} in {st.times['total']:.1f} s")
    return result
