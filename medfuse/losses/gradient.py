"""Max-gradient loss: the fused gradient should follow the stronger of the two sources' gradients."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from medfuse.nets.blocks import Sobel

__all__ = ["MaxGradientLoss"]


class MaxGradientLoss(nn.Module):
    """``D(max(grad I_a, grad I_b), grad I_f)`` with Sobel gradients.

    ECFusion Eq. 16 (``distance="l2"``, gradient magnitudes ``sqrt(gx^2 + gy^2)``) and S3IMFusion
    Eq. 6 (``distance="l1"``, see that paper for its gradient; ``sobel="abs"`` gives
    ``|gx| + |gy|``). The distance is the mean over pixels (``"l2"``: mean squared error,
    ``"l1"``: mean absolute error), so the loss does not grow with the image size; the papers'
    ``||.||`` differ from it by a constant factor only.

    Args:
        distance: ``"l2"`` or ``"l1"``.
        sobel: gradient of :class:`medfuse.nets.blocks.Sobel`: ``"magnitude"`` or ``"abs"``.
    """

    def __init__(self, distance: str = "l2", sobel: str = "magnitude") -> None:
        super().__init__()
        if distance not in ("l1", "l2"):
            raise ValueError(f"distance must be 'l1' or 'l2', not {distance!r}")
        if sobel not in ("magnitude", "abs"):
            raise ValueError(f"sobel must be 'magnitude' or 'abs', not {sobel!r}")
        self.distance = distance
        self.sobel = Sobel(sobel)

    def forward(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Scalar loss.

        Args:
            fused: ``(B, C, H, W)`` fused image.
            a: ``(B, C, H, W)`` first source, same value range as ``fused``.
            b: ``(B, C, H, W)`` second source.
        """
        target = torch.maximum(self.sobel(a), self.sobel(b))
        grad_f = self.sobel(fused)
        if self.distance == "l1":
            return F.l1_loss(grad_f, target)
        return F.mse_loss(grad_f, target)
