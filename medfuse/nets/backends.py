"""Inference backends of the networks: eager PyTorch (the reference) or ONNX Runtime on CPU."""

from __future__ import annotations

from torch import nn

__all__ = ["BACKENDS", "with_backend"]

#: inference backends of :func:`with_backend`; "eager" (PyTorch) is the reference and the default.
BACKENDS = ("eager", "onnxruntime")


def with_backend(net: nn.Module, backend: str = "eager", threads: int | None = None) -> nn.Module:
    """``net`` run by ``backend`` for CPU inference: a module with the same ``forward(a, b)``.

    ``"eager"`` returns ``net`` itself (PyTorch; the reference); ``"onnxruntime"`` wraps it in
    :class:`medfuse.nets.ort_backend.OrtNetwork` (needs ``onnxruntime``; outputs within 1e-5 of
    eager, faster on CPU, see docs/nets.md). ``threads``: ORT intra-op threads.

    Raises:
        ValueError: unknown backend.
    """
    key = backend.lower()
    if key == "eager":
        return net
    if key in ("onnxruntime", "ort"):
        from medfuse.nets.ort_backend import OrtNetwork

        return OrtNetwork(net, threads=threads)
    raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
