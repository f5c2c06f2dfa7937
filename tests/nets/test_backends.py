"""Every inference path gives the reference eager output (real Harvard pair, shipped weights).

The reference is the plain module code under ``reference_kernels()``; the default eager path (fused
oneDNN convolutions, cached position bias) and the ONNX Runtime backend must match it within 1e-4.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medfuse.nets import load_pretrained, with_backend
from medfuse.nets.blocks import fused_inference, reference_kernels

TOL = 1e-4


@pytest.fixture(scope="module")
def pair(harvard_tensor):
    """The CT-MRI pair 16003 at 256x256, ``(1, 1, 256, 256)`` each."""
    return harvard_tensor("CT-MRI", "CT", "16003"), harvard_tensor("CT-MRI", "MRI", "16003")


def _sized(pair, size: tuple[int, int]):
    """The pair at ``size``: a non-square crop below 256, bilinear upsampling above."""
    a, b = pair
    if size[0] <= 256 and size[1] <= 256:
        return a[..., : size[0], : size[1]], b[..., : size[0], : size[1]]
    return tuple(F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in (a, b))


def _reference(net, a, b):
    with torch.inference_mode(), reference_kernels():
        return net(a, b)


@pytest.mark.parametrize("name", ["ecfusion", "s3imfusion"])
@pytest.mark.parametrize("size", [(256, 256), (200, 248), (512, 512)])
def test_eager_fast_path_matches_reference(pair, name: str, size: tuple[int, int]) -> None:
    net = load_pretrained(name, task="ct-mri")
    a, b = _sized(pair, size)
    ref = _reference(net, a, b)
    with torch.inference_mode():
        assert fused_inference(a)
        out = net(a, b)
    assert out.shape == ref.shape == (1, 1, *size)
    assert float((out - ref).abs().max()) <= TOL
    assert float(ref.std()) > 0.05  # a real image, not a constant


@pytest.mark.parametrize("name", ["ecfusion", "s3imfusion"])
def test_eager_fast_path_matches_reference_in_a_batch(pair, name: str) -> None:
    """Per-sample parts (ECFusion's channel weights) stay per sample in a batch of two."""
    net = load_pretrained(name, task="ct-mri")
    a, b = pair
    a2, b2 = torch.cat([a, b.flip(-1)]), torch.cat([b, a.flip(-2)])
    ref = _reference(net, a2, b2)
    with torch.inference_mode():
        out = net(a2, b2)
    assert float((out - ref).abs().max()) <= TOL
    assert float((ref[0] - ref[1]).abs().max()) > 0.1  # two different pairs


def test_train_mode_without_autograd_keeps_batch_statistics(pair) -> None:
    """S3IMFusion in train mode under no_grad normalises with the batch's statistics, as the
    reference does; the fused path (running statistics folded into a conv) is for eval only."""
    net = load_pretrained("s3imfusion", task="ct-mri").train()
    a, b = pair
    with torch.no_grad(), reference_kernels():
        ref = net(a, b)
    with torch.no_grad():
        out = net(a, b)
    assert float((out - ref).abs().max()) <= TOL
    with torch.no_grad():
        assert float((net.eval()(a, b) - ref).abs().max()) > 10 * TOL  # running stats differ


@pytest.mark.parametrize("name", ["ecfusion", "s3imfusion"])
def test_cpu_autocast_takes_the_reference_path(pair, name: str) -> None:
    """Under CPU autocast (bfloat16 intermediates) the float32 fused kernels are not used: the
    network runs (it raised a dtype error in ECFusion's residual blocks) and gives what the
    reference path gives under the same autocast."""
    net = load_pretrained(name, task="ct-mri")
    a, b = pair
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fused_inference(a)
        with reference_kernels():
            ref = net(a, b)
        out = net(a, b)
    assert out.shape == ref.shape == (1, 1, 256, 256)
    assert torch.equal(out, ref)
    assert float(out.float().std()) > 0.05


@pytest.mark.parametrize(("name", "dtype", "tol"), [
    ("ecfusion", torch.float16, 0.01), ("ecfusion", torch.bfloat16, 0.05),
    ("s3imfusion", torch.float16, 0.01)])
def test_half_precision_autocast_stays_near_float32(pair, name: str, dtype, tol: float) -> None:
    """``medfuse fuse`` runs the networks under float16 autocast on CUDA. ECFusion's attention
    logits overflowed float16 (NaN everywhere) and its bfloat16 tokens moved the output by 20 grey
    levels on average; the token path now runs in float32. Emulated here with CPU autocast, which
    runs the matmuls and convolutions in the same dtype. (S3IMFusion's bfloat16 on CPU is not
    checked: oneDNN's AMX bfloat16 convolution with an 8x8 kernel and stride 8, its patch
    embedding, is wrong on this machine's CPU in torch 2.13; docs/nets.md.)"""
    net = load_pretrained(name, task="ct-mri")
    a, b = pair
    with torch.inference_mode():
        ref = net(a, b)
        with torch.autocast("cpu", dtype=dtype):
            out = net(a, b).float()
    assert bool(torch.isfinite(out).all())
    assert float((out - ref).abs().max()) <= tol
    assert float((out - ref).abs().mean()) <= tol / 10


@pytest.mark.parametrize("name", ["ecfusion", "s3imfusion"])
@pytest.mark.parametrize("size", [(256, 256), (200, 248)])
def test_onnxruntime_matches_reference(pair, name: str, size: tuple[int, int]) -> None:
    import onnxruntime  # noqa: F401  - the test extra installs it (medfuse[all])
    net = load_pretrained(name, task="ct-mri")
    a, b = _sized(pair, size)
    ref = _reference(net, a, b)
    out = with_backend(net, "onnxruntime", threads=1)(a, b)
    assert out.shape == ref.shape
    assert float((out - ref).abs().max()) <= TOL


@pytest.mark.parametrize("name", ["ecfusion", "s3imfusion"])
def test_onnxruntime_one_session_serves_every_batch(pair, name: str) -> None:
    """The graph is traced at batch 1 with a free batch axis: batches of 1 and 3 (three real
    slices: the CT-MRI pair, its MRI-CT swap and the pair flipped) run through one session, whole
    or in chunks of one slice, and match the reference slice by slice."""
    import onnxruntime  # noqa: F401

    from medfuse.nets.ort_backend import OrtNetwork

    net = load_pretrained(name, task="ct-mri")
    a, b = pair
    xa = torch.cat([a, b, a.flip(-1)])
    xb = torch.cat([b, a, b.flip(-1)])
    ref = torch.cat([_reference(net, xa[i : i + 1], xb[i : i + 1]) for i in range(3)])
    whole = OrtNetwork(net, threads=1)
    single = whole(xa[:1], xb[:1])
    batch = whole(xa, xb)
    assert len(whole._sessions) == 1
    chunked = OrtNetwork(net, threads=1, max_pixels=256 * 256)(xa, xb)  # three calls of one
    assert batch.shape == chunked.shape == ref.shape == (3, 1, 256, 256)
    assert float((single - ref[:1]).abs().max()) <= TOL
    assert float((batch - ref).abs().max()) <= TOL
    assert float((chunked - ref).abs().max()) <= TOL
    assert float((ref[0] - ref[1]).abs().max()) > 0.05  # three different slices


def test_exported_file_takes_any_batch(pair, tmp_path) -> None:
    """``export_onnx(..., dynamic_batch=True)`` writes one file (nothing else left) that ONNX
    Runtime runs at batch 2 with the reference's output."""
    import onnxruntime

    from medfuse.nets.ort_backend import export_onnx

    net = load_pretrained("s3imfusion", task="ct-mri")
    a, b = pair
    path = export_onnx(net, tmp_path / "s3im.onnx", size=(256, 256), dynamic_batch=True)
    assert [p.name for p in tmp_path.iterdir()] == ["s3im.onnx"]
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xa, xb = torch.cat([a, b]), torch.cat([b, a])
    out = torch.from_numpy(sess.run(["fused"], {"a": xa.numpy(), "b": xb.numpy()})[0])
    ref = torch.cat([_reference(net, xa[i : i + 1], xb[i : i + 1]) for i in range(2)])
    assert out.shape == (2, 1, 256, 256)
    assert float((out - ref).abs().max()) <= TOL


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        with_backend(torch.nn.Identity(), "tensorrt")


def _bias_module(net):
    return net.cstf[0].bias


def test_bias_cache_follows_load_state_dict(pair) -> None:
    """The cached bias of one task's weights must not survive loading another task's weights."""
    net = load_pretrained("ecfusion", task="ct-mri")
    other = load_pretrained("ecfusion", task="pet-mri")
    a, b = pair
    with torch.inference_mode():
        net(a, b)  # fills the cache with the CT-MRI bias
        assert _bias_module(net)._cache
    with torch.inference_mode():
        before = net(a, b)
    net.load_state_dict(other.state_dict())
    with torch.inference_mode():
        out = net(a, b)
    # the reference path computes the bias afresh (no cache); the output must follow the new weights
    assert float((out - _reference(net, a, b)).abs().max()) <= TOL
    assert float((out - before).abs().max()) > 1e-3
    with torch.inference_mode():
        assert torch.equal(_bias_module(net)(16, 16), _bias_module(other)._compute(16, 16))


def test_bias_cache_follows_a_training_step(pair) -> None:
    """After an optimiser step on the bias MLP, inference uses the new weights, not the cache."""
    net = load_pretrained("ecfusion", task="ct-mri")
    a, b = pair
    with torch.inference_mode():
        before = net(a, b)
    bias = _bias_module(net)
    net.train()
    opt = torch.optim.SGD(bias.parameters(), lr=1.0)
    loss = bias(16, 16).square().mean()
    loss.backward()
    opt.step()
    net.eval()
    with torch.inference_mode():
        after = net(a, b)
        fresh = bias._compute(16, 16)
        assert torch.equal(bias(16, 16), fresh)
    assert float((after - _reference(net, a, b)).abs().max()) <= TOL
    assert float((after - before).abs().max()) > 1e-6  # the step changed the output


def test_no_cache_with_autograd(pair) -> None:
    """With autograd on, the bias is recomputed (its gradient reaches the MLP)."""
    net = load_pretrained("ecfusion", task="ct-mri")
    bias = _bias_module(net)
    out = bias(16, 16)
    out.sum().backward()
    assert not bias._cache
    assert bias.mlp[0].weight.grad is not None and float(bias.mlp[0].weight.grad.abs().sum()) > 0


def test_fuse_options_list_the_same_backends() -> None:
    from medfuse.fusion.options import BACKENDS as OPTION_BACKENDS
    from medfuse.nets import BACKENDS

    assert OPTION_BACKENDS == BACKENDS


def test_neighbourhoods_make_a_3x3_conv_a_1x1_conv(pair) -> None:
    """``neighbourhoods`` holds each pixel's 3x3 zero-padded neighbourhood (F.unfold's order),
    channels-last, so that the one-channel 3x3 conv of the shipped ECFusion head equals its 1x1
    form; batch of two, odd sizes."""
    from medfuse.nets.blocks import fused_conv_neighbourhoods, neighbourhoods

    a, b = pair
    x = torch.cat([a, b])[..., 3:200, 5:254]
    cols = neighbourhoods(x)
    assert cols.shape == (2, 9, 197, 249)
    assert cols.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(cols, F.unfold(x, 3, padding=1).view(2, 9, 197, 249))
    head = load_pretrained("ecfusion", task="ct-mri").eam_a.head[0]
    with torch.inference_mode():
        out = fused_conv_neighbourhoods(head, cols, slope=0.2)
        ref = F.leaky_relu(head(x), 0.2)
    assert float((out - ref).abs().max()) <= 1e-5
