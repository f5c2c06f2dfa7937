"""Intensity (pixel) consistency loss: the fused image should stay close to both sources."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["IntensityLoss"]


class IntensityLoss(nn.Module):
    """``D(I_a, I_f) + D(I_b, I_f)``: S3IMFusion Eq. 7, its "smoothing loss".

    ``distance="l2"`` (Eq. 7) is the mean squared error per pixel, ``"l1"`` the mean absolute
    error; as in :class:`medfuse.losses.MaxGradientLoss` the mean keeps the loss independent of the
    image size (the paper's ``||.||_2`` differs by a size-dependent factor only). The two sources
    are summed, as Eq. 7 writes it. The minimum over ``fused`` is at the mean of the sources (l2),
    zero when they are equal.

    Args:
        distance: ``"l2"`` or ``"l1"``.
    """

    def __init__(self, distance: str = "l2") -> None:
        super().__init__()
        if distance not in ("l1", "l2"):
            raise ValueError(f"distance must be 'l1' or 'l2', not {distance!r}")
        self.distance = distance

    def forward(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Scalar loss.

        Args:
            fused: ``(B, C, H, W)`` fused image.
            a: ``(B, C, H, W)`` first source, same value range.
            b: ``(B, C, H, W)`` second source.
        """
        d = F.l1_loss if self.distance == "l1" else F.mse_loss
        return d(fused, a) + d(fused, b)
