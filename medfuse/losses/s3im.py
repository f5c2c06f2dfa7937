"""Stochastic structural similarity (S3IM) loss, S3IMFusion Eq. 5.

S3IM (Xie et al., ICCV 2023) computes SSIM not on the image but on "virtual patches" assembled from
pixels drawn in random order, so each SSIM window compares pixels from all over the image and the
loss carries non-local statistics. S3IMFusion (Lv et al., Sci. Rep. 2025) applies it between the
fused image and each source, with one permutation shared by the three images.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["S3IMLoss"]


class S3IMLoss(nn.Module):
    """``L_sim = 1 - 1/(2M) sum_m [SSIM(P_m(I_1), P_m(I_f)) + SSIM(P_m(I_2), P_m(I_f))]`` (Eq. 5).

    (The paper prints ``1 - A + B``; the sign of ``B`` is a typo, a loss must decrease with both
    similarities.)

    Exact arrangement, for ``(B, C, H, W)`` inputs and ``N = H * W`` pixels per image:

    1. ``M = repeats`` index vectors of length ``N`` over the row-major pixel positions: the first
       is the identity (original pixel order), the others random permutations
       (:meth:`permutations`). The same vectors index the fused image and both sources, and every
       sample of the batch (pixels are not mixed between samples).
    2. Each vector is extended cyclically to ``P = ceil(N / patch^2) * patch^2`` entries (the
       first ``P - N`` entries are used twice; none when ``patch^2`` divides ``N``, e.g. 256x256)
       and cut into ``P / patch^2`` virtual ``patch x patch`` images, filled row-major
       (:meth:`virtual_patches`). A 250x310 image gives 19 virtual 64x64 patches per repeat.
    3. SSIM (Eq. 4) with a ``kernel x kernel`` window and stride ``stride``, no padding, is
       averaged over all windows of all virtual patches, repeats and samples, per source.

    S3IM's reference code lays the ``M`` index vectors of one 4096-ray batch side by side as a
    single ``64 x 64M`` image; with non-overlapping windows (``kernel == stride``) that is the same
    set of windows for the permuted repeats. Its SSIM window is a truncated Gaussian with zero
    padding 1; here the window is uniform by default (plain statistics of the ``k x k`` region, as
    Eq. 4 states them) and never padded, so every window holds image pixels only.

    SSIM constants: inputs are first mapped from ``value_range`` to ``[0, 1]`` and the standard
    ``C1 = (k1 * 1)^2``, ``C2 = (k2 * 1)^2`` are used. For ``[-1, 1]`` data this equals SSIM
    computed on the ``[0, 1]`` images (same as ``C1 = (2 k1)^2``, ``C2 = (2 k2)^2`` with data
    range 2 for the contrast-structure term) and keeps the luminance term meaningful: without the
    shift, means of opposite sign around 0 would give negative luminance similarity.

    Args:
        repeats: ``M``, number of pixel orderings (the first is the identity).
        patch: side of the virtual patches.
        kernel: SSIM window side.
        stride: SSIM window stride.
        value_range: ``(low, high)`` of the inputs; medfuse networks use ``(-1, 1)``.
        k1: SSIM luminance constant factor.
        k2: SSIM contrast constant factor.
        window: ``"uniform"`` or ``"gaussian"`` (``sigma``-weighted, centred in the window).
        sigma: Gaussian window width in pixels.
        seed: when given, permutations come from a private ``torch.Generator`` seeded with it (drawn
            on the CPU and moved to the inputs' device), so a sequence of calls is reproducible;
            otherwise from the global RNG of the inputs' device.
    """

    def __init__(
        self,
        repeats: int = 10,
        patch: int = 64,
        kernel: int = 4,
        stride: int = 4,
        value_range: tuple[float, float] = (-1.0, 1.0),
        k1: float = 0.01,
        k2: float = 0.03,
        window: str = "uniform",
        sigma: float = 1.5,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, not {repeats}")
        if not 1 <= kernel <= patch:
            raise ValueError(f"need 1 <= kernel <= patch, got kernel={kernel}, patch={patch}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, not {stride}")
        if value_range[1] <= value_range[0]:
            raise ValueError(f"value_range must be (low, high) with low < high, not {value_range}")
        if window not in ("uniform", "gaussian"):
            raise ValueError(f"window must be 'uniform' or 'gaussian', not {window!r}")
        self.repeats = repeats
        self.patch = patch
        self.kernel = kernel
        self.stride = stride
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.c1 = k1**2
        self.c2 = k2**2
        self.uniform = window == "uniform"
        if self.uniform:
            w1 = torch.ones(kernel)
        else:
            pos = torch.arange(kernel, dtype=torch.float64) - (kernel - 1) / 2
            w1 = torch.exp(-(pos**2) / (2 * sigma**2)).float()
        w2 = torch.outer(w1, w1)
        self.register_buffer("window", (w2 / w2.sum())[None, None], persistent=False)
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def permutations(self, num_pixels: int,
                     device: torch.device | str | None = None) -> torch.Tensor:
        """Pixel orderings for one call: ``(repeats, num_pixels)`` int64, row 0 the identity.

        Draws ``repeats - 1`` random permutations (from the private generator when ``seed`` was
        given, which advances it).
        """
        rows = [torch.arange(num_pixels, device=device)]
        for _ in range(self.repeats - 1):
            if self.generator is not None:
                rows.append(torch.randperm(num_pixels, generator=self.generator).to(device))
            else:
                rows.append(torch.randperm(num_pixels, device=device))
        return torch.stack(rows)

    def virtual_patches(self, x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """Rearrange ``x`` into virtual patches following ``order``.

        Args:
            x: ``(B, C, H, W)``.
            order: ``(R, H * W)`` pixel orderings from :meth:`permutations`.

        Returns:
            ``(B * R * n, C, patch, patch)`` with ``n = ceil(H * W / patch^2)``, ordered by sample,
            then repeat, then patch.
        """
        b, c = x.shape[0], x.shape[1]
        n_pix = order.shape[1]
        p2 = self.patch * self.patch
        n = math.ceil(n_pix / p2)
        idx = order[:, torch.arange(n * p2, device=order.device) % n_pix].reshape(-1)  # cyclic fill
        v = x.reshape(b, c, n_pix)[:, :, idx]  # (B, C, R * n * p2)
        v = v.reshape(b, c, -1, self.patch, self.patch).transpose(1, 2)
        return v.reshape(-1, c, self.patch, self.patch)

    def ssim_terms(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                   order: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean S3IM similarity of ``(a, fused)`` and of ``(b, fused)``, scalars in ``[-1, 1]``.

        Args:
            fused: ``(B, C, H, W)`` fused image in ``value_range``.
            a: ``(B, C, H, W)`` first source.
            b: ``(B, C, H, W)`` second source.
            order: pixel orderings ``(R, H * W)``; drawn with :meth:`permutations` when ``None``.
        """
        if not (fused.shape == a.shape == b.shape) or fused.dim() != 4:
            raise ValueError(f"need three (B, C, H, W) tensors of one shape, got {fused.shape}, "
                             f"{a.shape}, {b.shape}")
        if order is None:
            order = self.permutations(fused.shape[-2] * fused.shape[-1], fused.device)
        lo, hi = self.value_range
        c = fused.shape[1]
        x = torch.cat([fused, a, b], dim=1)
        x = self.virtual_patches((x - lo) / (hi - lo), order)  # (M, 3C, p, p): fused, a, b
        f, s1, s2 = x[:, :c], x[:, c:2 * c], x[:, 2 * c:]
        maps = torch.cat([f, s1, s2, f * f, s1 * s1, s2 * s2, f * s1, f * s2], dim=1)
        if self.uniform:
            st = F.avg_pool2d(maps, self.kernel, self.stride)  # same as the uniform window, faster
        else:
            win = self.window.to(maps.dtype).expand(8 * c, 1, self.kernel, self.kernel)
            st = F.conv2d(maps, win, stride=self.stride, groups=8 * c)
        mu_f, mu_1, mu_2, e_ff, e_11, e_22, e_f1, e_f2 = st.split(c, dim=1)
        var_f = e_ff - mu_f * mu_f
        return (self._ssim(mu_f, mu_1, var_f, e_11 - mu_1 * mu_1, e_f1 - mu_f * mu_1).mean(),
                self._ssim(mu_f, mu_2, var_f, e_22 - mu_2 * mu_2, e_f2 - mu_f * mu_2).mean())

    def _ssim(self, mu_x: torch.Tensor, mu_y: torch.Tensor, var_x: torch.Tensor,
              var_y: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """SSIM map of Eq. 4 from window statistics."""
        return ((2 * mu_x * mu_y + self.c1) * (2 * cov + self.c2)) / (
            (mu_x * mu_x + mu_y * mu_y + self.c1) * (var_x + var_y + self.c2)
        )

    def forward(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Scalar loss in ``[0, 2]``; 0 when ``fused``, ``a`` and ``b`` are equal.

        Args:
            fused: ``(B, C, H, W)`` fused image in ``value_range``.
            a: ``(B, C, H, W)`` first source.
            b: ``(B, C, H, W)`` second source.
        """
        s1, s2 = self.ssim_terms(fused, a, b)
        return 1.0 - 0.5 * (s1 + s2)
