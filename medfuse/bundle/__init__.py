"""medfuse.bundle: MONAI bundles of the fusion networks.

* :func:`export_bundle` writes a bundle (``medfuse export-bundle``), :func:`bundle_name` names it.
* :mod:`medfuse.bundle.components`: the MONAI components its inference config uses
  (:class:`~medfuse.bundle.components.SliceFusionInferer`, :class:`~medfuse.bundle.components.ToUInt8d`).
* :mod:`medfuse.bundle.schema`: offline metadata validation (:func:`validate_metadata`).

See docs/monai.md.
"""

from __future__ import annotations

from .export import bundle_name, export_bundle
from .schema import SCHEMA_PATH, validate_metadata

__all__ = ["SCHEMA_PATH", "bundle_name", "export_bundle", "validate_metadata"]
