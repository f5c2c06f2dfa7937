"""S3IMFusion network: contract (shapes, range, any size), gradients, determinism, export."""

from __future__ import annotations

import pytest
import torch

import medfuse.nets
from medfuse.losses import S3IMFusionLoss
from medfuse.nets.s3imfusion import S3IMFusion


@pytest.fixture(scope="module")
def ct_mri(harvard_tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A real Harvard CT/MRI pair, (1, 1, 256, 256) each in [-1, 1]."""
    return harvard_tensor("CT-MRI", "CT", "16003"), harvard_tensor("CT-MRI", "MRI", "16003")


@pytest.fixture(scope="module")
def net() -> S3IMFusion:
    torch.manual_seed(0)
    return S3IMFusion().eval()


def test_registry_builds_s3imfusion_with_kwargs():
    m = medfuse.nets.get_network("S3IMFusion", features=8, transformer_depth=1)
    assert isinstance(m, S3IMFusion)
    assert m.detail.stages[0].conv1.out_channels == 8
    assert len(m.global_branch.blocks) == 1
    assert "s3imfusion" in medfuse.nets.list_networks()


def test_light_and_2d_only():
    assert sum(p.numel() for p in S3IMFusion().parameters()) < 2_000_000
    with pytest.raises(ValueError, match="2D"):
        S3IMFusion(spatial_dims=3)
    with pytest.raises(ValueError, match="divisible"):
        S3IMFusion(embed_dim=30, num_heads=4)


@pytest.mark.parametrize("size", [(250, 310), (33, 47), (5, 7), (8, 16)])
def test_output_shape_and_range_any_size(net, ct_mri, size):
    h, w = size
    ct, mri = (t[..., :h, :w] for t in ct_mri) if h <= 256 and w <= 256 else (
        torch.nn.functional.interpolate(t, size=size, mode="bilinear") for t in ct_mri)
    with torch.inference_mode():
        y = net(ct, mri)
    assert y.shape == (1, 1, h, w)
    assert y.is_contiguous()
    assert torch.isfinite(y).all() and y.abs().max() < 1


def test_channels_and_batch():
    m = S3IMFusion(in_channels=2, out_channels=3, features=8).eval()
    with torch.inference_mode():
        y = m(torch.rand(3, 2, 20, 28) * 2 - 1, torch.rand(3, 2, 20, 28) * 2 - 1)
    assert y.shape == (3, 3, 20, 28)


def test_branch_weights_are_convex():
    w = S3IMFusion(features=8).branch_weights()
    assert w.shape == (4, 8)
    torch.testing.assert_close(w.sum(0), torch.ones(8))


def test_every_parameter_receives_a_gradient(ct_mri):
    torch.manual_seed(1)
    m = S3IMFusion(features=8, embed_dim=32).train()
    ct, mri = (t[..., 100:140, 90:146].repeat(2, 1, 1, 1) for t in ct_mri)  # (2, 1, 40, 56)
    loss = S3IMFusionLoss(seed=0)(m(ct, mri), ct, mri)
    loss.backward()
    missing = [n for n, p in m.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_eval_is_deterministic_and_per_sample(net, ct_mri):
    ct, mri = (t[..., :96, :80] for t in ct_mri)
    with torch.inference_mode():
        y1, y2 = net(ct, mri), net(ct, mri)
        both = net(torch.cat([ct, mri]), torch.cat([mri, ct]))
    assert torch.equal(y1, y2)
    torch.testing.assert_close(both[:1], y1, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_torch_export_with_dynamic_height_and_width(net, ct_mri):
    from torch.export import Dim, export

    ct, mri = (t[..., :37, :53].contiguous() for t in ct_mri)  # a strided view would pin W to 256
    h, w = Dim("H", min=9, max=1024), Dim("W", min=9, max=1024)
    ep = export(net, (ct, mri), dynamic_shapes={"a": {2: h, 3: w}, "b": {2: h, 3: w}})
    exported = ep.module()
    for size in [(37, 53), (64, 40), (61, 90)]:
        a, b = (t[..., : size[0], : size[1]].contiguous() for t in ct_mri)
        with torch.no_grad():
            torch.testing.assert_close(exported(a, b), net(a, b), rtol=1e-5, atol=1e-5)
