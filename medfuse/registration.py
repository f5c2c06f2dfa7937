"""Rigid/affine registration of two volumes with SimpleITK (Mattes mutual information).

The result is a 4x4 world->world matrix in RAS mm (``pre_affine``) that maps the moving image's
world coordinates onto the reference's: resample with
``ResampleToReference()(moving, reference, pre_affine=result.matrix)``. SimpleITK transforms map
the other way (reference/fixed LPS points to moving LPS points); :func:`matrix_to_transform` and
:func:`transform_to_matrix` convert, and ``.tfm`` files hold the ITK (fixed -> moving, LPS) form so
3D Slicer and ITK tools read them as they expect.

Starts: every plausible starting pose is optimised: the images' own geometry (identity), their
centres of mass aligned, and -- when the two series' PatientPosition values differ -- the
centre-of-mass start turned by the rotation those positions imply (HFS vs FFS is a 180 degree turn
about the anterior-posterior axis: the phantom CT is feet-first, the MR head-first). All go
through the coarse levels, the leaders through the finest too; each result is scored on the same
full (every voxel) Mattes MI and the best one is kept. A result whose metric is not better than
the images' own geometry is refused: the identity is returned with a warning.

Determinism: the metric samples a regular grid perturbed by a fixed, non-zero seed (SimpleITK takes
seed 0 as "from the clock"), and SimpleITK runs single-threaded during registration (its metric
sums per-thread partial histograms in a run-dependent order, so two threads gave a different
transform on every run). The same inputs give a byte-identical transform on every run and machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medfuse.errors import InputError, OutputError, RegistrationError
from medfuse.io.geometry import LPS_TO_RAS

__all__ = [
    "RegistrationResult",
    "register",
    "to_sitk",
    "matrix_to_transform",
    "transform_to_matrix",
    "read_transform",
    "write_transform",
    "mutual_information",
    "patient_position_rotation",
    "field_of_view_overlap",
]

#: registration kinds accepted by :func:`register`.
KINDS = ("rigid", "affine")

#: metric sampling seed; fixed and non-zero (SimpleITK reads 0 as "seed from the clock").
DEFAULT_SEED = 20

#: starting poses :func:`register` can try (the PatientPosition turn only where positions differ).
STARTS = ("identity", "centre of mass", "centre of mass + PatientPosition turn")

#: starts whose coarse-level metric is within this of the best one are refined at full resolution.
REFINE_MARGIN = 0.02

# PatientPosition -> LPS direction of the patient axes relative to a head-first-supine patient.
# Feet-first flips left/right and head/foot; prone flips left/right and anterior/posterior.
_POSITION_FLIPS = {
    "HFS": (1, 1, 1),
    "FFS": (-1, 1, -1),
    "HFP": (-1, -1, 1),
    "FFP": (1, -1, -1),
}


@dataclass
class RegistrationResult:
    """What :func:`register` found.

    Attributes:
        matrix: (4, 4) float64 RAS world->world matrix mapping moving to reference coordinates
            (``pre_affine`` for :class:`~medfuse.transforms.ResampleToReference`).
        kind: "rigid", "affine", "file" (read with ``--transform``) or "none" (identity).
        metric_initial: Mattes MI metric (negative; lower is better) at the initial alignment.
        metric_final: Mattes MI metric after optimisation.
        iterations: optimiser iterations at the finest level.
        stop_condition: the optimiser's stop reason.
        initialisation: which start won, e.g. "centre of mass + PatientPosition turn".
        transform: the SimpleITK transform (fixed -> moving, LPS), or None.
        metric_identity: full-sample metric at the images' own geometry (no registration).
        starts: one dict per start tried: name, metric at the start and after optimisation
            (full sample), iterations, rotation (degrees) and translation (mm) of the result.
        warning: why the registration was refused (kept the identity), or "".
        seed: the metric sampling seed.
    """

    matrix: np.ndarray
    kind: str
    metric_initial: float | None = None
    metric_final: float | None = None
    iterations: int = 0
    stop_condition: str = ""
    initialisation: str = ""
    transform: Any = field(default=None, repr=False)
    metric_identity: float | None = None
    starts: list[dict[str, Any]] = field(default_factory=list)
    warning: str = ""
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for run.json)."""
        return {
            "kind": self.kind,
            "matrix_ras": np.asarray(self.matrix).round(6).tolist(),
            "metric": "Mattes mutual information (negative, lower is better)",
            "metric_initial": self.metric_initial,
            "metric_final": self.metric_final,
            "iterations": self.iterations,
            "stop_condition": self.stop_condition,
            "initialisation": self.initialisation,
            "metric_identity": self.metric_identity,
            "starts": self.starts,
            "warning": self.warning,
            "seed": self.seed,
        }


