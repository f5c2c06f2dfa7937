"""S3IMFusion: CNN + Transformer fusion network of Lv et al., Sci. Rep. 15, 8870 (2025).

"A stochastic structural similarity guided approach for multi-modal medical image fusion". The paper
publishes no code and no layer widths; what it specifies is kept (see :class:`S3IMFusion`), the
rest is a named constructor argument. The training loss is :class:`medfuse.losses.S3IMFusionLoss`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from medfuse.nets.blocks import fused_conv, fused_inference

__all__ = [
    "S3IMFusion",
    "SalientBranch",
    "CascadedDetailBranches",
    "TransformerBlock",
    "GlobalBranch",
]

def _max_pool_same(x: torch.Tensor, kernel: int | tuple[int, ...]) -> torch.Tensor:
    """Stride-1 max-pooling with 'same' padding as two separable 1-D maxima (``(B, C, H, W)``)."""
    k = kernel if isinstance(kernel, int) else int(kernel[0])
    r = k // 2
    if r == 0:
        return x
    p = F.pad(x, (r, r, r, r), value=float("-inf"))
    h, w = x.shape[-2:]
    row = p[..., :, 0:w]
    for i in range(1, k):
        row = torch.maximum(row, p[..., :, i:i + w])
    out = row[..., 0:h, :]
    for i in range(1, k):
        out = torch.maximum(out, row[..., i:i + h, :])
    return out.contiguous(memory_format=torch.channels_last)


class SalientBranch(nn.Module):
    """Salient feature extraction, paper Eq. 1.

    ``F_out = ReLU(BN(Conv(F_in))) * sigmoid(MP(Conv(F_in)))`` with two 3x3 convolutions and a
    stride-1 max-pooling (``pool_size`` window, 'same' padding) so the saliency map keeps the
    feature size and can be multiplied element-wise (the paper does not give the pooling stride; a
    strided pooling could not be multiplied with the full-size features).

    Args:
        channels: feature channels ``C`` in and out.
        pool_size: odd max-pooling window.
    """

    def __init__(self, channels: int, pool_size: int = 3) -> None:
        super().__init__()
        if pool_size % 2 != 1:
            raise ValueError(f"pool_size must be odd, not {pool_size}")
        self.feat = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.att_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.pool = nn.MaxPool2d(pool_size, stride=1, padding=pool_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` hybrid features -> ``(B, C, H, W)`` salient features (>= 0)."""
        return self.feat(x) * torch.sigmoid(self.pool(self.att_conv(x)))

    def fused_forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """``scale * forward(x)`` on the fused CPU inference path (eval mode).

        BatchNorm (running statistics) and the positive per-channel ``scale`` ``(C,)`` are folded
        into the convolution, whose ReLU is a oneDNN post-op; the stride-1 max-pooling is taken as
        two separable 3-tap maxima (the same values, 3x faster than ``max_pool2d`` channels-last).
        """
        conv, bn = self.feat[0], self.feat[1]
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
        assert bn.running_var is not None and bn.running_mean is not None
        g = bn.weight * torch.rsqrt(bn.running_var + bn.eps)  # BatchNorm's per-channel gain
        feat = fused_conv(conv, x, slope=0.0, weight=conv.weight * (scale * g)[:, None, None, None],
                          bias=(bn.bias - bn.running_mean * g) * scale)
        att = _max_pool_same(fused_conv(self.att_conv, x), self.pool.kernel_size)
        return feat.mul_(att.sigmoid_())


