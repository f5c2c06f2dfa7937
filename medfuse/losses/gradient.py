"""Max-gradient loss: the fused gradient should follow the stronger of the two sources'
gradients."""

from __future__ import annotations

import torch
import torch.nn as nn

from medfuse.losses.norms import lp_distance
from medfuse.nets.blocks import Sobel

__all__ = ["MaxGradientLoss"]


class MaxGradientLoss(nn.Module):
    """``D(max(grad I_a, grad I_b), grad I_f)`` with Sobel gradients.

    ECFusion Eq. 16 (``distance="l2"``, gradient magnitudes ``sqrt(gx^2 + gy^2)``) and S3IMFusion
    Eq. 6 (``distance="l1"``, see that paper for its gradient; ``sobel="abs"`` gives
    ``|gx| + |gy|``). The distance is :func:`medfuse.losses.norms.lp_distance`: with
    ``reduction="norm"`` the per-image ``L_p`` norm (batch mean), rescaled to
    ``reference_pixels`` pixels when given; ``reduction="mean"`` is the older mean squared / mean
    absolute error.

    Args:
        distance: ``"l2"`` or ``"l1"``.
        sobel: gradient of :class:`medfuse.nets.blocks.Sobel`: ``"magnitude"`` or ``"abs"``.
        reduction: ``"mean"`` (default, the older behaviour) or ``"norm"``.
        reference_pixels: pixel count the norm is rescaled to (``None``: the literal norm).
    """

    def __init__(self, distance: str = "l2", sobel: str = "magnitude", reduction: str = "mean",
                 reference_pixels: int | None = None) -> None:
        super().__init__()
        if distance not in ("l1", "l2"):
            raise ValueError(f"distance must be 'l1' or 'l2', not {distance!r}")
        if sobel not in ("magnitude", "abs"):
            raise ValueError(f"sobel must be 'magnitude' or 'abs', not {sobel!r}")
        self.distance = distance
        self.sobel = Sobel(sobel)
        self.reduction = reduction
        self.reference_pixels = reference_pixels
        lp_distance(torch.zeros(1, 1, 1, 1), 1, reduction)  # validates the reduction now

    def forward(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Scalar loss.

        Args:
            fused: ``(B, C, H, W)`` fused image.
            a: ``(B, C, H, W)`` first source, same value range as ``fused``.
            b: ``(B, C, H, W)`` second source.
        """
        target = torch.maximum(self.sobel(a), self.sobel(b))
        p = 1 if self.distance == "l1" else 2
        return lp_distance(self.sobel(fused) - target, p, self.reduction, self.reference_pixels)
