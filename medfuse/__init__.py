"""medfuse: multimodal medical image fusion (CT, PET or SPECT with MRI) on MONAI.

The package keeps its import light: submodules (io, transforms, nets, metrics, fusion, ...) are
imported on first attribute access, so ``import medfuse`` does not pull in torch or MONAI.
"""

from __future__ import annotations

import importlib
from typing import Any

from medfuse.errors import (
    GeometryError,
    InputError,
    MedfuseError,
    OutputError,
    RegistrationError,
    RemoteError,
    WeightsError,
)

__version__ = "0.1.0"

_SUBMODULES = {
    "io", "transforms", "nets", "losses", "metrics", "engines", "fusion", "registration", "cli",
    "bundle", "integrations",
}

__all__ = [
    "__version__",
    "MedfuseError",
    "InputError",
    "GeometryError",
    "RegistrationError",
    "OutputError",
    "WeightsError",
    "RemoteError",
    *sorted(_SUBMODULES),
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"medfuse.{name}")
    raise AttributeError(f"module 'medfuse' has no attribute {name!r}")
