"""ECFusion: size, shapes for any H x W, gradients, determinism, export, registry (real Harvard
pairs)."""

from __future__ import annotations

import pytest
import torch

from medfuse.losses import MaxGradientLoss
from medfuse.nets import get_network, list_networks, network_class
from medfuse.nets.ecfusion import ECFusion

PAPER_PARAMS = 0.92e6


@pytest.fixture(scope="module")
def net() -> ECFusion:
    torch.manual_seed(0)
    return ECFusion().eval()


def test_parameter_count_near_paper(net: ECFusion) -> None:
    n = sum(p.numel() for p in net.parameters())
    assert abs(n - PAPER_PARAMS) / PAPER_PARAMS < 0.15, n


def test_registry_builds_ecfusion() -> None:
    assert "ecfusion" in list_networks()
    assert network_class("ECFusion") is ECFusion
    m = get_network("ecfusion", features=8)
    assert isinstance(m, ECFusion) and m.eam_a.head[0].out_channels == 8
    with pytest.raises(ValueError, match="unknown network"):
        get_network("nope")
    with pytest.raises(ValueError, match="spatial_dims"):
        ECFusion(spatial_dims=3)


def test_sobel_kernels_are_buffers(net: ECFusion) -> None:
    buffers = dict(net.named_buffers())
    assert "eam_a.sobel.kernel" in buffers
    assert not any("sobel" in name for name, _ in net.named_parameters())


@pytest.mark.parametrize("shape", [(2, 1, 250, 310), (1, 1, 256, 256), (1, 1, 33, 47)])
def test_any_size_in_range(net: ECFusion, shape: tuple[int, ...]) -> None:
    torch.manual_seed(1)
    a, b = torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1
    with torch.inference_mode():
        y = net(a, b)
    assert y.shape == shape
    assert float(y.min()) >= -1.0 and float(y.max()) <= 1.0


def test_real_pair_is_deterministic_in_eval(net: ECFusion, harvard_tensor) -> None:
    a, b = harvard_tensor("CT-MRI", "CT", "16003"), harvard_tensor("CT-MRI", "MRI", "16003")
    with torch.inference_mode():
        y1, y2 = net(a, b), net(a, b)
    assert torch.equal(y1, y2)
    assert y1.shape == (1, 1, 256, 256) and torch.isfinite(y1).all()


def test_every_parameter_gets_a_gradient(harvard_tensor) -> None:
    torch.manual_seed(0)
    model = ECFusion().train()
    a, b = harvard_tensor("CT-MRI", "CT", "16003", 64), harvard_tensor("CT-MRI", "MRI", "16003", 64)
    loss = MaxGradientLoss()(model(a, b), a, b)
    loss.backward()
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_torch_export_dynamic_batch_and_size(net: ECFusion, harvard_tensor) -> None:
    from torch.export import Dim, export

    # two distinct example tensors: passing one tensor twice lets export alias the two inputs
    ex_a, ex_b = torch.rand(2, 1, 64, 96) * 2 - 1, torch.rand(2, 1, 64, 96) * 2 - 1
    hh, ww = 16 * Dim("hh", min=2, max=128), 16 * Dim("ww", min=2, max=128)
    batch = Dim("batch", min=1, max=1024)
    dyn = {"a": {0: batch, 2: hh, 3: ww}, "b": {0: batch, 2: hh, 3: ww}}
    exported = export(net, (ex_a, ex_b), dynamic_shapes=dyn).module()
    a, b = harvard_tensor("CT-MRI", "CT", "16003"), harvard_tensor("CT-MRI", "MRI", "16003")
    with torch.inference_mode():
        assert torch.allclose(exported(a, b), net(a, b), atol=1e-6)
        a3, b3 = a.repeat(3, 1, 1, 1)[..., :128, :96], b.repeat(3, 1, 1, 1)[..., :128, :96]
        assert torch.allclose(exported(a3, b3), net(a3, b3), atol=1e-6)
