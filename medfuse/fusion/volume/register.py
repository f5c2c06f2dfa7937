"""The register stage of the volume job: the moving input's transform to the reference.

Registers when the frames of reference differ (or when asked), or reads a transform file, and
checks that the fields of view overlap afterwards; :func:`mi_report` measures the mutual
information the registration gained (run.json).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medfuse.errors import GeometryError

from ..options import FuseOptions
from ..stages import StageClock
from .load import Inputs

__all__ = ["Registered", "register_stage", "mi_report", "MIN_OVERLAP", "AUTO_REGISTER_OVERLAP"]

#: fraction of the reference grid the moving image must cover after registration.
MIN_OVERLAP = 0.01
#: with unknown frames of reference, "auto" registers when less than this fraction overlaps.
AUTO_REGISTER_OVERLAP = 0.1


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


def _rotation_deg(matrix: np.ndarray) -> float:
    """Rotation angle (degrees) of the linear part of a 4x4 (its closest rotation)."""
    u, _, vt = np.linalg.svd(np.asarray(matrix)[:3, :3])
    r = u @ vt
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))))


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


def mi_report(ref_w: Any, mov_w: Any, matrix: np.ndarray) -> dict[str, float]:
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
