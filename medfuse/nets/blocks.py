"""Building blocks shared by medfuse's networks and losses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "Sobel", "pad_to_multiple", "crop_to", "fused_conv", "fused_conv_neighbourhoods",
    "fused_inference", "neighbourhoods", "reference_kernels",
]

_POINTWISE = (getattr(torch.ops.mkldnn, "_convolution_pointwise", None)
              if torch.backends.mkldnn.is_available() else None)
_POINTWISE_INPLACE = (getattr(torch.ops.mkldnn, "_convolution_pointwise_", None)
                      if torch.backends.mkldnn.is_available() else None)
_FUSED = [True]


def fused_inference(x: torch.Tensor) -> bool:
    """Whether the networks' fused CPU inference path applies to ``x``.

    It does for float32 CPU tensors with autograd off (``torch.no_grad``/``inference_mode``), when
    oneDNN's fused convolutions exist, outside ``torch.export``/``torch.compile`` tracing,
    :func:`reference_kernels` and CPU ``torch.autocast`` (whose lower-precision intermediates the
    fused float32 kernels cannot take). Training, GPUs, autocast and exports take the reference
    (plain module) path.
    """
    return (_FUSED[0] and _POINTWISE is not None and x.device.type == "cpu"
            and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and not torch.is_grad_enabled() and not torch.compiler.is_compiling()
            and not torch.compiler.is_exporting())


@contextmanager
def reference_kernels() -> Iterator[None]:
    """Run the networks' reference eager path (no fused kernels, no caches) inside the block."""
    old, _FUSED[0] = _FUSED[0], False
    try:
        yield
    finally:
        _FUSED[0] = old


def fused_conv(conv: nn.Conv2d | None, x: torch.Tensor, slope: float | None = None,
               other: torch.Tensor | None = None, binary: str | None = None,
               weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
               no_bias: bool = False, inplace: bool = False) -> torch.Tensor:
    """One oneDNN call for ``act(conv(x))`` or ``conv(x) <binary> other`` (CPU inference only).

    Args:
        conv: the convolution (its weight, bias, padding, stride, dilation, groups); ``None`` for a
            1x1 convolution with ``weight`` and ``bias``.
        x: ``(B, C_in, H, W)``, channels-last.
        slope: LeakyReLU slope applied after the convolution (``None``: no activation).
        other: ``(B, C_out, H', W')`` second operand of ``binary``.
        binary: ``"mul"`` or ``"add"``: ``conv(x) * other`` or ``conv(x) + other``.
        weight: replaces ``conv.weight``.
        bias: replaces ``conv.bias`` (with ``conv=None``: the bias, default none).
        no_bias: no bias at all (not ``conv.bias`` either).
        inplace: with ``binary="add"``, write ``conv(x) + other`` into ``other`` (a
            channels-last tensor of the output's shape) instead of a new tensor.

    Returns:
        ``(B, C_out, H', W')``, channels-last.
    """
    assert _POINTWISE is not None, "fused_conv needs oneDNN (check fused_inference() first)"
    assert conv is not None or weight is not None, "fused_conv needs a conv or a weight"
    w = conv.weight if weight is None else weight  # type: ignore[union-attr]
    if no_bias:
        bias = None
    elif bias is None and conv is not None:
        bias = conv.bias
    geo = ([0, 0], [1, 1], [1, 1], 1)
    if conv is not None:
        geo = ([int(v) for v in conv.padding], list(conv.stride), list(conv.dilation), conv.groups)
    x = x.contiguous(memory_format=torch.channels_last)
    if binary is not None:
        assert other is not None, "a binary fused_conv needs its second operand"
        if inplace and binary == "add" and _POINTWISE_INPLACE is not None:
            assert other.is_contiguous(memory_format=torch.channels_last), "in place needs NHWC"
            _POINTWISE_INPLACE.binary(other, x, w, bias, *geo, binary, None, None, [], None)
            return other
        other = other.contiguous(memory_format=torch.channels_last)
        return _POINTWISE.binary(x, other, w, bias, *geo, binary, None, None, [], None)
    if slope is None:
        return _POINTWISE(x, w, bias, *geo, "none", [], "")
    return _POINTWISE(x, w, bias, *geo, "leaky_relu", [slope], "")


