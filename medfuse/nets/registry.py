"""The network registry: names to "module:Class" strings, imported on first use.

Kept apart from :mod:`medfuse.nets` so that the weights loader (:mod:`medfuse.nets.pretrained`)
builds networks without importing the package that re-exports it.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch.nn as nn

__all__ = ["NETWORKS", "get_network", "list_networks", "network_class"]

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