# --------------------------------------------------------------------------------------------
# Conversions


def to_sitk(vol: Any, channel: int | None = None, max_size: int | None = None) -> Any:
    """A (C, I, J, K) MetaTensor as a scalar ``SimpleITK.Image`` in LPS physical space.

    Args:
        vol: MetaTensor with a RAS ``.affine``.
        channel: channel to take (default: the mean over channels).
        max_size: if given, average-pool in-plane so no axis exceeds it (faster registration);
            the pooled image keeps the physical extent.

    Returns:
        float32 ``SimpleITK.Image`` (index order I, J, K).
    """
    import SimpleITK as sitk
    import torch

    data = vol.as_tensor() if hasattr(vol, "as_tensor") else torch.as_tensor(vol)
    data = data.detach().to(torch.float32).cpu()
    data = data.mean(0) if channel is None else data[channel]
    aff = np.asarray(vol.affine.detach().cpu().numpy(), dtype=np.float64)
    if max_size:
        factors = [max(1, int(np.ceil(s / max_size))) for s in data.shape]
        if any(f > 1 for f in factors):
            data = torch.nn.functional.avg_pool3d(
                data[None, None], kernel_size=factors, stride=factors, ceil_mode=True
            )[0, 0]
            # voxel (0,0,0) of the pooled image sits at the centre of the first block
            scale = np.diag([*factors, 1]).astype(np.float64)
            shift = np.eye(4)
            shift[:3, 3] = (np.asarray(factors) - 1) / 2.0
            aff = aff @ shift @ scale
    lps = LPS_TO_RAS @ aff
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    img = sitk.GetImageFromArray(np.ascontiguousarray(data.numpy().transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(v) for v in lps[:3, 3]])
    img.SetDirection([float(v) for v in direction.reshape(-1)])
    return img


def _sitk_to_lps_matrix(tx: Any) -> np.ndarray:
    """4x4 LPS matrix of a linear SimpleITK transform (fixed point -> moving point)."""
    import SimpleITK as sitk

    if isinstance(tx, sitk.CompositeTransform):
        m = np.eye(4)
        for n in range(tx.GetNumberOfTransforms()):  # applied last-added first
            m = m @ _sitk_to_lps_matrix(tx.GetNthTransform(n))
        return m
    if tx.GetDimension() != 3:
        raise RegistrationError(f"expected a 3D transform, got {tx.GetDimension()}D")
    name = tx.GetName()
    if name == "IdentityTransform":
        return np.eye(4)
    if name == "TranslationTransform":
        m = np.eye(4)
        m[:3, 3] = tx.GetOffset()
        return m
    try:
        a = sitk.AffineTransform(3)
        a.SetMatrix(tx.GetMatrix())
        a.SetTranslation(tx.GetTranslation())
        a.SetCenter(tx.GetCenter())
    except Exception as exc:  # noqa: BLE001 - not a linear transform
        raise RegistrationError(f"{name} is not a linear transform medfuse can apply") from exc
    mat = np.asarray(a.GetMatrix(), dtype=np.float64).reshape(3, 3)
    c = np.asarray(a.GetCenter(), dtype=np.float64)
    t = np.asarray(a.GetTranslation(), dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = mat
    m[:3, 3] = t + c - mat @ c
    return m


def transform_to_matrix(tx: Any) -> np.ndarray:
    """SimpleITK transform (fixed -> moving, LPS) -> RAS moving->reference ``pre_affine``.

    Args:
        tx: linear SimpleITK transform (Euler, Versor, Similarity, Affine, Translation, composite).

    Returns:
        (4, 4) float64.
    """
    fixed_to_moving_ras = LPS_TO_RAS @ _sitk_to_lps_matrix(tx) @ LPS_TO_RAS
    return np.linalg.inv(fixed_to_moving_ras)


def matrix_to_transform(matrix: np.ndarray) -> Any:
    """RAS moving->reference ``pre_affine`` -> ``SimpleITK.AffineTransform`` (fixed->moving LPS)."""
    import SimpleITK as sitk

    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)) or abs(np.linalg.det(m[:3, :3])) < 1e-9:
        raise RegistrationError(f"transform matrix must be an invertible 4x4, got {m.shape}")
    lps = LPS_TO_RAS @ np.linalg.inv(m) @ LPS_TO_RAS
    tx = sitk.AffineTransform(3)
    tx.SetMatrix([float(v) for v in lps[:3, :3].reshape(-1)])
    tx.SetTranslation([float(v) for v in lps[:3, 3]])
    return tx


