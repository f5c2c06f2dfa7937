"""Intensity (pixel) consistency loss: the fused image should stay close to both sources."""

from __future__ import annotations

import torch
import torch.nn as nn

from medfuse.losses.norms import lp_distance

__all__ = ["IntensityLoss"]


class IntensityLoss(nn.Module):
    """``D(I_a, I_f) + D(I_b, I_f)``: S3IMFusion Eq. 7, its "smoothing loss".

    ``D`` is :func:`medfuse.losses.norms.lp_distance` with ``p = 2`` (``distance="l2"``, Eq. 7)
    or ``p = 1``: ``reduction="norm"`` the per-image norm (batch mean), rescaled to
    ``reference_pixels`` pixels (``1``: the root mean squared error); ``reduction="mean"`` (the
    default, the older behaviour) the mean squared / absolute error. The two sources are summed,
    as Eq. 7 writes it. With ``"mean"`` and l2 the minimum over ``fused`` is at the mean of the
    sources; it is zero when they are equal.

    Args:
        distance: ``"l2"`` or ``"l1"``.
        reduction: ``"mean"`` or ``"norm"``.
        reference_pixels: pixel count the norm is rescaled to (``None``: the literal norm).
    """

    def __init__(self, distance: str = "l2", reduction: str = "mean",
                 reference_pixels: int | None = None) -> None:
        super().__init__()
        if distance not in ("l1", "l2"):
            raise ValueError(f"distance must be 'l1' or 'l2', not {distance!r}")
        self.distance = distance
        self.reduction = reduction
        self.reference_pixels = reference_pixels
        lp_distance(torch.zeros(1, 1, 1, 1), 1, reduction)  # validates the reduction now

    def forward(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Scalar loss.

        Args:
            fused: ``(B, C, H, W)`` fused image.
            a: ``(B, C, H, W)`` first source, same value range.
            b: ``(B, C, H, W)`` second source.
        """
        p = 1 if self.distance == "l1" else 2
        return (lp_distance(fused - a, p, self.reduction, self.reference_pixels)
                + lp_distance(fused - b, p, self.reduction, self.reference_pixels))
