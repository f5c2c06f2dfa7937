"""MONAI components the medfuse bundles and the MONAI Label task are built from.

:class:`SliceFusionInferer` is a :class:`monai.inferers.Inferer` for the two-input fusion networks:
it takes a batch of co-gridded volume pairs stacked as channels ``(B, 2, I, J, K)`` (channel 0 is
input A: CT, PET or SPECT; channel 1 is input B: MR), cuts each into slices exactly as
``medfuse fuse`` does (:class:`~medfuse.transforms.ExtractSlices`, radiological layout), fuses the
slice batches with :class:`~medfuse.fusion.network.NetworkFusion` (``net(a, b)`` in [-1, 1]) and
restacks the result onto the volume grid, so the output is ``(B, 1, I, J, K)`` in [0, 1] with the
input's affine. MONAI's own :class:`~monai.inferers.SliceInferer` feeds a one-input network with
unflipped voxel slices, which would neither call ``net(a, b)`` nor match ``medfuse fuse``.

:class:`ToUInt8d` turns the [0, 1] result into the uint8 volume ``medfuse fuse`` writes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
import torch.nn as nn
from monai.config import KeysCollection
from monai.inferers import Inferer
from monai.transforms import MapTransform

__all__ = ["SliceFusionInferer", "ToUInt8d"]


class SliceFusionInferer(Inferer):
    """Slice-wise fusion of volume pairs with a two-input network.

    Args:
        axis: slice axis, "axial" (default), "coronal", "sagittal" or a voxel axis 0/1/2.
        batch_size: slices per network call (None: from free memory, as ``medfuse fuse``).
        amp: autocast (float16) on CUDA.
    """

    def __init__(
        self, axis: str | int = "axial", batch_size: int | None = None, amp: bool = True
    ) -> None:
        super().__init__()
        self.axis = axis
        self.batch_size = batch_size
        self.amp = amp

    def fuse_volume(self, pair: torch.Tensor, network: nn.Module) -> torch.Tensor:
        """Fuse one pair ``(2, I, J, K)`` (a MetaTensor with an affine) -> ``(1, I, J, K)``.

        The fused volume is in [0, 1].
        """
        from medfuse.errors import InputError
        from medfuse.fusion.network import NetworkFusion
        from medfuse.fusion.slices import fuse_slices
        from medfuse.transforms import ExtractSlices, StackSlices

        if pair.ndim != 4 or pair.shape[0] != 2:
            raise InputError(
                f"fusion inferer expects a (2, I, J, K) volume pair, got {tuple(pair.shape)}"
            )
        device = next(network.parameters()).device
        method = NetworkFusion(device=device, model=network, amp=self.amp)
        slices = ExtractSlices(self.axis)(pair)
        src = slices.as_tensor().float().cpu()
        fused = fuse_slices(
            method, src[:, :1].contiguous(), src[:, 1:].contiguous(), batch_size=self.batch_size
        )
        return StackSlices(self.axis)(fused, slices)

    def __call__(  # type: ignore[override]  # the bundle's network is an nn.Module
        self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """Fuse a batch ``(B, 2, I, J, K)`` -> ``(B, 1, I, J, K)`` (MetaTensor, inputs' meta)."""
        from monai.data import MetaTensor, decollate_batch, list_data_collate

        with torch.no_grad():
            if inputs.ndim == 4:  # one unbatched pair
                return self.fuse_volume(inputs, network)
            if isinstance(inputs, MetaTensor) and inputs.is_batch:  # collated by a DataLoader
                items = decollate_batch(inputs, detach=True)
            else:  # one pair with a batch axis added (``x[None]``): each item has the pair's affine
                affine = inputs.affine if isinstance(inputs, MetaTensor) else None
                meta = dict(inputs.meta) if isinstance(inputs, MetaTensor) else {}
                items = [MetaTensor(v, affine=affine, meta=meta) for v in torch.as_tensor(inputs)]
            outs = [self.fuse_volume(v, network) for v in items]
        return list_data_collate(outs)


class ToUInt8d(MapTransform):
    """[0, 1] floats in ``keys`` -> uint8 0..255 (rounded, clipped), keeping MetaTensor meta.

    Args:
        keys: keys to convert.
        allow_missing_keys: skip absent keys.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = (d[key].float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        return d
