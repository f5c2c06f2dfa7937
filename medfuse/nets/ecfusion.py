"""ECFusion: edge enhancement and a cross-scale transformer (Luo et al., Sci Rep 2025).

Structure (paper Fig. 2, Sec. "ECFusion framework"):

1. Edge-Augmented Module (EAM), one per source (no shared weights): the Sobel edge map
   ``I_edge = sqrt((G_x * I)^2 + (G_y * I)^2)`` (Eq. 1), a 3x3 channel-expansion head to
   ``features`` channels, then 8 residual blocks ``x + FE(conv(lrelu(conv(x))), I_edge)`` whose
   Feature Enhancement module implements Eqs. 2-4. The outputs after blocks 2, 4 and 8 are the
   three levels of the multi-path strategy.
2. Cross-Scale Transformer Fusion (CSTF), one per level. Its Hierarchical Cross-Scale Embedding
   Layer (HCEL, Eqs. 5-8, Algorithm 1) tokenises ``fea_0 = X`` and its stride-2 downsamplings
   ``fea_1..fea_n`` with convolutions of kernel ``P`` and stride ``P / 2^i`` (padding
   ``(P - P / 2^i) / 2``, so every scale gives the same ``N = HW / P^2`` tokens); ``Q = K`` is the
   concatenation of all scales' tokens (``sum(C_i)`` channels) and ``V = token_0``. Cross attention
   in both directions with a learnable relative position bias, post-norm residuals and an MLP
   (Eqs. 9-11); ``T`` is projected to the feature width, resampled (bilinear) to ``H x W`` and
   multiplied into ``X`` and ``Y`` (Eq. 12). Combine (Eq. 13): the element-wise maximum, minimum and
   sum of the updated ``X`` and ``Y`` are concatenated and merged by a 1x1 convolution.
3. Decoder: the three fused levels, concatenated, pass three 3x3 convolutions (LeakyReLU between)
   and a ``tanh``: the fused image lies in ``[-1, 1]``, like the inputs.

Where the paper is silent, these choices (all constructor arguments):

- ``features = 16`` (the paper's ``C_edge``). With the paper's token widths ``{32, 8, 8, 8}`` the
  kernel-16 tokenisers dominate the size (``features * 16 * 16 * sum(C_i)`` weights per HCEL);
  ``features = 16`` with one HCEL per level shared by the X and Y branches (a siamese embedding,
  so that ``Q_y K_x^T`` compares tokens of one space) is what lands at the paper's 0.92 M
  parameters; separate HCELs per branch or ``features = 32`` would double it or more.
- Because ``V = token_0`` has ``C_0 = 32`` channels and ``X`` has ``features``, Eq. 12's
  resampling ``Re`` includes a 1x1 projection from ``C_0`` to ``features``.
- The relative position bias ``p`` of Eq. 11 is Swin-V2's continuous position bias: a small MLP
  of the log-spaced relative offsets between token positions, so it works for any token grid
  (any image size) rather than a fixed window.
- One attention head (``num_heads``), MLP ratio 2 (``mlp_ratio``), LayerNorm as ``norm``.

Size and cost (``python benchmarks/bench_nets.py``, torch 2.13 CPU): 831,145 parameters (paper:
0.92 M); at one 256x256 pair 6.38 G multiply-accumulates = 12.76 GFLOPs counted by
``torch.utils.flop_counter`` (which counts 2 FLOPs per MAC). The paper's 14.56 "GFLOPs" most
likely counts MACs (thop/ptflops style), the residual blocks' exact layout being unknown. CPU
forward: 294 ms per pair at batch 1 on 2 idle cores (406 ms on one).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from medfuse.nets.blocks import (
    Sobel,
    crop_to,
    fused_conv,
    fused_conv_neighbourhoods,
    fused_inference,
    neighbourhoods,
    pad_to_multiple,
)

__all__ = [
    "ClipInEval",
    "ECFusion",
    "OUT_ACTIVATIONS",
    "EdgeAugmentedModule",
    "FeatureEnhancement",
    "HCEL",
    "CrossScaleTransformerFusion",
]


#: ECFusion's output activations (the paper names none).
OUT_ACTIVATIONS = ("tanh", "clamp", "identity")


class FeatureEnhancement(nn.Module):
    """Feature Enhancement module (paper Fig. 3, Eqs. 2-4).

    ``F_edge = LeakyReLU(Conv(I_edge))``; ``M_c = GELU(MLP(GMP(F_edge)) + MLP(GAP(F_edge)))`` with
    one shared two-layer MLP of reduction ``r``; ``F_out = F_in * F_edge + F_in * M_c``.

    Args:
        channels: ``C``, the width of ``F_in``.
        reduction: ``r`` (paper: 2).
    """

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        self.edge_conv = nn.Conv2d(1, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels)
        )

    def forward(self, f_in: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        """Enhance ``f_in`` ``(B, C, H, W)`` with the edge map ``edge`` ``(B, 1, H, W)``."""
        f_edge = self.act(self.edge_conv(edge))
        m_c = self.channel_weights(f_edge)
        return f_in * f_edge + f_in * m_c

    def channel_weights(self, f_edge: torch.Tensor, pool: bool = False) -> torch.Tensor:
        """``M_c`` ``(B, C, 1, 1)`` of ``F_edge`` ``(B, C, H, W)`` (Eq. 3).

        ``pool``: take the global maximum by ``adaptive_max_pool2d`` (the same values; 8x faster
        than ``amax`` over ``H, W`` on a channels-last CPU tensor).
        """
        if pool:
            gmp = F.adaptive_max_pool2d(f_edge, 1).flatten(1)
        else:
            gmp = torch.amax(f_edge, dim=(2, 3))
        gap = torch.mean(f_edge, dim=(2, 3))
        return F.gelu(self.mlp(gmp) + self.mlp(gap))[:, :, None, None]


class _ResidualBlock(nn.Module):
    """``x + FE(conv(lrelu(conv(x))), I_edge)``."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.fe = FeatureEnhancement(channels, reduction)

    def forward(self, x: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        if fused_inference(x):
            return self.fused_forward(x, neighbourhoods(edge))
        return x + self.fe(self.conv2(self.act(self.conv1(x))), edge)

    def fused_forward(self, x: torch.Tensor, edge_cols: torch.Tensor) -> torch.Tensor:
        """The block on the fused CPU inference path.

        ``x + conv2(lrelu(conv1(x))) * (F_edge + M_c)``: the same maths in 3 fused oneDNN calls and
        3 passes over the features (the reference: 3 + 2 activations and 7 passes), all
        channels-last; the edge convolution as a 1x1 convolution of the edge map's 3x3
        neighbourhoods ``edge_cols`` ``(B, 9, H, W)`` (:func:`~medfuse.nets.blocks.neighbourhoods`).
        """
        slope = self.act.negative_slope
        f_edge = fused_conv_neighbourhoods(self.fe.edge_conv, edge_cols, slope)
        gate = f_edge.add_(self.fe.channel_weights(f_edge, pool=True))  # in place: no new map
        h = fused_conv(self.conv1, x, slope=slope)
        return fused_conv(self.conv2, h, other=gate, binary="mul").add_(x)


class EdgeAugmentedModule(nn.Module):
    """Edge-Augmented Module: Sobel edge map, channel-expansion head, residual FE blocks.

    Args:
        in_channels: channels of the source image.
        features: ``C_edge``.
        num_blocks: residual blocks (paper: 8).
        taps: 1-based indices of the blocks whose outputs are returned (paper: 2, 4, 8).
        reduction: FE MLP reduction ``r``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        features: int = 16,
        num_blocks: int = 8,
        taps: tuple[int, ...] = (2, 4, 8),
        reduction: int = 2,
    ) -> None:
        super().__init__()
        if not taps or max(taps) > num_blocks or min(taps) < 1:
            raise ValueError(f"taps {taps} must lie in 1..{num_blocks}")
        self.taps = tuple(sorted(taps))
        self.sobel = Sobel("magnitude")
        self.head = nn.Sequential(nn.Conv2d(in_channels, features, 3, padding=1), nn.LeakyReLU(0.2))
        self.blocks = nn.ModuleList(_ResidualBlock(features, reduction) for _ in range(num_blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Multi-level features of ``x`` ``(B, in_channels, H, W)``: a list of ``(B, C, H, W)``."""
        edge = self.sobel(x).mean(dim=1, keepdim=True)
        out: list[torch.Tensor] = []
        if not fused_inference(x):
            f = self.head(x)
            for i, block in enumerate(self.blocks):
                f = block(f, edge)
                if i + 1 in self.taps:
                    out.append(f)
            return out
        # fused CPU inference: every map channels-last; one-channel 3x3 convolutions as 1x1
        # convolutions of the 3x3 neighbourhoods, which are gathered once per image
        head = self.head[0]
        assert isinstance(head, nn.Conv2d)
        slope = float(self.head[1].negative_slope)
        if x.shape[1] == 1:
            f = fused_conv_neighbourhoods(head, neighbourhoods(x), slope)
        else:
            f = fused_conv(head, x, slope=slope)
        edge_cols = neighbourhoods(edge)
        blocks: list[_ResidualBlock] = list(self.blocks)
        for i, block in enumerate(blocks):
            f = block.fused_forward(f, edge_cols)
            if i + 1 in self.taps:
                out.append(f)
        return out


class HCEL(nn.Module):
    """Hierarchical Cross-Scale Embedding Layer (Eqs. 5-8, Algorithm 1).

    Args:
        channels: ``C`` of the input feature map.
        patch_size: ``P`` (paper: 16).
        token_channels: ``C_0..C_n`` (paper: 32, 8, 8, 8, so ``n = 3``).
    """

    def __init__(
        self, channels: int, patch_size: int = 16, token_channels: tuple[int, ...] = (32, 8, 8, 8)
    ) -> None:
        super().__init__()
        n = len(token_channels) - 1
        if patch_size % (2**n) or patch_size // (2**n) < 1:
            raise ValueError(f"patch_size {patch_size} must be divisible by 2^n = {2**n}")
        self.patch_size = patch_size
        self.tokenizers = nn.ModuleList()
        for i, c_i in enumerate(token_channels):
            stride = patch_size // (2**i)
            self.tokenizers.append(
                nn.Conv2d(
                    channels, c_i, patch_size, stride=stride, padding=(patch_size - stride) // 2
                )
            )
        self.downsamplers = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in range(n)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens of ``x`` ``(B, C, H, W)``, ``H`` and ``W`` multiples of ``P``.

        Returns:
            ``qk`` ``(B, N, sum(C_i))`` and ``v`` ``(B, N, C_0)`` with ``N = H W / P^2``.
        """
        tokens: list[torch.Tensor] = []
        fea = x
        for i, tk in enumerate(self.tokenizers):
            tokens.append(tk(fea).flatten(2).transpose(1, 2))
            if i < len(self.downsamplers):
                fea = self.downsamplers[i](fea)
        return torch.cat(tokens, dim=2), tokens[0]


class _RelativePositionBias(nn.Module):
    """Continuous relative position bias (Swin-V2): an MLP of log-spaced token offsets."""

    def __init__(self, num_heads: int, hidden: int = 64) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.mlp = nn.Sequential(
            nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, num_heads, bias=False)
        )
        #: inference cache: (grid, device, dtype, weights' identity and version) -> bias
        self._cache: dict[tuple, torch.Tensor] = {}

    def forward(self, gh: int, gw: int) -> torch.Tensor:
        """Bias ``(heads, N, N)`` for a ``gh x gw`` token grid.

        In eval mode without autograd (the fused inference path) the bias depends only on the grid
        and the MLP weights, so it is cached per grid; the key holds every weight's identity,
        storage and in-place version counter, so ``load_state_dict``, an optimiser step, ``.to()``
        or ``train()`` can never serve a stale bias.
        """
        if self.training or not fused_inference(self.mlp[0].weight):
            self._cache.clear()
            return self._compute(gh, gw)
        params = tuple((id(p), p.data_ptr(), p._version) for p in self.mlp.parameters())
        key = (gh, gw, self.mlp[0].weight.device, self.mlp[0].weight.dtype, params)
        bias = self._cache.get(key)
        if bias is None:
            if any(k[4] != params for k in self._cache) or len(self._cache) >= 8:
                self._cache.clear()
            bias = self._cache[key] = self._compute(gh, gw)
        return bias

    def _compute(self, gh: int, gw: int) -> torch.Tensor:
        device = self.mlp[0].weight.device
        dtype = self.mlp[0].weight.dtype
        dy = torch.arange(-(gh - 1), gh, device=device, dtype=dtype)
        dx = torch.arange(-(gw - 1), gw, device=device, dtype=dtype)
        table = torch.stack(torch.meshgrid(dy, dx, indexing="ij"), dim=-1)  # (2gh-1, 2gw-1, 2)
        table = torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8.0)
        values = 16.0 * torch.sigmoid(self.mlp(table))  # (2gh-1, 2gw-1, heads)
        ys = torch.arange(gh, device=device).repeat_interleave(gw)
        xs = torch.arange(gw, device=device).repeat(gh)
        iy = (ys[:, None] - ys[None, :]) + gh - 1
        ix = (xs[:, None] - xs[None, :]) + gw - 1
        return values[iy, ix].permute(2, 0, 1)


class _CrossAttentionBranch(nn.Module):
    """``T = V + norm(Attn(Q_other, K, V)); T = T + norm(MLP(T))`` (Eqs. 9-11)."""

    def __init__(self, qk_dim: int, v_dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        if qk_dim % num_heads or v_dim % num_heads:
            raise ValueError(f"num_heads {num_heads} must divide {qk_dim} and {v_dim}")
        self.num_heads = num_heads
        self.scale = (qk_dim // num_heads) ** -0.5
        self.norm1 = nn.LayerNorm(v_dim)
        hidden = int(v_dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(v_dim, hidden), nn.GELU(), nn.Linear(hidden, v_dim))
        self.norm2 = nn.LayerNorm(v_dim)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        """``T`` ``(B, N, C_v)`` of queries ``q``, keys ``k`` ``(B, N, C_qk)``, values ``v``
        ``(B, N, C_v)`` and the position bias ``(heads, N, N)``.

        :class:`CrossScaleTransformerFusion` calls it in float32 whatever autocast says: the
        tokens reach several hundred, so the logits ``Q K^T`` overflow float16 (NaN output), and
        bfloat16's rounding of them changes which tokens the (sharp) softmax picks.
        """
        b, n, _ = q.shape
        h = self.num_heads
        qh = q.reshape(b, n, h, -1).transpose(1, 2)
        kh = k.reshape(b, n, h, -1).transpose(1, 2)
        vh = v.reshape(b, n, h, -1).transpose(1, 2)
        attn = torch.softmax(qh @ kh.transpose(-2, -1) * self.scale + bias.unsqueeze(0), dim=-1)
        out = (attn @ vh).transpose(1, 2).reshape(b, n, -1)
        t = v + self.norm1(out)
        return t + self.norm2(self.mlp(t))


class CrossScaleTransformerFusion(nn.Module):
    """Cross-Scale Transformer Fusion of two feature maps of one level (Eqs. 5-13).

    Args:
        channels: ``C`` of ``X`` and ``Y``.
        patch_size: ``P``.
        token_channels: ``C_0..C_n``.
        num_heads: attention heads (divides ``sum(C_i)`` and ``C_0``).
        mlp_ratio: hidden width of the token MLP relative to ``C_0``.
    """

    def __init__(
        self,
        channels: int,
        patch_size: int = 16,
        token_channels: tuple[int, ...] = (32, 8, 8, 8),
        num_heads: int = 1,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.hcel = HCEL(channels, patch_size, token_channels)
        qk_dim, v_dim = sum(token_channels), token_channels[0]
        self.bias = _RelativePositionBias(num_heads)
        self.branch_x = _CrossAttentionBranch(qk_dim, v_dim, num_heads, mlp_ratio)
        self.branch_y = _CrossAttentionBranch(qk_dim, v_dim, num_heads, mlp_ratio)
        self.proj_x = nn.Conv2d(v_dim, channels, 1)
        self.proj_y = nn.Conv2d(v_dim, channels, 1)
        self.combine = nn.Conv2d(3 * channels, channels, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Fuse ``x`` and ``y`` ``(B, C, H, W)`` (``H``, ``W`` multiples of ``P``) into one
        ``(B, C, H, W)``."""
        _, _, hh, ww = x.shape
        gh, gw = hh // self.patch_size, ww // self.patch_size
        with torch.autocast(x.device.type, enabled=False):
            # the token path (HCEL, attention) in float32: the tokens reach several hundred, so the
            # logits overflow float16 (NaN), and bfloat16 tokens change which tokens the sharp
            # softmax picks (mean error 20 grey levels); N = HW / P^2 tokens cost little
            qk_x, v_x = self.hcel(x.float())
            qk_y, v_y = self.hcel(y.float())
            bias = self.bias(gh, gw)
            t_x = self.branch_x(qk_y, qk_x, v_x, bias)
            t_y = self.branch_y(qk_x, qk_y, v_y, bias)
        t_x = t_x.transpose(1, 2).reshape(x.shape[0], -1, gh, gw)
        t_y = t_y.transpose(1, 2).reshape(y.shape[0], -1, gh, gw)
        if fused_inference(x):
            return self._fused_tail(x, y, t_x, t_y)
        x = x * F.interpolate(self.proj_x(t_x), size=(hh, ww), mode="bilinear", align_corners=False)
        y = y * F.interpolate(self.proj_y(t_y), size=(hh, ww), mode="bilinear", align_corners=False)
        return self.combine(torch.cat([torch.maximum(x, y), torch.minimum(x, y), x + y], dim=1))

    def _fused_tail(
        self, x: torch.Tensor, y: torch.Tensor, t_x: torch.Tensor, t_y: torch.Tensor
    ) -> torch.Tensor:
        """Eq. 12-13 for inference: channels-last resampling and no 3-way concatenation.

        ``max + min = x + y``, so ``W [max; min; x + y] = (W_1 + W_3) max + (W_2 + W_3) min``: two
        1x1 convolutions, the second adding the first as a oneDNN post-op.
        """
        size = x.shape[-2:]
        cl = torch.channels_last
        up_x = self.proj_x(t_x).contiguous(memory_format=cl)
        up_y = self.proj_y(t_y).contiguous(memory_format=cl)
        x = F.interpolate(up_x, size=size, mode="bilinear", align_corners=False).mul_(x)
        y = F.interpolate(up_y, size=size, mode="bilinear", align_corners=False).mul_(y)
        w1, w2, w3 = self.combine.weight.chunk(3, dim=1)
        hi = fused_conv(None, torch.maximum(x, y), weight=w1 + w3, bias=self.combine.bias)
        return fused_conv(None, torch.minimum(x, y), other=hi, binary="add", weight=w2 + w3,
                          inplace=True)


class ClipInEval(nn.Module):
    """Identity while training, clipped to ``[-1, 1]`` in eval mode (ECFusion's ``"identity"``
    output).

    Training then sees the raw output: a black background (-1) with the sources' noise around it
    costs nothing more than a grey one, where a clamp's zero gradient below -1 (or a tanh's
    saturation) makes the Sobel term pay for every clipped noise excursion and holds the
    background above black.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> the same, clipped to ``[-1, 1]`` unless training."""
        return x if self.training else x.clamp(-1.0, 1.0)


class ECFusion(nn.Module):
    """ECFusion network: two sources in, one fused image out.

    Args:
        spatial_dims: must be 2 (the network fuses slices).
        in_channels: channels per source (1: grayscale or the Y of YCbCr).
        out_channels: channels of the fused image.
        features: ``C_edge``, width of the EAM features (default 16, see the module docstring).
        num_blocks: residual blocks per EAM (paper: 8).
        taps: blocks whose outputs feed the multi-path fusion (paper: 2, 4, 8).
        reduction: FE MLP reduction ``r`` (paper: 2).
        patch_size: HCEL patch size ``P`` (paper: 16).
        token_channels: HCEL token widths ``C_0..C_n`` (paper: 32, 8, 8, 8).
        num_heads: attention heads.
        mlp_ratio: token MLP width ratio.
        out_activation: ``"tanh"`` (default; the older shipped weights), ``"clamp"`` (identity
            inside ``[-1, 1]``, clipped outside: black, -1, is reached with a full gradient up to
            it) or ``"identity"`` (:class:`ClipInEval`: unclipped while training, clipped in eval
            mode); see docs/nets.md.

    Inputs and output are ``(B, C, H, W)`` in ``[-1, 1]``; any ``H``, ``W`` (reflect-padded to a
    multiple of ``patch_size`` and cropped back).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        features: int = 16,
        num_blocks: int = 8,
        taps: tuple[int, ...] = (2, 4, 8),
        reduction: int = 2,
        patch_size: int = 16,
        token_channels: tuple[int, ...] = (32, 8, 8, 8),
        num_heads: int = 1,
        mlp_ratio: float = 2.0,
        out_activation: str = "tanh",
    ) -> None:
        super().__init__()
        if out_activation not in OUT_ACTIVATIONS:
            raise ValueError(f"out_activation must be one of {', '.join(OUT_ACTIVATIONS)}, "
                             f"not {out_activation!r}")
        if spatial_dims != 2:
            raise ValueError(
                f"ECFusion is a 2D network (spatial_dims=2), got spatial_dims={spatial_dims}"
            )
        taps = tuple(taps)
        token_channels = tuple(token_channels)
        self.patch_size = patch_size
        self.eam_a = EdgeAugmentedModule(in_channels, features, num_blocks, taps, reduction)
        self.eam_b = EdgeAugmentedModule(in_channels, features, num_blocks, taps, reduction)
        self.cstf = nn.ModuleList(
            CrossScaleTransformerFusion(features, patch_size, token_channels, num_heads, mlp_ratio)
            for _ in taps
        )
        levels = len(taps) * features
        self.decoder = nn.Sequential(
            nn.Conv2d(levels, features, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(features, features // 2, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(features // 2, out_channels, 3, padding=1),
            {"tanh": nn.Tanh(), "clamp": nn.Hardtanh(-1.0, 1.0), "identity": ClipInEval()}[
                out_activation],
        )

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Fuse two sources.

        Args:
            a: ``(B, in_channels, H, W)`` in ``[-1, 1]`` (CT, or the Y of PET/SPECT).
            b: ``(B, in_channels, H, W)`` in ``[-1, 1]`` (MRI).

        Returns:
            ``(B, out_channels, H, W)`` in ``[-1, 1]`` (tanh or clamp).
        """
        a, size = pad_to_multiple(a, self.patch_size)
        b, _ = pad_to_multiple(b, self.patch_size)
        if not torch.compiler.is_exporting():
            # channels-last: oneDNN's convolutions are several times faster at these widths on CPU
            # (and tensor cores want it on GPU); the exported graph stays NCHW.
            a = a.contiguous(memory_format=torch.channels_last)
            b = b.contiguous(memory_format=torch.channels_last)
        fa = self.eam_a(a)
        fb = self.eam_b(b)
        fused = [cstf(x, y) for cstf, x, y in zip(self.cstf, fa, fb)]
        return crop_to(self._decode(torch.cat(fused, dim=1)), size).contiguous()

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder; on the fused inference path a conv + LeakyReLU pair is one oneDNN call."""
        if not fused_inference(z):
            return self.decoder(z)
        layers = list(self.decoder)
        i = 0
        while i < len(layers):
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(layers[i], nn.Conv2d) and isinstance(nxt, nn.LeakyReLU):
                z = fused_conv(layers[i], z, slope=nxt.negative_slope)
                i += 2
            else:
                z = layers[i](z)
                i += 1
        return z