class Sobel(nn.Module):
    """Sobel gradient of a single- or multi-channel image, with fixed kernels as buffers.

    ``G_x = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` and
    ``G_y = [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]``
    applied per channel (ECFusion Eq. 1), replicate padding so the output keeps the input size.

    Args:
        mode: ``"magnitude"`` for ``sqrt(gx^2 + gy^2)`` (ECFusion Eq. 1), ``"abs"`` for
            ``|gx| + |gy|`` (the L1 gradient used by most fusion losses), ``"xy"`` for the pair
            stacked on a new dimension 2: ``(B, C, 2, H, W)``.
        eps: added under the square root so its gradient stays finite at zero.
    """

    kernel: torch.Tensor

    def __init__(self, mode: str = "magnitude", eps: float = 1e-12) -> None:
        super().__init__()
        if mode not in ("magnitude", "abs", "xy"):
            raise ValueError(f"Sobel mode must be 'magnitude', 'abs' or 'xy', not {mode!r}")
        self.mode = mode
        self.eps = eps
        gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        gy = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
        self.register_buffer("kernel", torch.stack([gx, gy]).unsqueeze(1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gradient of ``x``.

        Args:
            x: ``(B, C, H, W)``.

        Returns:
            ``(B, C, H, W)`` (``magnitude``/``abs``) or ``(B, C, 2, H, W)`` (``xy``).
        """
        b, c, h, w = x.shape
        xp = F.pad(x.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
        g = F.conv2d(xp, self.kernel.to(x.dtype)).reshape(b, c, 2, h, w)
        if self.mode == "xy":
            return g
        if self.mode == "abs":
            return g.abs().sum(dim=2)
        return torch.sqrt(g.pow(2).sum(dim=2) + self.eps)


def neighbourhoods(x: torch.Tensor) -> torch.Tensor:
    """The 3x3 neighbourhood of every pixel of a one-channel image, as 9 channels-last channels.

    A 3x3 convolution (zero padding 1) of ``x`` is then a 1x1 convolution of the result with the
    kernel reshaped to ``(C_out, 9, 1, 1)``: oneDNN's 3x3 convolution of a one-channel input costs
    as much as a 16-channel one and returns NCHW, the 1x1 form a fraction of it, channels-last.

    Args:
        x: ``(B, 1, H, W)``.

    Returns:
        ``(B, 9, H, W)``, channels-last; channel ``3 i + j`` holds ``x[y + i - 1, x + j - 1]``.
    """
    b, _, h, w = x.shape
    p = F.pad(x.reshape(b, h, w), (1, 1, 1, 1))
    # nine shifted views stacked last: written once, already channels-last (1.6x faster than
    # F.unfold and a layout copy)
    cols = torch.stack([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], dim=-1)
    return cols.permute(0, 3, 1, 2)


def fused_conv_neighbourhoods(conv: nn.Conv2d, cols: torch.Tensor,
                              slope: float | None = None) -> torch.Tensor:
    """``act(conv(x))`` for a one-channel 3x3 ``conv`` (zero padding 1), given
    ``cols = neighbourhoods(x)``: one oneDNN 1x1 call, channels-last ``(B, C_out, H, W)``."""
    weight = conv.weight.reshape(conv.out_channels, 9, 1, 1)
    return fused_conv(None, cols, slope=slope, weight=weight, bias=conv.bias)


def pad_to_multiple(
    x: torch.Tensor, multiple: int, mode: str = "reflect"
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``(B, C, H, W)`` on the bottom/right so ``H`` and ``W`` are multiples of ``multiple``.

    Returns the padded tensor and the original ``(H, W)`` for :func:`crop_to`. Reflect padding
    falls back to replicate when the image is too small to reflect.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    if mode == "reflect" and (ph >= h or pw >= w):
        mode = "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop ``(B, C, H', W')`` back to ``size = (H, W)`` (top-left corner)."""
    return x[..., : size[0], : size[1]]
