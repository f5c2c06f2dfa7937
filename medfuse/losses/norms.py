"""Size-aware ``L_p`` distances: the papers' norms, per image, optionally rescaled to a reference
size.

Both papers write their pixel terms as norms (ECFusion Eq. 16 ``||.||_2``; S3IMFusion Eqs. 6-7
``||.||_1`` and ``||.||_2``). :func:`lp_distance` computes the norm of each image of a batch and
averages over the batch, so the batch size does not change a term's scale. ``reference_pixels``
rescales the norm to what it would be on an image of that many pixels,
``||d||_p * (reference_pixels / N)^(1/p)``:

- ``None``: the literal norm (grows with the image size);
- ``256 * 256``: the literal norm at the papers' training size, the same value at other sizes;
- ``1``: the per-pixel norm ``(mean |d|^p)^(1/p)``: mean absolute error for ``p = 1``, root mean
  squared error for ``p = 2``.

``reduction="mean"`` is the older ``mean(|d|^p)`` (mean absolute / mean squared error over the
whole batch), kept to reproduce the weights trained with it.
"""

from __future__ import annotations

import torch

__all__ = ["REDUCTIONS", "lp_distance"]

REDUCTIONS = ("norm", "mean")


def lp_distance(diff: torch.Tensor, p: int, reduction: str = "norm",
                reference_pixels: int | None = None) -> torch.Tensor:
    """Scalar ``L_p`` distance of a batch of differences.

    Args:
        diff: ``(B, C, H, W)`` differences.
        p: 1 or 2.
        reduction: ``"norm"`` (per-image norm, batch mean) or ``"mean"`` (``mean(|d|^p)``).
        reference_pixels: see the module docstring (``"norm"`` only).
    """
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, not {p}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, not {reduction!r}")
    if reduction == "mean":
        return diff.abs().mean() if p == 1 else diff.square().mean()
    flat = diff.flatten(1)
    per_image = flat.abs().sum(1) if p == 1 else flat.square().sum(1).sqrt()
    if reference_pixels is not None:
        per_image = per_image * (float(reference_pixels) / flat.shape[1]) ** (1.0 / p)
    return per_image.mean()
