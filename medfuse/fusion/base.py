"""The fusion method registry: every method is one :class:`FusionMethod` subclass.

A method fuses batches of two co-registered single-channel slices::

    method = get_method("laplacian", device="cpu")
    fused = method(a, b)  # a, b: (B, 1, H, W) float32 in [0, 1] -> (B, 1, H, W) in [0, 1]

New methods subclass :class:`FusionMethod`, set ``name`` and decorate with
:func:`register_method`; the CLI's ``--method`` choices come from :func:`list_methods`. The
built-in methods are registered by name as "module:Class" strings and imported on first use (as
:mod:`medfuse.nets` does), so this module imports none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any, ClassVar

import torch

from medfuse.errors import InputError

__all__ = [
    "FusionMethod",
    "METHODS",
    "register_method",
    "get_method",
    "list_methods",
    "enable_method_cache",
]

#: built trained-network methods kept for reuse in this process (None: no caching).
_CACHE: dict[tuple[Any, ...], FusionMethod] | None = None


class FusionMethod:
    """Base class of the fusion methods.

    Subclasses implement :meth:`fuse`. Class attributes:

    * ``name``: registry name (``--method``).
    * ``description``: one line for ``--help`` and run.json.
    * ``needs_weights``: True for trained networks.
    * ``bytes_per_pixel``: rough working memory per pixel of one slice pair, used to choose the
      batch size from free memory.
    * ``cpu_batch_pixels``: most pixels (slices x H x W) in one automatic CPU batch; ``None``: no
      limit beyond memory. The networks set it: on the CPU a larger batch only adds cache misses
      (ECFusion per 512x512 slice: 835 ms alone, 1514 ms in batches of 4).

    Args:
        device: where the tensors are fused ("cpu", "cuda", "cuda:1", ...).
        options: method-specific keyword arguments (ignored by methods that take none).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs_weights: ClassVar[bool] = False
    bytes_per_pixel: ClassVar[int] = 64
    cpu_batch_pixels: ClassVar[int | None] = None

    def __init__(self, device: str | torch.device = "cpu", **options: Any) -> None:
        self.device = torch.device(device)
        self.options = options

    def fuse(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Fuse two batches of slices.

        Args:
            a: (B, 1, H, W) float32 in [0, 1] on ``self.device`` (CT, or the luma Y of PET/SPECT).
            b: (B, 1, H, W) float32 in [0, 1] on ``self.device`` (MR).

        Returns:
            (B, 1, H, W) float32 in [0, 1].
        """
        raise NotImplementedError

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Check shapes, fuse under ``torch.inference_mode`` and clamp to [0, 1]."""
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 1:
            raise InputError(
                f"{self.name}: expected two (B, 1, H, W) batches of one shape, got "
                f"{tuple(a.shape)} and {tuple(b.shape)}"
            )
        with torch.inference_mode():
            out = self.fuse(a.to(self.device, torch.float32), b.to(self.device, torch.float32))
            return out.to(torch.float32).clamp_(0.0, 1.0)

    def info(self) -> dict[str, Any]:
        """JSON-ready description (for run.json)."""
        return {"method": self.name, "description": self.description, "options": dict(self.options)}


class MethodRegistry(MutableMapping[str, type[FusionMethod]]):
    """Method name -> :class:`FusionMethod` class; an entry given as a "module:Class" string is
    imported when first looked up.

    Args:
        entries: initial ``{name: class or "module:Class"}``.
    """

    def __init__(self, entries: dict[str, type[FusionMethod] | str]) -> None:
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> type[FusionMethod]:
        entry = self._entries[name]
        if isinstance(entry, str):
            module, cls = entry.split(":")
            entry = getattr(importlib.import_module(module), cls)
            self._entries[name] = entry
        return entry

    def __setitem__(self, name: str, cls: type[FusionMethod]) -> None:
        self._entries[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"MethodRegistry({sorted(self._entries)})"


#: method name -> class (the built-ins imported on first use; :func:`register_method` adds more).
METHODS = MethodRegistry({
    "average": "medfuse.fusion.classical:AverageFusion",
    "max": "medfuse.fusion.classical:MaxFusion",
    "laplacian": "medfuse.fusion.classical:LaplacianPyramidFusion",
    "dwt": "medfuse.fusion.classical:WaveletFusion",
    "guided-filter": "medfuse.fusion.classical:GuidedFilterFusion",
    "ecfusion": "medfuse.fusion.network:ECFusionMethod",
    "s3imfusion": "medfuse.fusion.network:S3IMFusionMethod",
    "network": "medfuse.fusion.network:AnyNetworkFusion",
})


def register_method(cls: type[FusionMethod]) -> type[FusionMethod]:
    """Class decorator: add a :class:`FusionMethod` subclass to :data:`METHODS` by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    METHODS[cls.name] = cls
    return cls


def list_methods() -> list[str]:
    """Registered method names (nothing is imported)."""
    return sorted(METHODS)


def get_method(name: str, device: str | torch.device = "cpu", **options: Any) -> FusionMethod:
    """Build the method registered as ``name``.

    Args:
        name: e.g. "average", "laplacian", "ecfusion".
        device: fusion device.
        options: method options (network methods: ``task``, ``weights``).

    Raises:
        InputError: unknown method.
        WeightsError: a network method without usable weights.
    """
    names = list_methods()
    key = str(name).lower()
    if key not in METHODS:
        raise InputError(f"unknown fusion method '{name}' (known: {', '.join(names)})")
    cls = METHODS[key]
    if _CACHE is None or not cls.needs_weights:
        return cls(device=device, **options)
    ck = (key, str(torch.device(device)), *_options_key(options))
    if ck not in _CACHE:
        _CACHE[ck] = cls(device=device, **options)
    return _CACHE[ck]


def enable_method_cache(enabled: bool = True) -> None:
    """Keep the trained-network methods :func:`get_method` builds, for reuse in this process.

    Batch workers (``medfuse batch``) enable it so that a network's weights load once per worker,
    not once per study. Methods are cached per name, device and options; a weights file is keyed
    by its path, size and modification time, so a replaced file is loaded again.
    """
    global _CACHE
    _CACHE = {} if enabled else None


def _options_key(options: dict[str, Any]) -> tuple[Any, ...]:
    import os

    key: list[Any] = [repr(sorted(options.items()))]
    weights = options.get("weights")
    if weights:
        try:
            st = os.stat(weights)
            key += [st.st_size, st.st_mtime_ns]
        except OSError:
            pass
    return tuple(key)