class _CascadeStage(nn.Module):
    """One layer of both detail branches: each conv sees both branches' previous features."""

    def __init__(self, channels: int, dilations: tuple[int, int], negative_slope: float) -> None:
        super().__init__()
        d1, d2 = dilations
        self.conv1 = nn.Conv2d(2 * channels, channels, 3, padding=d1, dilation=d1)
        self.conv2 = nn.Conv2d(2 * channels, channels, 3, padding=d2, dilation=d2)
        self.negative_slope = negative_slope

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if fused_inference(x1):
            return self._fused(x1, x2)
        s = torch.cat([x1, x2], dim=1)
        y1 = x1 + F.leaky_relu(self.conv1(s), self.negative_slope)
        y2 = x2 + F.leaky_relu(self.conv2(s), self.negative_slope)
        return y1, y2

    def _fused(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stage without the concatenation: ``conv([x1; x2]) = conv_1(x1) + conv_2(x2)``
        (one convolution with the summed kernel when ``x1 is x2``, as at the first stage)."""
        out = []
        for conv, x in ((self.conv1, x1), (self.conv2, x2)):
            w1, w2 = conv.weight.chunk(2, dim=1)
            if x1 is x2:
                z = fused_conv(conv, x1, slope=self.negative_slope, weight=w1 + w2)
            else:
                z = fused_conv(conv, x1, weight=w1)
                z = fused_conv(conv, x2, other=z, binary="add", weight=w2, no_bias=True,
                               inplace=True)
                z = F.leaky_relu_(z, self.negative_slope)
            out.append(z.add_(x))
        return out[0], out[1]


class CascadedDetailBranches(nn.Module):
    """The two complementary-detail branches (paper Fig. 2, second and third branches).

    Both start from the hybrid features. At every layer the two branches' features are
    concatenated ("cascaded between branches") and re-fed into the next convolution of both
    branches; each convolution has a residual skip connection. The branches differ in scale: 3x3
    convolutions with dilations ``dilations`` (default 1 and 2, i.e. 3x3 and 5x5 receptive fields
    per layer at the cost of a 3x3).

    Args:
        channels: feature channels ``C``.
        depth: layers per branch.
        dilations: dilation of branch 1 and branch 2.
        negative_slope: LeakyReLU slope after each convolution.
    """

    def __init__(
        self,
        channels: int,
        depth: int = 2,
        dilations: tuple[int, int] = (1, 2),
        negative_slope: float = 0.1,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, not {depth}")
        self.stages = nn.ModuleList(
            [
                _CascadeStage(channels, (int(dilations[0]), int(dilations[1])), negative_slope)
                for _ in range(depth)
            ]
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, H, W)`` -> two ``(B, C, H, W)`` detail feature maps."""
        x1, x2 = x, x
        for stage in self.stages:
            x1, x2 = stage(x1, x2)
        return x1, x2


class TransformerBlock(nn.Module):
    """Pre-norm Transformer unit, paper Eqs. 2-3.

    ``y = MSA(LN(x)) + x`` then ``z = MLP(LN(y)) + y``; the MLP is ``Linear-GELU-Linear`` with
    hidden width ``mlp_ratio * dim``.

    Args:
        dim: token width ``E``.
        num_heads: attention heads (``dim`` divisible by it).
        mlp_ratio: MLP hidden width over ``dim``.
    """

    def __init__(self, dim: int, num_heads: int = 4, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(round(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-head self-attention ``MSA`` of ``(B, N, E)`` tokens."""
        b, n, e = x.shape
        qkv = (
            self.qkv(x).reshape(b, n, 3, self.num_heads, e // self.num_heads).permute(2, 0, 3, 1, 4)
        )
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, heads, N, E / heads)
        return self.proj(y.transpose(1, 2).reshape(b, n, e))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, E)`` -> ``(B, N, E)``."""
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GlobalBranch(nn.Module):
    """Global correlation branch: stacked Transformer units on a coarse token grid.

    Patch embedding by a ``token_size`` x ``token_size`` convolution with the same stride; a
    depth-wise 3x3 convolution on the token grid adds a conditional positional encoding (Chu et al.,
    CPVT; it works for any grid size, unlike a learned table); ``depth`` :class:`TransformerBlock`
    units and a final LayerNorm; a 1x1 convolution back to ``C`` channels and bilinear upsampling
    to the input size.

    Args:
        channels: feature channels ``C`` in and out.
        token_size: pixels per token side; ``H`` and ``W`` must be multiples of it.
        embed_dim: token width ``E``.
        depth: Transformer units.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over ``embed_dim``.
    """

    def __init__(
        self,
        channels: int,
        token_size: int = 8,
        embed_dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        self.embed = nn.Conv2d(channels, embed_dim, token_size, stride=token_size)
        self.pos = nn.Conv2d(embed_dim, embed_dim, 3, padding=1, groups=embed_dim)
        self.blocks = nn.ModuleList(
            [TransformerBlock(embed_dim, num_heads, mlp_ratio) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.out = nn.Conv2d(embed_dim, channels, 1)

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, H, W)`` with ``H, W`` multiples of ``token_size`` -> ``(B, C, H, W)``.

        ``scale`` ``(C,)``: multiply the output per channel (folded into the 1x1 projection; the
        fused inference path uses it for the branch weight).
        """
        size = x.shape[-2:]
        t = self.embed(x)
        t = t + self.pos(t)
        b, e, gh, gw = t.shape
        tokens = t.flatten(2).transpose(1, 2)  # (B, N, E)
        for blk in self.blocks:
            tokens = blk(tokens)
        t = self.norm(tokens).transpose(1, 2).reshape(b, e, gh, gw).contiguous()
        if scale is None:
            out = self.out(t)
        else:  # bilinear resampling is linear with weights summing to 1: scale before it
            out = F.conv2d(t, self.out.weight * scale[:, None, None, None],
                           None if self.out.bias is None else self.out.bias * scale)
            out = out.contiguous(memory_format=torch.channels_last)
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


class S3IMFusion(nn.Module):
    """S3IMFusion network (Lv et al., Sci. Rep. 2025, Fig. 2), light configuration.

    Data flow (``C = features``):

    1. the sources are concatenated on channels and one 3x3 convolution + LeakyReLU gives the
       hybrid features ``(B, C, H, W)``;
    2. four branches read them: :class:`SalientBranch` (Eq. 1), the two
       :class:`CascadedDetailBranches` (convolutions with skip connections, features cascaded
       between the branches at every layer) and :class:`GlobalBranch` (stacked pre-norm
       Transformer units, Eqs. 2-3);
    3. a learned weighted combination ``sum_i w_i * branch_i`` with per-branch, per-channel
       weights ``w = softmax(logits)`` over the four branches (initialised equal);
    4. a 3x3 convolution and ``tanh`` reconstruct the fused image.

    Inputs of any ``H`` and ``W`` are replicate-padded on the bottom/right to a multiple of
    ``token_size`` and the output is cropped back. In eval mode (BatchNorm uses running statistics)
    the output is deterministic. Exportable with ``torch.export`` with dynamic ``H`` and ``W``
    (``H, W >= 9``, i.e. a token grid of at least 2x2; contiguous example inputs); TorchScript
    (``torch.jit.script``, deprecated in torch 2.13) compiles it too.

    Where the paper is silent (every width and depth, the kernel and stride of the max-pooling, the
    scale difference between the detail branches, token size, heads, positional encoding, the
    form of the weights) the choice is a constructor argument; ``docs/nets_s3imfusion.md`` lists
    them.

    Figures for the defaults (``python benchmarks/bench_nets.py``, one 256x256 pair,
    batch 1, ``torch.inference_mode``, ``torch.set_num_threads(2)``, 2-core AMD EPYC shared with
    other jobs, torch 2.13 CPU):

    - parameters: 158,017 (65,600 of them in the 8x8 patch embedding);
    - FLOPs: 3.89 GFLOP counted by ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs = 2 x MACs)
      with the math attention backend (the fused CPU attention kernel is not counted; its
      ``QK^T`` and ``AV`` products are 0.54 GFLOP of the total);
    - CPU forward: 44 ms per pair (minimum of 40 runs; median 51 ms; runs taken while other jobs
      loaded the 2 cores, load average 4.6, gave 257 ms min).

    Args:
        spatial_dims: must be 2.
        in_channels: channels of each source.
        out_channels: channels of the fused image.
        features: feature width ``C`` of the hybrid features and of every CNN branch.
        detail_depth: convolution layers in each complementary-detail branch.
        detail_dilations: dilations of the two detail branches' 3x3 convolutions.
        pool_size: max-pooling window of the salient branch (stride 1).
        token_size: pixels per Transformer token side (also the padding multiple).
        embed_dim: Transformer token width.
        transformer_depth: stacked Transformer units.
        num_heads: attention heads.
        mlp_ratio: Transformer MLP hidden width over ``embed_dim``.
        negative_slope: LeakyReLU slope of the hybrid and detail convolutions.

    Shapes:
        ``forward(a, b)``: ``a`` and ``b`` are ``(B, in_channels, H, W)`` in ``[-1, 1]`` (the
        medfuse network convention), any ``H, W >= 1``; returns ``(B, out_channels, H, W)`` in
        ``(-1, 1)``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: int = 16,
        detail_depth: int = 2,
        detail_dilations: tuple[int, int] = (1, 2),
        pool_size: int = 3,
        token_size: int = 8,
        embed_dim: int = 64,
        transformer_depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        negative_slope: float = 0.1,
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(
                f"S3IMFusion is a 2D network; spatial_dims={spatial_dims} is not supported"
            )
        if token_size < 1:
            raise ValueError(f"token_size must be >= 1, not {token_size}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.token_size = token_size
        self.negative_slope = negative_slope
        self.hybrid = nn.Conv2d(2 * in_channels, features, 3, padding=1)
        self.salient = SalientBranch(features, pool_size)
        self.detail = CascadedDetailBranches(
            features, detail_depth, detail_dilations, negative_slope
        )
        self.global_branch = GlobalBranch(
            features, token_size, embed_dim, transformer_depth, num_heads, mlp_ratio
        )
        #: combination logits: (branch, channel); softmax over the four branches.
        self.branch_logits = nn.Parameter(torch.zeros(4, features))
        self.reconstruct = nn.Conv2d(features, out_channels, 3, padding=1)

    def branch_weights(self) -> torch.Tensor:
        """The combination weights ``(4, C)`` (salient, detail 1, detail 2, global); columns sum
        to 1."""
        return torch.softmax(self.branch_logits, dim=0)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Fuse two sources.

        Args:
            a: ``(B, in_channels, H, W)`` first source in ``[-1, 1]``.
            b: ``(B, in_channels, H, W)`` second source, same shape and range.

        Returns:
            ``(B, out_channels, H, W)`` fused image in ``(-1, 1)``.
        """
        h, w = a.shape[-2], a.shape[-1]
        m = self.token_size
        x = torch.cat([a, b], dim=1)
        # pad amounts written with floor division (not %) so torch.export can bound them
        # symbolically
        pw, ph = (w + m - 1) // m * m - w, (h + m - 1) // m * m - h
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        if not torch.jit.is_scripting():
            if not torch.compiler.is_exporting():
                # channels-last: 2-7x faster convolutions and max-pooling on CPU (oneDNN) at these
                # widths. Skipped under torch.export (mixed layouts make it guard on the token grid
                # size; the exported graph is NCHW) and TorchScript.
                x = x.contiguous(memory_format=torch.channels_last)
        # eval mode only: the fused path folds BatchNorm's running statistics
        if not torch.jit.is_scripting() and not self.training and fused_inference(x):
            out = self._fused_body(x)
        else:
            f = F.leaky_relu(self.hybrid(x), self.negative_slope)
            d1, d2 = self.detail(f)
            wts = self.branch_weights()[:, :, None, None]
            y = (wts[0] * self.salient(f) + wts[1] * d1 + wts[2] * d2
                 + wts[3] * self.global_branch(f))
            out = torch.tanh(self.reconstruct(y))
        # crop back by negative padding (a slice makes torch.export guard on the pad being zero)
        return F.pad(out, (0, -pw, 0, -ph)).contiguous()

    @torch.jit.unused
    def _fused_body(self, x: torch.Tensor) -> torch.Tensor:
        """Steps 1-4 on the fused CPU inference path (eval mode; the same maths re-ordered).

        Convolution + activation pairs are single oneDNN calls, the detail stages skip their
        concatenation, BatchNorm and the positive branch weights are folded into the salient and
        global branches' convolutions, and the weighted sum is accumulated in place.

        Args:
            x: ``(B, 2 in_channels, H, W)`` padded sources, channels-last.

        Returns:
            ``(B, out_channels, H, W)``.
        """
        f = fused_conv(self.hybrid, x, slope=self.negative_slope)
        d1, d2 = self.detail(f)
        wts = self.branch_weights()
        y = self.salient.fused_forward(f, wts[0])
        y.addcmul_(d1, wts[1][:, None, None]).addcmul_(d2, wts[2][:, None, None])
        y.add_(self.global_branch(f, scale=wts[3]))
        return torch.tanh(fused_conv(self.reconstruct, y))
