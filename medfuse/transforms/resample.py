"""Physical-space resampling onto a reference grid: :class:`ResampleToReference`."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import ResampleToMatch, TraceableTransform
from monai.utils import TransformBackends

from medfuse.errors import GeometryError, InputError

from .utils import affine_np, record_of

__all__ = ["ResampleToReference"]


class ResampleToReference(TraceableTransform):
    """Resample a moving volume onto a reference volume's grid in physical (RAS world) space.

    Built on :class:`monai.transforms.ResampleToMatch`: every output voxel takes the moving image's
    value at the same world position (through both affines), so no voxel correspondence is assumed.
    The output keeps the moving image's metadata (modality, DICOM headers, ...) but takes the
    reference's affine and spatial shape; ``meta["resampled_to"]`` names the reference source.
    ``meta["frame_of_reference_uid"]`` stays the moving image's unless ``pre_affine`` is given
    (then the image is registered into the reference's frame and takes its UID): resampling alone
    does not align two frames of reference (compare the UIDs before fusing).

    Args:
        mode: interpolation, "bilinear" (default) or "nearest" (labels), or a spline order 0-5.
        padding_mode: value outside the moving field of view: "zeros" (default), "border",
            "reflection".
        dtype: computation dtype of the sampling grid (float32 keeps memory modest on large grids).

    MONAI's record is kept: the output's ``applied_operations`` is the moving image's, plus one
    entry of this transform (``extra_info``: "src_affine" (moving affine after ``pre_affine``),
    "dst_affine", "pre_affine" or None, "mode", "padding_mode"; ``orig_size``: the moving spatial
    shape).
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        mode: str | int = "bilinear",
        padding_mode: str = "zeros",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.mode = mode
        self.padding_mode = padding_mode
        self.dtype = dtype

    def __call__(  # type: ignore[override]  # MONAI's Transform takes one argument
        self,
        img: torch.Tensor,
        reference: torch.Tensor,
        pre_affine: np.ndarray | torch.Tensor | None = None,
    ) -> MetaTensor:
        """Resample ``img`` onto ``reference``'s grid.

        Args:
            img: moving MetaTensor (C, I, J, K) with a RAS affine.
            reference: MetaTensor (C', I', J', K') whose affine and spatial shape define the grid
                (its values are not read).
            pre_affine: optional (4, 4) world->world matrix (e.g. a registration result) mapping
                moving world coordinates to reference world coordinates; the moving affine becomes
                ``pre_affine @ img.affine`` before resampling.

        Returns:
            MetaTensor (C, I', J', K') float32 with the reference affine.
        """
        if not isinstance(img, MetaTensor) or not isinstance(reference, MetaTensor):
            raise InputError("ResampleToReference needs MetaTensors with affines (use load_volume)")
        if img.ndim != 4 or reference.ndim != 4:
            raise GeometryError(
                f"ResampleToReference expects (C, I, J, K) volumes, got {tuple(img.shape)} and "
                f"{tuple(reference.shape)}"
            )
        src_affine = affine_np(img)
        if pre_affine is not None:
            pa = np.asarray(torch.as_tensor(pre_affine).detach().cpu().numpy(), dtype=np.float64)
            if pa.shape != (4, 4):
                raise GeometryError(f"pre_affine must be 4x4, got {pa.shape}")
            src_affine = pa @ src_affine
        if abs(np.linalg.det(src_affine[:3, :3])) < 1e-12:
            raise GeometryError("moving image affine is singular")
        moving = MetaTensor(
            img.as_tensor(),
            affine=torch.as_tensor(src_affine),
            meta={"filename_or_obj": img.meta.get("filename_or_obj", "")},
        )
        # a lightweight stand-in for the reference: only its affine and spatial shape matter
        ref_affine = affine_np(reference)
        dst = MetaTensor(
            torch.zeros((1, 1, 1, 1), dtype=torch.float32).expand(1, *reference.shape[1:]),
            affine=torch.as_tensor(ref_affine),
        )
        resample = ResampleToMatch(
            mode=self.mode,
            padding_mode=self.padding_mode,
            dtype=self.dtype,  # type: ignore[arg-type]
        )
        out = resample(moving, dst)
        meta = dict(img.meta)
        meta.pop("affine", None)
        meta.update(
            {
                "spatial_shape": np.asarray(reference.shape[1:]),
                "resampled_to": reference.meta.get("source_path", ""),
            }
        )
        if pre_affine is not None:  # registered into the reference's frame of reference
            meta["pre_affine"] = np.asarray(pa)
            meta["frame_of_reference_uid"] = reference.meta.get("frame_of_reference_uid")
        out = MetaTensor(
            out.as_tensor().to(torch.float32),  # type: ignore[attr-defined]
            affine=torch.as_tensor(ref_affine),
            meta=meta,
            applied_operations=record_of(img),
        )
        info = {
            "src_affine": src_affine,
            "dst_affine": ref_affine,
            "pre_affine": None if pre_affine is None else np.asarray(pa),
            "mode": self.mode,
            "padding_mode": self.padding_mode,
        }
        return self.push_transform(out, orig_size=tuple(img.shape[1:]), extra_info=info)
