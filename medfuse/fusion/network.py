"""Trained networks as fusion methods: ECFusion, S3IMFusion, or any medfuse network file.

:class:`NetworkFusion` wraps any ``nn.Module`` that follows the medfuse network contract
(``net(a, b)``: two (B, 1, H, W) tensors in [-1, 1] -> (B, 1, H, W) in [-1, 1], any H, W):
inputs windowed to [0, 1] become ``x * 2 - 1``, the output ``(y + 1) / 2`` clamped to [0, 1].
On CUDA it runs under autocast (float16) with channels_last tensors.

Weights come from the shipped checkpoints (:func:`medfuse.nets.load_pretrained` for ``task``) or
a file (``weights=``, :func:`medfuse.nets.load_weights`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from medfuse.errors import WeightsError

from .base import FusionMethod, register_method

__all__ = ["NetworkFusion", "ECFusionMethod", "S3IMFusionMethod", "AnyNetworkFusion"]


class NetworkFusion(FusionMethod):
    """Fuse with a trained network.

    Args:
        device: fusion device.
        task: "ct-mri", "pet-mri" or "spect-mri" (selects the shipped weights).
        weights: a weights file (.safetensors or .pt) instead of the shipped ones.
        model: an already built ``nn.Module`` (then ``task``/``weights`` are only recorded).
        amp: autocast on CUDA (default True).
    """

    name = ""
    network: str | None = None  # registry name in medfuse.nets (None: taken from the file)
    needs_weights = True
    bytes_per_pixel = (
        1024  # measured: ECFusion at 512x512 in batches of 16 peaked near 1 kB per pixel
    )

    def __init__(
        self,
        device: str | torch.device = "cpu",
        task: str | None = None,
        weights: str | Path | None = None,
        model: nn.Module | None = None,
        amp: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(device, task=task, weights=str(weights) if weights else None, **options)
        self.task = task
        self.weights = Path(weights) if weights else None
        self.amp = bool(amp)
        self.weights_sha256: str | None = None
        self.model = model if model is not None else self._load()
        self.model = self.model.to(self.device).eval()
        if self.device.type == "cuda":
            net: Any = self.model  # nn.Module.to takes memory_format; torch's stubs omit it
            self.model = net.to(memory_format=torch.channels_last)

    def _load(self) -> nn.Module:
        from medfuse.nets import load_pretrained, load_weights
        from medfuse.nets.pretrained import pretrained_path, sha256

        try:
            if self.weights is not None:
                model = load_weights(self.weights, network=self.network, device="cpu")
                self.weights_sha256 = sha256(self.weights)
                return model
            if self.network is None:
                raise WeightsError(f"method '{self.name}' needs a weights file (--weights FILE)")
            if not self.task:
                raise WeightsError(
                    f"method '{self.name}' needs a task (--task ct-mri|pet-mri|spect-mri) to pick "
                    "its shipped weights, or a weights file (--weights FILE)"
                )
            model = load_pretrained(self.network, self.task, device="cpu")
            self.weights = pretrained_path(self.network, self.task)
            self.weights_sha256 = sha256(self.weights)
            return model
        except ModuleNotFoundError as exc:
            where = f"{self.weights}: " if self.weights is not None else ""
            raise WeightsError(
                f"{where}network '{self.network or 'from file'}' is not available in this medfuse "
                f"build ({exc.name} missing)"
            ) from None
        except ValueError as exc:  # unknown network name in the registry
            raise WeightsError(f"{self.weights}: {exc}") from None

    def fuse(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: D102
        xa, xb = a * 2.0 - 1.0, b * 2.0 - 1.0
        if self.device.type == "cuda":
            xa = xa.contiguous(memory_format=torch.channels_last)
            xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                y = self.model(xa, xb)
        else:
            y = self.model(xa, xb)
        return ((y.float() + 1.0) * 0.5).clamp_(0.0, 1.0).contiguous()

    def info(self) -> dict[str, Any]:  # noqa: D102
        d = super().info()
        d.update(
            {
                "network": self.network or type(self.model).__name__,
                "task": self.task,
                "weights": str(self.weights) if self.weights else None,
                "weights_sha256": self.weights_sha256,
            }
        )
        return d


@register_method
class ECFusionMethod(NetworkFusion):
    """ECFusion with the shipped weights for ``task`` (or ``weights``)."""

    name = "ecfusion"
    network = "ecfusion"
    description = "ECFusion network"


@register_method
class S3IMFusionMethod(NetworkFusion):
    """S3IMFusion with the shipped weights for ``task`` (or ``weights``)."""

    name = "s3imfusion"
    network = "s3imfusion"
    description = "S3IMFusion network"


@register_method
class AnyNetworkFusion(NetworkFusion):
    """Any medfuse network from a weights file that records its network name (``--weights``)."""

    name = "network"
    network = None
    description = "a medfuse network from a weights file"