def read_transform(path: str | os.PathLike) -> RegistrationResult:
    """Read an ITK transform file (``.tfm``/``.txt``/``.h5``, fixed -> moving, LPS).

    Raises:
        InputError: missing or unreadable file.
        RegistrationError: not a linear 3D transform.
    """
    import SimpleITK as sitk

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: transform file not found")
    try:
        tx = sitk.ReadTransform(str(p))
    except Exception as exc:  # noqa: BLE001
        msg = " ".join(str(exc).split())[:160]
        raise InputError(f"{p}: unreadable transform file ({msg})") from None
    try:
        matrix = transform_to_matrix(tx)
    except RegistrationError as exc:
        raise RegistrationError(f"{p}: {exc}") from None
    return RegistrationResult(matrix=matrix, kind="file", transform=tx, initialisation=str(p))


def write_transform(result: RegistrationResult | np.ndarray, path: str | os.PathLike) -> Path:
    """Write a registration (or a RAS ``pre_affine`` matrix) as an ITK ``.tfm`` file.

    Raises:
        OutputError: the file cannot be written (disk full, no permission, ...): SimpleITK's
            RuntimeError in one line.
    """
    import SimpleITK as sitk

    matrix = result.matrix if isinstance(result, RegistrationResult) else result
    p = Path(path)
    try:
        sitk.WriteTransform(matrix_to_transform(matrix), str(p))
    except RuntimeError as exc:
        why = " ".join(str(exc).split())[-160:]
        raise OutputError(f"{p}: cannot write the transform ({why})") from None
    return p


# --------------------------------------------------------------------------------------------
# Helpers


def patient_position_rotation(reference: Any, moving: Any) -> np.ndarray | None:
    """LPS 3x3 rotation between the patient axes of two DICOM series, from PatientPosition.

    Returns None when either series has no (or an unknown) PatientPosition or when they agree.
    """

    def pos(v: Any) -> str | None:
        hdrs = v.meta.get("dicom_datasets") or []
        if not hdrs:
            return None
        val = str(hdrs[0].get("PatientPosition", "") or "").upper()
        return val if val in _POSITION_FLIPS else None

    a, b = pos(reference), pos(moving)
    if a is None or b is None or a == b:
        return None
    return np.diag(np.asarray(_POSITION_FLIPS[a], float) * np.asarray(_POSITION_FLIPS[b], float))


def field_of_view_overlap(reference: Any, moving: Any, matrix: np.ndarray | None = None) -> float:
    """Fraction of the reference grid's voxels that fall inside the moving image's field of view.

    Args:
        reference: (C, I, J, K) MetaTensor defining the grid.
        moving: (C, I', J', K') MetaTensor.
        matrix: RAS moving->reference matrix (identity if None).

    Returns:
        float in [0, 1], measured on a coarse grid (at most 32 points per axis).
    """
    ref_aff = np.asarray(reference.affine.cpu().numpy(), dtype=np.float64)
    mov_aff = np.asarray(moving.affine.cpu().numpy(), dtype=np.float64)
    m = np.eye(4) if matrix is None else np.asarray(matrix, dtype=np.float64)
    shape = reference.shape[1:]
    axes = [np.linspace(0, s - 1, min(int(s), 32)) for s in shape]
    ijk = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    world = ijk @ ref_aff[:3, :3].T + ref_aff[:3, 3]
    to_mov = np.linalg.inv(m @ mov_aff)
    vox = world @ to_mov[:3, :3].T + to_mov[:3, 3]
    mshape = np.asarray(moving.shape[1:], dtype=np.float64)
    inside = np.all((vox >= -0.5) & (vox <= mshape - 0.5), axis=1)
    return float(inside.mean())


