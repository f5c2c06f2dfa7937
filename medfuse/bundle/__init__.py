"""medfuse.bundle: MONAI bundles of the fusion networks.

* :func:`export_bundle` writes a bundle (``medfuse export-bundle``), :func:`bundle_name` names it.
* :mod:`medfuse.bundle.components`: the MONAI components its inference config uses
  (:class:`~medfuse.bundle.components.SliceFusionInferer`,
  :class:`~medfuse.bundle.components.ToUInt8d`).
* :mod:`medfuse.bundle.schema`: offline metadata validation (:func:`validate_metadata`).

See docs/monai.md.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["SCHEMA_PATH", "bundle_name", "export_bundle", "validate_metadata"]

_LAZY = {"SCHEMA_PATH": "schema", "validate_metadata": "schema", "bundle_name": "export",
         "export_bundle": "export"}


def __getattr__(name: str) -> Any:
    """Import on first use (``python -m medfuse.bundle.schema`` runs without a double import)."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
