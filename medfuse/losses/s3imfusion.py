"""The S3IMFusion training loss, Eq. 8: ``10 L_sim + 5 L_grad + 1 L_smooth``."""

from __future__ import annotations

import torch
import torch.nn as nn

from medfuse.losses.gradient import MaxGradientLoss
from medfuse.losses.intensity import IntensityLoss
from medfuse.losses.s3im import S3IMLoss

__all__ = ["S3IMFusionLoss"]


class S3IMFusionLoss(nn.Module):
    """``L_total = g1 L_sim + g2 L_grad + g3 L_smooth`` (Lv et al., Sci. Rep. 2025, Eq. 8).

    - ``L_sim``: :class:`medfuse.losses.S3IMLoss` (Eq. 5; 10 orderings, 64x64 virtual patches,
      4x4 windows with stride 4);
    - ``L_grad``: :class:`medfuse.losses.MaxGradientLoss` with ``distance="l1"`` and
      ``sobel="abs"`` (Eq. 6: ``|| max(grad I_1, grad I_2) - grad I_f ||_1``; the gradient is the
      Sobel L1 magnitude ``|G_x| + |G_y|``, the form of the texture losses this family of fusion
      losses uses; the paper does not write it out);
    - ``L_smooth``: :class:`medfuse.losses.IntensityLoss` with ``distance="l2"`` (Eq. 7).

    Normalisation (``reduction="paper"``, default): the two norms of Eqs. 6-7 per pixel, i.e. each
    divided by its value on an all-ones image of the same size: ``||.||_1 / N`` (mean absolute
    error) and ``||.||_2 / sqrt(N)`` (root mean squared error), per image, batch mean. Literal
    sums over the 65536 pixels would make ``10 L_sim`` about 1e-5 of the gradient term's pull and
    the paper's S3IM ablation (Table 3) impossible, so the norms must be per pixel; the ``L_2``
    norm stays a norm (not its square), as Eq. 7 writes it. ``reduction="mean"`` is the older
    variant with the mean *squared* error for ``L_smooth`` (the shipped weights up to 2026-12).

    All three are computed on the images mapped from ``value_range`` to ``[0, 1]`` (the 8-bit/255
    scale the paper's weights ``gamma = (10, 5, 1)`` were presumably set on); in ``[-1, 1]`` units
    ``L_grad`` would be 2x and ``L_smooth`` 4x larger and the balance would shift. ``L_sim`` does
    not depend on the scale.

    Args:
        gamma: weights ``(g1, g2, g3)``.
        value_range: ``(low, high)`` of the inputs; medfuse networks use ``(-1, 1)``.
        repeats: S3IM orderings ``M``.
        patch: S3IM virtual patch side.
        kernel: S3IM SSIM window.
        stride: S3IM SSIM stride.
        seed: seed of the S3IM permutations (``None``: global RNG).
        reduction: ``"paper"`` or ``"mean"`` (see above).
    """

    def __init__(
        self,
        gamma: tuple[float, float, float] = (10.0, 5.0, 1.0),
        value_range: tuple[float, float] = (-1.0, 1.0),
        repeats: int = 10,
        patch: int = 64,
        kernel: int = 4,
        stride: int = 4,
        seed: int | None = None,
        reduction: str = "paper",
    ) -> None:
        super().__init__()
        if reduction not in ("paper", "mean"):
            raise ValueError(f"reduction must be 'paper' or 'mean', not {reduction!r}")
        self.reduction = reduction
        if len(gamma) != 3:
            raise ValueError(f"gamma needs three weights, got {gamma}")
        if value_range[1] <= value_range[0]:
            raise ValueError(f"value_range must be (low, high) with low < high, not {value_range}")
        self.gamma = tuple(float(g) for g in gamma)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.sim = S3IMLoss(repeats, patch, kernel, stride, value_range=(0.0, 1.0), seed=seed)
        if reduction == "paper":
            self.grad = MaxGradientLoss("l1", "abs", reduction="norm", reference_pixels=1)
            self.smooth = IntensityLoss("l2", reduction="norm", reference_pixels=1)
        else:
            self.grad = MaxGradientLoss("l1", "abs", reduction="mean")
            self.smooth = IntensityLoss("l2", reduction="mean")

    @property
    def term_weights(self) -> dict[str, float]:
        """The weight of each term of :meth:`components` in the total."""
        return dict(zip(("sim", "grad", "smooth"), self.gamma))

    def components(self, fused: torch.Tensor, a: torch.Tensor,
                   b: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted total and its unweighted parts (for logging).

        Args:
            fused: ``(B, C, H, W)`` fused image in ``value_range``.
            a: ``(B, C, H, W)`` first source.
            b: ``(B, C, H, W)`` second source.

        Returns:
            ``{"total", "sim", "grad", "smooth"}``, scalar tensors (``total`` keeps the graph).
        """
        lo, hi = self.value_range
        f, a, b = ((t - lo) / (hi - lo) for t in (fused, a, b))
        parts = {"sim": self.sim(f, a, b), "grad": self.grad(f, a, b),
                 "smooth": self.smooth(f, a, b)}
        g1, g2, g3 = self.gamma
        total = g1 * parts["sim"] + g2 * parts["grad"] + g3 * parts["smooth"]
        return {"total": total, **parts}

    def forward(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Scalar total loss (see :meth:`components` for the arguments)."""
        return self.components(fused, a, b)["total"]
