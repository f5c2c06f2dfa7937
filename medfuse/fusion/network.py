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

from medfuse.errors import InputError, WeightsError

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
        tile: fuse slices larger than ``tile`` x ``tile`` in overlapping tiles of that size
            (MONAI's sliding-window inference, tiles blended with a Gaussian weight); 0 or None
            fuses whole slices. Slices that fit in one tile are always fused whole.
        tile_overlap: fraction of a tile shared with its neighbours (0 <= overlap < 1).
        backend: "eager" (PyTorch, the reference) or "onnxruntime" (CPU only; faster, outputs
            within 1e-5 of eager; :func:`medfuse.nets.with_backend`).
    """

    name = ""
    network: str | None = None  # registry name in medfuse.nets (None: taken from the file)
    needs_weights = True
    bytes_per_pixel = (
        1024  # measured: ECFusion at 512x512 in batches of 16 peaked near 1 kB per pixel
    )
    #: on the CPU one 256x256 pair per call is as fast per slice as two and faster than 4 or 8
    #: (ECFusion 179/181/203/260 ms, S3IMFusion 68/67/74/96 ms per slice, 1 thread), and a
    #: 512x512 slice alone beats pairs of them (ECFusion 835 vs 1049 ms, S3IMFusion 379 vs 509)
    cpu_batch_pixels = 2 * 256 * 256

    def __init__(
        self,
        device: str | torch.device = "cpu",
        task: str | None = None,
        weights: str | Path | None = None,
        model: nn.Module | None = None,
        amp: bool = True,
        tile: int | None = None,
        tile_overlap: float = 0.25,
        backend: str = "eager",
        **options: Any,
    ) -> None:
        # the options run.json records beyond the defaults
        recorded: dict[str, Any] = (
            {"tile": int(tile), "tile_overlap": float(tile_overlap)} if tile else {}
        )
        if backend != "eager":
            recorded["backend"] = backend
        if not amp:
            recorded["amp"] = False
        super().__init__(
            device, task=task, weights=str(weights) if weights else None, **recorded, **options
        )
        if tile and (int(tile) < 16 or not 0.0 <= float(tile_overlap) < 1.0):
            raise InputError(
                f"tile must be 0 (whole slices) or >= 16 pixels and its overlap in [0, 1), got "
                f"{tile} and {tile_overlap}"
            )
        self.tile = int(tile or 0)
        self.tile_overlap = float(tile_overlap)
        self.task = task
        self.weights = Path(weights) if weights else None
        self.amp = bool(amp)
        self.weights_sha256: str | None = None
        self.model = model if model is not None else self._load()
        self.model = self.model.to(self.device).eval()
        if self.device.type == "cuda":
            net: Any = self.model  # nn.Module.to takes memory_format; torch's stubs omit it
            self.model = net.to(memory_format=torch.channels_last)
        self.backend = backend
        if backend != "eager":
            self.model = self._backend_model(backend)

    def _backend_model(self, backend: str) -> nn.Module:
        """The model run by ``backend`` (CPU only).

        Raises:
            InputError: unknown backend, a GPU device, or onnxruntime not installed.
        """
        from medfuse.nets import BACKENDS, with_backend

        if backend not in BACKENDS:
            raise InputError(
                f"--net-backend must be one of {', '.join(BACKENDS)}, not '{backend}'"
            )
        if self.device.type != "cpu":
            raise InputError(
                f"--net-backend {backend} runs on the CPU; use --device cpu (or eager)"
            )
        try:
            return with_backend(self.model, backend, threads=torch.get_num_threads())
        except ImportError as exc:
            raise InputError(str(exc)) from None

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
        h, w = xa.shape[-2:]
        if self.tile and (h > self.tile or w > self.tile):
            y = self._tiled(xa, xb)
        else:
            y = self._net(xa, xb)
        if not bool(torch.isfinite(y).all()):  # never written out: NaN would become black pixels
            amp = " under float16 autocast on the GPU (--gpu-precision fp32 runs float32)" \
                if self._autocast() else ""
            raise WeightsError(f"{self.weights or self.name}: the network's output holds NaN or "
                               f"infinite values{amp}")
        return ((y.float() + 1.0) * 0.5).clamp_(0.0, 1.0).contiguous()

    def _autocast(self) -> bool:
        """Whether the network runs under float16 autocast (CUDA with ``amp``)."""
        return self.device.type == "cuda" and self.amp

    def _net(self, xa: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        """The network on (B, 1, H, W) inputs in [-1, 1] (autocast and channels_last on CUDA)."""
        if self.device.type != "cuda":
            return self.model(xa, xb)
        xa = xa.contiguous(memory_format=torch.channels_last)
        xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self._autocast()):
            return self.model(xa, xb).float()

    def _tiled(self, xa: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        """The network over overlapping ``tile`` x ``tile`` tiles, blended with a Gaussian weight.

        Args:
            xa, xb: (B, 1, H, W) in [-1, 1]; a slice smaller than a tile along one side is
                padded with -1 (black) there.

        Returns:
            (B, 1, H, W).
        """
        from monai.inferers import sliding_window_inference

        out = sliding_window_inference(
            torch.cat([xa, xb], dim=1),
            roi_size=(self.tile, self.tile),
            sw_batch_size=4,
            predictor=lambda x: self._net(x[:, :1], x[:, 1:]),
            overlap=self.tile_overlap,
            mode="gaussian",
            padding_mode="constant",
            cval=-1.0,
        )
        assert isinstance(out, torch.Tensor)  # one tensor in, one out (not a tuple or dict)
        return out

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