def mutual_information(a: Any, b: Any, bins: int = 64, mask: Any = None) -> float:
    """Histogram mutual information (nats) of two images on one grid.

    Args:
        a: array/tensor of any shape.
        b: same shape.
        bins: histogram bins per image (over each image's own range).
        mask: optional boolean array selecting the voxels to count.

    Returns:
        MI in nats (0 for independent images).
    """
    x = np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a, dtype=np.float64)
    y = np.asarray(b.detach().cpu().numpy() if hasattr(b, "detach") else b, dtype=np.float64)
    x, y = x.reshape(-1), y.reshape(-1)
    if mask is not None:
        mk = np.asarray(mask.detach().cpu().numpy() if hasattr(mask, "detach") else mask)
        mk = mk.reshape(-1).astype(bool)
        x, y = x[mk], y[mk]
    if x.size == 0:
        return 0.0
    h, _, _ = np.histogram2d(x, y, bins=bins)
    p = h / h.sum()
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / (px @ py)[nz])))


def _prepare(vol: Any, max_size: int) -> Any:
    """Registration copy: pooled, CT clamped at air so scanner padding (-2048 HU) reads as air."""
    import SimpleITK as sitk

    img = to_sitk(vol, max_size=max_size)
    if str(vol.meta.get("modality", "")).upper() == "CT":
        img = sitk.Clamp(img, sitk.sitkFloat32, -1000.0, 3000.0)
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(img)
    # shift to non-negative so the centre-of-mass initialiser weighs the object, not negative HU
    return sitk.Cast(img - stats.GetMinimum(), sitk.sitkFloat32)


def _rotation_about(tx: Any, rot_lps: np.ndarray) -> Any:
    import SimpleITK as sitk

    out = sitk.Euler3DTransform(tx)
    out.SetMatrix([float(v) for v in rot_lps.reshape(-1)])
    return out


# --------------------------------------------------------------------------------------------
# Registration


@contextmanager
def _single_threaded() -> Iterator[None]:
    """Run SimpleITK filters and metrics on one thread (deterministic sums), then restore."""
    import SimpleITK as sitk

    old = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(old)


def _method(
    levels: tuple[int, ...], sigmas: tuple[float, ...], iters: int, sampling: float, seed: int
) -> Any:
    """Mattes MI, regular-grid sampling with a fixed seed, regular-step gradient descent."""
    import SimpleITK as sitk

    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    r.SetMetricSamplingStrategy(r.REGULAR)
    r.SetMetricSamplingPercentage(sampling, seed)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=1e-3,
        numberOfIterations=iters,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-6,
    )
    r.SetOptimizerScalesFromPhysicalShift()
    r.SetShrinkFactorsPerLevel(list(levels))
    r.SetSmoothingSigmasPerLevel(list(sigmas))
    r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return r


def _full_metric(fixed: Any, mov: Any, tx: Any) -> float | None:
    """Mattes MI over every voxel of ``fixed`` at ``tx`` (None when the images miss each other)."""
    import SimpleITK as sitk

    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    r.SetMetricSamplingStrategy(r.NONE)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetInitialTransform(tx, inPlace=False)
    try:
        return float(r.MetricEvaluate(fixed, mov))
    except RuntimeError:
        return None


def _start_poses(fixed: Any, mov: Any, reference: Any, moving: Any) -> list[tuple[str, Any]]:
    """The starting transforms of :data:`STARTS` that apply to this pair (fixed -> moving, LPS)."""
    import SimpleITK as sitk

    centre = fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in fixed.GetSize()])
    identity = sitk.Euler3DTransform()
    identity.SetCenter(centre)  # no motion; rotations pivot about the reference's centre
    starts = [(STARTS[0], identity)]
    try:
        com = sitk.CenteredTransformInitializer(
            fixed, mov, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
        )
    except Exception as exc:  # noqa: BLE001
        raise RegistrationError(
            f"registration could not start: {' '.join(str(exc).split())[:160]}"
        ) from None
    com = sitk.Euler3DTransform(com)
    if np.linalg.norm(com.GetTranslation()) > 1e-3:
        starts.append((STARTS[1], com))
    rot = patient_position_rotation(reference, moving)
    if rot is not None:
        starts.append((STARTS[2], _rotation_about(com, rot)))
    return starts


