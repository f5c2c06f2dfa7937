"""Batched slice fusion on a device, with the batch size chosen from free memory."""

from __future__ import annotations

from collections.abc import Callable

import torch

from medfuse.errors import InputError

from .base import FusionMethod

__all__ = ["fuse_slices", "auto_batch_size", "resolve_device"]

#: largest automatic batch (slices per call).
MAX_AUTO_BATCH = 512
#: largest automatic CPU batch: the CPU kernels are already multi-threaded.
CPU_BATCH = 16
#: host memory an automatic CPU batch may use (by the method's ``bytes_per_pixel`` estimate).
CPU_BATCH_BYTES = 512 * 2**20


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; anything else as given (checked).

    Raises:
        InputError: CUDA asked for but not available.
    """
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"unknown device '{device}' (auto, cpu, cuda, cuda:N)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device '{device}' asked for but CUDA is not available here")
    return dev


def auto_batch_size(method: FusionMethod, height: int, width: int, n_slices: int) -> int:
    """Slices per batch: half the free device memory on CUDA; on CPU what
    :data:`CPU_BATCH_BYTES` holds, at most :data:`CPU_BATCH` and at most the method's
    ``cpu_batch_pixels`` (at least one slice).

    Args:
        method: the fusion method (its ``bytes_per_pixel`` estimates working memory).
        height, width: slice size.
        n_slices: slices to fuse (the batch never exceeds it).
    """
    if method.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(method.device)
        per_slice = max(1, method.bytes_per_pixel * height * width)
        batch = int(0.5 * free // per_slice)
        batch = max(1, min(batch, MAX_AUTO_BATCH))
    else:
        per_slice = max(1, method.bytes_per_pixel * height * width)
        batch = max(1, min(CPU_BATCH, int(CPU_BATCH_BYTES // per_slice)))
        if method.cpu_batch_pixels is not None:
            batch = max(1, min(batch, method.cpu_batch_pixels // max(1, height * width)))
    return max(1, min(batch, n_slices))


def fuse_slices(
    method: FusionMethod,
    a: torch.Tensor,
    b: torch.Tensor,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Fuse matching slice stacks in batches on ``method.device``.

    Args:
        method: a :class:`FusionMethod`.
        a: (N, 1, H, W) float32 in [0, 1] (any device; moved batch by batch).
        b: (N, 1, H, W) float32 in [0, 1].
        batch_size: slices per batch (default: :func:`auto_batch_size`).
        progress: called with the number of slices done after each batch.

    Returns:
        (N, 1, H, W) float32 in [0, 1] on the CPU.
    """
    if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 1:
        raise InputError(f"slice stacks differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    n, _, h, w = a.shape
    bs = batch_size or auto_batch_size(method, h, w, n)
    if bs < 1:
        raise InputError(f"batch size must be >= 1, got {bs}")
    out = torch.empty((n, 1, h, w), dtype=torch.float32)
    pin = method.device.type == "cuda"
    for start in range(0, n, bs):
        stop = min(n, start + bs)
        xa = a[start:stop].to(method.device, torch.float32, non_blocking=pin)
        xb = b[start:stop].to(method.device, torch.float32, non_blocking=pin)
        out[start:stop] = method(xa, xb).cpu()
        if progress is not None:
            progress(stop - start)
    return out
