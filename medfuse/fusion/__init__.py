"""medfuse.fusion: fusion methods behind one registry, and the ``medfuse fuse`` pipeline.

* :func:`get_method` / :func:`list_methods` / :func:`register_method` - the method registry
  (classical baselines ``average``, ``max``, ``laplacian``, ``dwt``, ``guided-filter`` and the
  networks ``ecfusion``, ``s3imfusion``, ``network``).
* :func:`fuse_slices` - batched slice fusion on a device.
* :func:`fuse_volumes` - the whole volume pipeline (load, register, window, fuse, write);
  :func:`fuse_folders` - paper-style folders of 2D image pairs.

See docs/fuse.md.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "METHODS",
    "FusionMethod",
    "get_method",
    "list_methods",
    "register_method",
    "fuse_slices",
    "auto_batch_size",
    "fuse_volumes",
    "fuse_folders",
    "FuseOptions",
]

#: public name -> module (imported on first use, so ``import medfuse.fusion`` stays light).
_LAZY = {
    "METHODS": "medfuse.fusion.base",
    "FusionMethod": "medfuse.fusion.base",
    "get_method": "medfuse.fusion.base",
    "list_methods": "medfuse.fusion.base",
    "register_method": "medfuse.fusion.base",
    "fuse_slices": "medfuse.fusion.slices",
    "auto_batch_size": "medfuse.fusion.slices",
    "fuse_volumes": "medfuse.fusion.pipeline",
    "FuseOptions": "medfuse.fusion.options",
    "fuse_folders": "medfuse.fusion.folders",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
