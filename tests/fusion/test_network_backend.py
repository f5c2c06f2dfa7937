"""``--net-backend``: a network method run by ONNX Runtime fuses like eager PyTorch (real pair)."""

from __future__ import annotations

import pytest

from medfuse.errors import InputError
from medfuse.fusion import get_method
from medfuse.fusion.options import FuseOptions


@pytest.mark.parametrize("name", ["s3imfusion", "ecfusion"])
def test_onnxruntime_method_fuses_like_eager(ct_mri_pair, name: str) -> None:
    a, b = ct_mri_pair
    eager = get_method(name, task="ct-mri")
    ort = get_method(name, task="ct-mri", backend="onnxruntime")
    ref, out = eager(a, b), ort(a, b)
    assert out.shape == ref.shape == a.shape
    assert float((out - ref).abs().max()) <= 1e-4  # [0, 1] scale: far below one grey level
    assert float(ref.std()) > 0.05
    assert ort.info()["options"]["backend"] == "onnxruntime"
    assert "backend" not in eager.info()["options"]  # eager runs record what they always did


def test_onnxruntime_refuses_a_gpu_device() -> None:
    with pytest.raises(InputError, match="runs on the CPU"):
        get_method("s3imfusion", task="ct-mri", backend="onnxruntime", device="meta")


def test_unknown_backend_is_one_line_in_the_flag_s_words() -> None:
    with pytest.raises(InputError, match="--net-backend must be one of eager, onnxruntime"):
        FuseOptions(net_backend="tensorrt").check()  # type: ignore[arg-type]
    with pytest.raises(InputError, match="--net-backend must be one of"):
        get_method("s3imfusion", task="ct-mri", backend="tensorrt")


def test_gpu_precision_reaches_the_method_and_its_record(ct_mri_pair) -> None:
    """``--gpu-precision fp32`` builds the network without autocast and says so in run.json's
    method options; the default (fp16) records nothing new; on the CPU both fuse alike (float32
    there either way); an unknown value is one line in the flag's words."""
    import torch

    from medfuse.fusion.stages import build_method

    fp32 = build_method("s3imfusion", FuseOptions(gpu_precision="fp32"), "ct-mri",
                        torch.device("cpu"))
    fp16 = build_method("s3imfusion", FuseOptions(), "ct-mri", torch.device("cpu"))
    assert fp32.amp is False and fp32.info()["options"]["amp"] is False
    assert fp16.amp is True and "amp" not in fp16.info()["options"]
    a, b = ct_mri_pair
    assert torch.equal(fp32(a, b), fp16(a, b))
    with pytest.raises(InputError, match="--gpu-precision must be fp16 or fp32"):
        FuseOptions(gpu_precision="bf16").check()  # type: ignore[arg-type]
