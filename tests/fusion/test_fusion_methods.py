"""The fusion method registry and the classical baselines, on a real Harvard CT-MRI pair."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medfuse.errors import InputError, WeightsError
from medfuse.fusion import get_method, list_methods
from medfuse.fusion.classical import box_filter
from medfuse.fusion.slices import auto_batch_size, fuse_slices

CLASSICAL = ["average", "max", "laplacian", "dwt", "guided-filter"]


def _spatial_frequency(x: torch.Tensor) -> float:
    rf = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
    cf = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
    return float((rf + cf).sqrt())


def test_registry_lists_every_method():
    names = list_methods()
    for n in CLASSICAL + ["ecfusion", "s3imfusion", "network"]:
        assert n in names
    with pytest.raises(InputError, match="unknown fusion method 'nope'"):
        get_method("nope")


def test_registry_names_resolve_lazily_to_their_classes():
    import subprocess
    import sys

    from medfuse.fusion.base import METHODS, FusionMethod, register_method
    from tests.helpers import cli_env

    for n in list_methods():  # each "module:Class" entry names a method registered as itself
        assert issubclass(METHODS[n], FusionMethod) and METHODS[n].name == n
    # listing the methods imports none of them (nor torch, from the package)
    code = ("import sys\nfrom medfuse.fusion import list_methods\nlist_methods()\n"
            "print(sorted(m for m in ('medfuse.fusion.classical', 'medfuse.fusion.network', "
            "'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=cli_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['torch']"  # base.py itself needs torch; no method module

    @register_method
    class Half(FusionMethod):
        name = "test-half"

        def fuse(self, a, b):
            return a * 0.5 + b * 0.5

    try:
        assert "test-half" in list_methods() and isinstance(get_method("test-half"), Half)
    finally:
        del METHODS["test-half"]
    assert "test-half" not in list_methods()


@pytest.mark.parametrize("name", CLASSICAL)
def test_classical_shape_range_and_identity(name, ct_mri_pair):
    a, b = ct_mri_pair
    m = get_method(name)
    out = m(torch.cat([a, b]), torch.cat([b, a]))
    assert out.shape == (2, 1, 256, 256) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # fusing an image with itself gives it back (every method is a convex or max-abs mix)
    same = m(b, b)
    assert torch.allclose(same, b, atol=2e-5), float((same - b).abs().max())
    # symmetric in its two inputs
    assert torch.allclose(out[0], out[1], atol=1e-5)


def test_average_and_max_are_exact(ct_mri_pair):
    a, b = ct_mri_pair
    assert torch.allclose(get_method("average")(a, b), (a + b) / 2)
    assert torch.equal(get_method("max")(a, b), torch.maximum(a, b))


@pytest.mark.parametrize("name", ["laplacian", "dwt", "guided-filter"])
def test_multiscale_methods_keep_more_detail_than_averaging(name, ct_mri_pair):
    a, b = ct_mri_pair
    fused = get_method(name)(a, b)
    avg = get_method("average")(a, b)
    assert _spatial_frequency(fused) > 1.1 * _spatial_frequency(avg)


def test_odd_sizes_and_tiny_images(ct_mri_pair):
    a, b = ct_mri_pair
    a, b = a[..., :117, :203], b[..., :117, :203]
    for name in CLASSICAL:
        out = get_method(name)(a, b)
        assert out.shape == a.shape
    tiny = a[..., :5, :7], b[..., :5, :7]
    for name in CLASSICAL:
        assert get_method(name)(*tiny).shape == (1, 1, 5, 7)


def test_box_filter_matches_avg_pool(ct_mri_pair):
    a = ct_mri_pair[0].double()
    ref = F.avg_pool2d(a, kernel_size=15, stride=1, padding=7, count_include_pad=False)
    assert torch.allclose(box_filter(a, 7), ref, atol=1e-10)


def test_fuse_slices_batches_match_one_batch(ct_mri_pair):
    a, b = ct_mri_pair
    stack_a = torch.cat([a, b, a.flip(-1)])
    stack_b = torch.cat([b, a, b.flip(-1)])
    m = get_method("laplacian")
    done = []
    one = fuse_slices(m, stack_a, stack_b, batch_size=3)
    two = fuse_slices(m, stack_a, stack_b, batch_size=2, progress=done.append)
    assert torch.allclose(one, two, atol=1e-6) and done == [2, 1]
    assert auto_batch_size(m, 256, 256, 3) == 3


def test_cpu_batches_of_networks_hold_at_most_two_256_slices():
    """On the CPU a network gets one 512x512 slice or two 256x256 slices per call (bigger batches
    are slower per slice there); a classical method keeps its memory-sized batch."""
    net = get_method("s3imfusion", task="ct-mri")
    assert auto_batch_size(net, 512, 512, 94) == 1
    assert auto_batch_size(net, 256, 256, 94) == 2
    assert auto_batch_size(net, 64, 64, 94) == 16  # CPU_BATCH still caps it
    assert auto_batch_size(get_method("laplacian"), 512, 512, 94) > 1


def test_network_methods_without_weights_fail_with_one_clear_line(tmp_path, monkeypatch):
    import medfuse.nets.pretrained as pretrained

    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)  # an install without shipped weights
    with pytest.raises(WeightsError) as exc:
        get_method("ecfusion", task="ct-mri")
    msg = str(exc.value)
    assert "\n" not in msg and "no shipped weights for ecfusion on ct-mri" in msg
    with pytest.raises(WeightsError, match="needs a task"):
        get_method("s3imfusion")
    with pytest.raises(WeightsError, match="needs a weights file"):
        get_method("network")


def test_network_method_wraps_the_contract(tmp_path, ct_mri_pair):
    """Random ECFusion weights saved with save_weights: [0, 1] in, x*2-1 into the net, back out."""
    from medfuse.nets import get_network, save_weights

    torch.manual_seed(0)
    kw = {"features": 4, "num_blocks": 2, "taps": [1, 2], "token_channels": [8, 4]}
    net = get_network("ecfusion", **kw).eval()
    path = save_weights(net, tmp_path / "tiny.safetensors", "ecfusion", kwargs=kw, task="ct-mri")
    m = get_method("ecfusion", weights=path)
    a, b = ct_mri_pair
    out = m(a, b)
    with torch.inference_mode():
        expect = ((net(a * 2 - 1, b * 2 - 1) + 1) / 2).clamp(0, 1)
    assert torch.allclose(out, expect, atol=1e-6)
    info = m.info()
    assert info["network"] == "ecfusion" and len(info["weights_sha256"]) == 64
    # the generic "network" method reads the network name from the file
    assert torch.allclose(get_method("network", weights=path)(a, b), expect, atol=1e-6)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="bad.safetensors"):
        get_method("ecfusion", weights=bad)