def _optimise(r: Any, tx: Any, fixed: Any, mov: Any) -> tuple[Any, int, str]:
    """Run registration method ``r`` from ``tx``: (final transform, iterations, stop reason)."""
    r.SetInitialTransform(tx, inPlace=False)
    try:
        final = r.Execute(fixed, mov)
    except RuntimeError as exc:
        msg = " ".join(str(exc).split())
        if "All samples map outside moving image buffer" in msg or "Too many samples" in msg:
            msg = "the images do not overlap (fields of view too far apart)"
        raise RegistrationError(f"registration failed: {msg[-160:]}") from None
    return final, int(r.GetOptimizerIteration()), r.GetOptimizerStopConditionDescription()


def _euler(tx: Any) -> Any:
    """The Euler 3D transform inside a registration result (a one-element composite)."""
    import SimpleITK as sitk

    if isinstance(tx, sitk.CompositeTransform) or tx.GetName() == "CompositeTransform":
        tx = sitk.CompositeTransform(tx).GetBackTransform()
    return sitk.Euler3DTransform(tx)


def _pose(matrix: np.ndarray) -> dict[str, Any]:
    """Rotation angle (degrees) and translation (mm) of a 4x4 RAS matrix, rounded for run.json."""
    u, _, vt = np.linalg.svd(np.asarray(matrix)[:3, :3])
    cos = np.clip((np.trace(u @ vt) - 1.0) / 2.0, -1.0, 1.0)
    return {
        "rotation_deg": round(float(np.degrees(np.arccos(cos))), 2),
        "translation_mm": [round(float(v), 2) for v in np.asarray(matrix)[:3, 3]],
    }


def _optimise_starts(
    poses: list[tuple[str, Any]], fixed: Any, mov: Any, settings: tuple[int, float, int]
) -> tuple[list[dict[str, Any]], dict[int, tuple[Any, int, str]]]:
    """Optimise every start: all over the coarse levels, the leaders at full resolution too.

    No start ends worse than it began (its start pose is kept then). Returns one run.json dict
    per start and, by index, (transform, iterations, stop reason) of those that finished.
    """
    iterations, sampling, seed = settings
    tried: list[dict[str, Any]] = []
    done: dict[int, tuple[Any, int, str]] = {}
    for n, (name, tx) in enumerate(poses):
        entry: dict[str, Any] = {"name": name, "metric_start": _full_metric(fixed, mov, tx)}
        tried.append(entry)
        try:
            r = _method((4, 2), (2.0, 1.0), iterations, sampling, seed)
            out, n_iter, stop = _optimise(r, _euler(tx), fixed, mov)
        except RegistrationError as exc:
            entry["error"] = str(exc)
            continue
        metric = _full_metric(fixed, mov, out)
        entry.update(metric_coarse=metric, iterations_coarse=n_iter)
        if metric is None or (entry["metric_start"] is not None and metric > entry["metric_start"]):
            out, metric = tx, entry["metric_start"]
        if metric is not None:
            entry["metric_final"] = metric
            done[n] = (_euler(out), n_iter, stop)
    if not done:
        raise RegistrationError(
            next((t["error"] for t in tried if "error" in t), "registration failed: no overlap")
        )
    lead = min(tried[n]["metric_final"] for n in done)
    for n, (tx, _, _) in done.items():
        if tried[n]["metric_final"] > lead + REFINE_MARGIN:  # clearly behind: not refined
            continue
        r = _method((1,), (0.0,), iterations, sampling, seed)
        out, n_iter, stop = _optimise(r, _euler(tx), fixed, mov)
        metric = _full_metric(fixed, mov, out)
        tried[n]["iterations"] = n_iter
        if metric is not None and metric < tried[n]["metric_final"]:
            tried[n]["metric_final"] = metric
            done[n] = (_euler(out), n_iter, stop)
    for n, (tx, _, _) in done.items():
        tried[n].update(_pose(transform_to_matrix(tx)))
    return tried, done


