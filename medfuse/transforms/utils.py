"""Small helpers shared by the array transforms (affine access, MONAI's applied_operations)."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor

__all__ = ["affine_np", "record_of"]


def affine_np(img: torch.Tensor) -> np.ndarray:
    """The (4, 4) float64 affine of a MetaTensor (identity for a plain tensor)."""
    if isinstance(img, MetaTensor):
        return np.asarray(img.affine.detach().cpu().numpy(), dtype=np.float64)
    return np.eye(4)


def record_of(img: torch.Tensor) -> list:
    """A copy of ``img.applied_operations`` (MONAI's record of transforms; [] for a plain tensor).

    Transforms that build a new MetaTensor pass this on, so earlier entries are not lost.
    """
    return list(img.applied_operations) if isinstance(img, MetaTensor) else []
