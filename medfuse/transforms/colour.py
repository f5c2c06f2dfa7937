"""Colour helpers: BT.601 full-range YCbCr and DICOM standard colour palettes.

* :func:`rgb_to_ycbcr` / :func:`ycbcr_to_rgb` - BT.601 full range (JPEG): ``Y`` in [0, 1] and
  ``Cb``, ``Cr`` centred on 0.5, on channel dimension ``dim`` (default -3, i.e. (..., 3, H, W)).
* :func:`palette_lut` - a DICOM standard palette (PS3.6 Annex B, pydicom's ``apply_color_lut``) as a
  (256, 3) table; :func:`colourise` applies it to a [0, 1] image on any device.
* :data:`PALETTES` - the palette names.

Functional images (PET, SPECT) are colourised with a palette, their luma Y is fused with the MR and
the result is recombined with the palette's Cb/Cr, as ECFusion and S3IMFusion do.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from medfuse.errors import InputError

__all__ = ["PALETTES", "PALETTE_UIDS", "palette_lut", "colourise", "rgb_to_ycbcr", "ycbcr_to_rgb"]

#: DICOM standard colour palettes (PS3.6 Annex A well-known SOP instances) by ``--palette`` name.
#: Passed to pydicom by UID: pydicom 3.0's name lookup swaps FALL and WINTER.
PALETTE_UIDS: dict[str, str] = {
    "HOT_IRON": "1.2.840.10008.1.5.1",
    "PET": "1.2.840.10008.1.5.2",
    "HOT_METAL_BLUE": "1.2.840.10008.1.5.3",
    "PET_20_STEP": "1.2.840.10008.1.5.4",
    "SPRING": "1.2.840.10008.1.5.5",
    "SUMMER": "1.2.840.10008.1.5.6",
    "FALL": "1.2.840.10008.1.5.7",
    "WINTER": "1.2.840.10008.1.5.8",
}
#: palette names.
PALETTES: tuple[str, ...] = tuple(PALETTE_UIDS)

# BT.601 full range (JPEG / JFIF): Y = 0.299 R + 0.587 G + 0.114 B, Cb/Cr offset 0.5 (128/255).
_RGB2YCC = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [-0.168735892, -0.331264108, 0.5],
        [0.5, -0.418687589, -0.081312411],
    ],
    dtype=torch.float64,
)
_YCC2RGB = torch.linalg.inv(_RGB2YCC)


@functools.cache
def _lut_np(name: str) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    lut = apply_color_lut(np.arange(256, dtype=np.uint8), palette=PALETTE_UIDS[name])
    return np.ascontiguousarray(lut.reshape(256, 3).astype(np.uint8))


def palette_lut(name: str) -> np.ndarray:
    """The DICOM standard palette ``name`` as a (256, 3) uint8 RGB table.

    Args:
        name: one of :data:`PALETTES` (case-insensitive).

    Raises:
        InputError: unknown palette.
    """
    key = str(name).upper().replace("-", "_")
    if key not in PALETTES:
        raise InputError(f"unknown palette '{name}' (known: {', '.join(PALETTES)})")
    return _lut_np(key).copy()


def colourise(x: torch.Tensor, palette: str = "PET") -> torch.Tensor:
    """Colourise a [0, 1] grayscale image with a DICOM palette.

    Args:
        x: (..., 1, H, W) float in [0, 1] (quantised to 256 levels, as an 8-bit palette needs).
        palette: palette name (see :data:`PALETTES`).

    Returns:
        (..., 3, H, W) float32 RGB in [0, 1], on ``x``'s device.
    """
    if x.shape[-3] != 1:
        raise InputError(f"colourise expects one channel, got {x.shape[-3]}")
    lut = torch.as_tensor(palette_lut(palette), device=x.device).to(torch.float32) / 255.0
    idx = (x.squeeze(-3).clamp(0.0, 1.0) * 255.0).round().to(torch.long)
    rgb = lut[idx]  # (..., H, W, 3)
    return rgb.movedim(-1, -3).contiguous()


def _apply(m: torch.Tensor, x: torch.Tensor, dim: int, offset: torch.Tensor) -> torch.Tensor:
    if x.shape[dim] != 3:
        raise InputError(f"expected 3 colour channels on dim {dim}, got {x.shape[dim]}")
    xm = x.movedim(dim, -1)
    out = xm.to(torch.float32) @ m.to(x.device, torch.float32).T + offset.to(x.device)
    return out.movedim(-1, dim)


def rgb_to_ycbcr(rgb: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """BT.601 full-range RGB -> YCbCr, values in [0, 1] (Cb, Cr centred on 0.5).

    Args:
        rgb: (..., 3, H, W) (or channels on ``dim``) in [0, 1].
        dim: the channel dimension.

    Returns:
        same shape, float32: Y, Cb, Cr.
    """
    return _apply(_RGB2YCC, rgb, dim, torch.tensor([0.0, 0.5, 0.5]))


def ycbcr_to_rgb(ycc: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """BT.601 full-range YCbCr -> RGB, clamped to [0, 1].

    Args:
        ycc: (..., 3, H, W) (or channels on ``dim``): Y in [0, 1], Cb/Cr centred on 0.5.
        dim: the channel dimension.

    Returns:
        same shape, float32 RGB in [0, 1].
    """
    shifted = ycc.to(torch.float32) - torch.tensor([0.0, 0.5, 0.5], device=ycc.device).reshape(
        [3 if d == (dim % ycc.ndim) else 1 for d in range(ycc.ndim)]
    )
    return _apply(_YCC2RGB, shifted, dim, torch.zeros(3)).clamp_(0.0, 1.0)