def register(
    reference: Any,
    moving: Any,
    kind: str = "rigid",
    *,
    max_size: int = 128,
    iterations: int = 200,
    sampling: float = 0.1,
    seed: int = DEFAULT_SEED,
    starts: tuple[str, ...] = STARTS,
) -> RegistrationResult:
    """Register ``moving`` onto ``reference`` with Mattes mutual information, multi-resolution.

    Every start in ``starts`` that applies is optimised in full; the result with the best
    full-sample metric is kept. Deterministic: the same inputs give the same transform on every
    run, thread count and machine (fixed seed, regular sampling, one SimpleITK thread).

    Args:
        reference: fixed (C, I, J, K) MetaTensor (RAS affine).
        moving: moving (C, I', J', K') MetaTensor.
        kind: "rigid" (Euler 3D, default) or "affine" (rigid first, then a 12-parameter affine).
        max_size: images are average-pooled in-plane to at most this many voxels per axis first.
        iterations: maximum gradient-descent iterations per level.
        sampling: fraction of voxels sampled for the metric (regular grid, jittered by ``seed``).
        seed: sampling seed, >= 1 (SimpleITK reads 0 as "from the clock").
        starts: names from :data:`STARTS` to try.

    Returns:
        :class:`RegistrationResult` whose ``matrix`` maps moving RAS world to reference RAS world.
        When no start beats the images' own geometry, ``matrix`` is the identity and ``warning``
        says why.

    Raises:
        InputError: unknown kind, start or a seed below 1.
        RegistrationError: every start fails or the fields of view never overlap.
    """
    import SimpleITK as sitk

    kind = kind.lower()
    if kind not in KINDS:
        raise InputError(f"unknown registration kind '{kind}' (rigid, affine)")
    unknown = [s for s in starts if s not in STARTS]
    if unknown or not starts:
        raise InputError(f"unknown registration start {unknown} (known: {', '.join(STARTS)})")
    if int(seed) < 1:
        raise InputError(f"registration seed must be >= 1 (0 means 'from the clock'), got {seed}")
    with _single_threaded():
        fixed = _prepare(reference, max_size)
        mov = _prepare(moving, max_size)
        poses = [(n, tx) for n, tx in _start_poses(fixed, mov, reference, moving) if n in starts]
        if not poses:
            raise RegistrationError(
                f"none of the registration starts {list(starts)} applies to these images (the "
                "PatientPosition turn needs two DICOM series with different PatientPosition)"
            )
        metric_identity = _full_metric(fixed, mov, sitk.Euler3DTransform())
        tried, finals = _optimise_starts(poses, fixed, mov, (iterations, sampling, seed))
        metric_final, n = min((t["metric_final"], n) for n, t in enumerate(tried) if n in finals)
        final, n_iter, stop = finals[n]
        chosen, metric_initial = tried[n]["name"], tried[n]["metric_start"]
        if kind == "affine":
            rig = _euler(final)
            aff = sitk.AffineTransform(3)
            aff.SetCenter(rig.GetCenter())
            aff.SetMatrix(rig.GetMatrix())
            aff.SetTranslation(rig.GetTranslation())
            r2 = _method((2, 1), (1.0, 0.0), iterations, sampling, seed)
            out, it2, stop2 = _optimise(r2, aff, fixed, mov)
            m2 = _full_metric(fixed, mov, out)
            if m2 is not None and m2 < metric_final:
                final, n_iter, stop, metric_final = out, it2, stop2, m2
    matrix = transform_to_matrix(final)
    if not np.all(np.isfinite(matrix)):
        raise RegistrationError("registration produced a non-finite transform")
    warning = ""
    if metric_identity is not None and metric_final >= metric_identity - 1e-9:
        warning = (
            f"registration refused: no start improved on the images' own geometry (Mattes MI "
            f"{metric_identity:.4f}; best {metric_final:.4f}, from the {chosen} start); the "
            "moving image is used unmoved"
        )
        matrix, final, chosen = np.eye(4), sitk.Euler3DTransform(), "identity (refused)"
    return RegistrationResult(
        matrix=matrix,
        kind=kind,
        metric_initial=metric_initial,
        metric_final=metric_final,
        iterations=n_iter,
        stop_condition=stop,
        initialisation=chosen,
        transform=final,
        metric_identity=metric_identity,
        starts=tried,
        warning=warning,
        seed=int(seed),
    )
