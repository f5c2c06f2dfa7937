"""medfuse.nets: the fusion networks (ECFusion, S3IMFusion) and their registry.

Every network follows one contract so the rest of medfuse (fusion, engines, bundles) can treat them
alike:

- constructor ``Net(spatial_dims=2, in_channels=1, out_channels=1, **hyper_parameters)``;
- ``forward(a, b)`` with two sources ``(B, in_channels, H, W)`` in ``[-1, 1]`` returns the fused
  image ``(B, out_channels, H, W)`` in ``[-1, 1]``; any ``H`` and ``W`` (the net pads what it needs
  and crops back).

Networks are registered by name and imported lazily, so ``import medfuse.nets`` stays cheap::

    net = medfuse.nets.get_network("ecfusion")
"""

from __future__ import annotations

import importlib
from typing import Any

import torch.nn as nn

from medfuse.nets.pretrained import TASKS, load_pretrained, load_weights, read_weights, save_weights

__all__ = [
    "NETWORKS", "TASKS", "get_network", "list_networks", "load_pretrained", "load_weights",
    "network_class", "read_weights", "save_weights", "BACKENDS", "with_backend",
]

#: inference backends of :func:`with_backend`; "eager" (PyTorch) is the reference and the default.
BACKENDS = ("eager", "onnxruntime")

#: registry name -> "module:Class" (imported on first use).
NETWORKS: dict[str, str] = {
    "ecfusion": "medfuse.nets.ecfusion:ECFusion",
    "s3imfusion": "medfuse.nets.s3imfusion:S3IMFusion",
}


def list_networks() -> list[str]:
    """Names accepted by :func:`get_network`."""
    return sorted(NETWORKS)


def network_class(name: str) -> type[nn.Module]:
    """The class registered under ``name`` (case-insensitive)."""
    key = name.lower()
    if key not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; use one of {', '.join(list_networks())}")
    module, cls = NETWORKS[key].split(":")
    return getattr(importlib.import_module(module), cls)


def get_network(name: str, **kwargs: Any) -> nn.Module:
    """Build the network registered under ``name`` with constructor keyword arguments ``kwargs``."""
    return network_class(name)(**kwargs)


def with_backend(net: nn.Module, backend: str = "eager", threads: int | None = None) -> nn.Module:
    """``net`` run by ``backend`` for CPU inference: a module with the same ``forward(a, b)``.

    ``"eager"`` returns ``net`` itself (PyTorch; the reference); ``"onnxruntime"`` wraps it in
    :class:`medfuse.nets.ort_backend.OrtNetwork` (needs ``onnxruntime``; outputs within 1e-5 of
    eager, faster on CPU, see docs/nets.md). ``threads``: ORT intra-op threads.
    """
    key = backend.lower()
    if key == "eager":
        return net
    if key in ("onnxruntime", "ort"):
        from medfuse.nets.ort_backend import OrtNetwork

        return OrtNetwork(net, threads=threads)
    raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
