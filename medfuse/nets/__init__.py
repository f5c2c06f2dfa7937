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

from medfuse.nets.backends import BACKENDS, with_backend
from medfuse.nets.pretrained import TASKS, load_pretrained, load_weights, read_weights, save_weights
from medfuse.nets.registry import NETWORKS, get_network, list_networks, network_class

__all__ = [
    "NETWORKS", "TASKS", "get_network", "list_networks", "load_pretrained", "load_weights",
    "network_class", "read_weights", "save_weights", "BACKENDS", "with_backend",
]
