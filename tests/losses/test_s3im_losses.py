"""S3IMFusion losses (Eqs. 5-8) on real Harvard CT/MRI slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medfuse.losses import IntensityLoss, MaxGradientLoss, S3IMFusionLoss, S3IMLoss


@pytest.fixture(scope="module")
def ct_mri(harvard_tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two real CT/MRI pairs as a batch: (2, 1, 256, 256) each, in [-1, 1]."""
    ct = torch.cat([harvard_tensor("CT-MRI", "CT", n) for n in ("16003", "16017")])
    mri = torch.cat([harvard_tensor("CT-MRI", "MRI", n) for n in ("16003", "16017")])
    return ct, mri


def _ssim_windows_numpy(x: np.ndarray, y: np.ndarray, k: int = 4, c1: float = 1e-4,
                        c2: float = 9e-4) -> np.ndarray:
    """Eq. 4 on non-overlapping k x k windows of 2D arrays in [0, 1] (uniform window)."""
    h, w = (x.shape[0] // k) * k, (x.shape[1] // k) * k
    xb = (x[:h, :w].reshape(h // k, k, w // k, k).transpose(0, 2, 1, 3).reshape(-1, k * k)
          .astype(np.float64))
    yb = (y[:h, :w].reshape(h // k, k, w // k, k).transpose(0, 2, 1, 3).reshape(-1, k * k)
          .astype(np.float64))
    mx, my = xb.mean(1), yb.mean(1)
    vx, vy = xb.var(1), yb.var(1)
    cov = ((xb - mx[:, None]) * (yb - my[:, None])).mean(1)
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def _reference_s3im(fused, a, b, orders, patch=64):
    """Literal Eq. 5: permute each image with the same ordering, cut into patches, SSIM, average."""
    sims = {0: [], 1: []}
    for i in range(fused.shape[0]):
        f, s1, s2 = (((t[i, 0].numpy().ravel() + 1) / 2) for t in (fused, a, b))
        for order in orders.numpy():
            n = order.size
            idx = order[np.arange(-(-n // patch**2) * patch**2) % n]
            for j, s in enumerate((s1, s2)):
                pf, ps = f[idx].reshape(-1, patch, patch), s[idx].reshape(-1, patch, patch)
                sims[j] += [_ssim_windows_numpy(ps[q], pf[q]) for q in range(pf.shape[0])]
    return 1 - 0.5 * (np.concatenate(sims[0]).mean() + np.concatenate(sims[1]).mean())


# --- S3IM (Eq. 5) ---------------------------------------------------------------------------

def test_permutations_identity_first_then_random_and_seeded():
    loss = S3IMLoss(seed=3)
    p = loss.permutations(1000)
    assert p.shape == (10, 1000)
    assert torch.equal(p[0], torch.arange(1000))
    assert all(torch.equal(r.sort().values, torch.arange(1000)) for r in p)
    assert not any(torch.equal(r, p[0]) for r in p[1:])
    assert torch.equal(S3IMLoss(seed=3).permutations(1000), p)
    assert not torch.equal(S3IMLoss(seed=4).permutations(1000), p)


def test_virtual_patches_cover_every_pixel_of_an_odd_size_image():
    loss = S3IMLoss(repeats=3, seed=0)
    x = torch.arange(250 * 310, dtype=torch.float32).reshape(1, 1, 250, 310).repeat(2, 1, 1, 1)
    order = loss.permutations(250 * 310)
    v = loss.virtual_patches(x, order)
    assert v.shape == (2 * 3 * 19, 1, 64, 64)  # ceil(77500 / 4096) = 19 patches per repeat
    per_repeat = v.reshape(2, 3, -1)
    for r in range(3):
        assert torch.equal(per_repeat[0, r].unique(), torch.arange(250 * 310, dtype=torch.float32))
    # the identity ordering fills the first patch row-major with the first pixels of the image
    assert torch.equal(v[0, 0, 0], torch.arange(64, dtype=torch.float32))
    assert torch.equal(v[0, 0, 1], torch.arange(64, 128, dtype=torch.float32))


def test_s3im_matches_a_literal_reference_with_one_permutation_shared_by_the_three_images(ct_mri):
    ct, mri = (t[..., 3:253, 10:241].contiguous() for t in ct_mri)  # odd size, 250 x 231
    fused = torch.maximum(ct, mri)
    loss = S3IMLoss(repeats=4, seed=11)
    orders = S3IMLoss(repeats=4, seed=11).permutations(250 * 231)  # the twin draws the same orders
    got = loss(fused, ct, mri).item()
    assert got == pytest.approx(_reference_s3im(fused, ct, mri, orders), abs=1e-5)
    # the reference is sensitive to the sharing: permuting the fused image differently changes it
    other = orders.clone()
    other[1:] = S3IMLoss(repeats=4, seed=12).permutations(250 * 231)[1:]
    assert _reference_s3im(fused, ct, mri, orders) != pytest.approx(
        _mixed_reference(fused, ct, mri, orders, other), abs=1e-3)


def _mixed_reference(fused, a, b, orders_src, orders_fused, patch=64):
    """Eq. 5 with the fused image ordered differently from the sources (what sharing prevents)."""
    sims = []
    for i in range(fused.shape[0]):
        f, s1, s2 = (((t[i, 0].numpy().ravel() + 1) / 2) for t in (fused, a, b))
        for o_s, o_f in zip(orders_src.numpy(), orders_fused.numpy()):
            n = o_s.size
            cyc = np.arange(-(-n // patch**2) * patch**2) % n
            pf = f[o_f[cyc]].reshape(-1, patch, patch)
            for s in (s1, s2):
                ps = s[o_s[cyc]].reshape(-1, patch, patch)
                sims += [_ssim_windows_numpy(ps[q], pf[q]) for q in range(pf.shape[0])]
    return 1 - np.mean(sims)


def test_s3im_is_zero_for_identical_images_under_random_orders(ct_mri):
    ct = ct_mri[0]
    loss = S3IMLoss()  # global RNG: any permutations; identical images must still give 0
    assert loss(ct, ct, ct).item() == pytest.approx(0.0, abs=1e-6)


def test_s3im_prefers_a_fusion_over_one_source_or_noise(ct_mri):
    ct, mri = ct_mri
    loss = S3IMLoss(seed=0)
    noise = torch.rand_like(ct) * 2 - 1
    l_ct = loss(ct, ct, mri).item()
    l_noise = loss(noise, ct, mri).item()
    assert 0 < l_ct < l_noise <= 2


def test_s3im_value_range_maps_to_unit_interval(ct_mri):
    ct, mri = (t[..., :64, :96] for t in ct_mri)
    f = 0.5 * (ct + mri)
    a = S3IMLoss(seed=5)(f, ct, mri)
    b = S3IMLoss(seed=5, value_range=(0, 1))((f + 1) / 2, (ct + 1) / 2, (mri + 1) / 2)
    torch.testing.assert_close(a, b)


def test_s3im_gaussian_window_and_bad_arguments(ct_mri):
    ct, mri = (t[..., :64, :64] for t in ct_mri)
    g = S3IMLoss(window="gaussian", seed=0)
    assert g(ct, ct, ct).item() == pytest.approx(0.0, abs=1e-6)
    assert 0 < g(ct, ct, mri).item() < 2
    with pytest.raises(ValueError):
        S3IMLoss(kernel=65)
    with pytest.raises(ValueError):
        S3IMLoss(window="box")
    with pytest.raises(ValueError):
        S3IMLoss()(ct, ct, mri[..., :32])


# --- intensity (Eq. 7), gradient (Eq. 6) and the composite (Eq. 8) ------------------------------

def test_intensity_loss_is_summed_mse_minimal_at_the_mean(ct_mri):
    ct, mri = ct_mri
    loss = IntensityLoss()
    assert loss(ct, ct, ct).item() == 0.0
    torch.testing.assert_close(loss(ct, ct, mri), F.mse_loss(ct, mri))
    f = (0.5 * (ct + mri)).requires_grad_()
    loss(f, ct, mri).backward()
    assert f.grad.abs().max().item() < 1e-6
    assert IntensityLoss("l1")(ct, ct, mri).item() == pytest.approx(F.l1_loss(ct, mri).item())


def test_composite_is_zero_when_fused_equals_both_sources(ct_mri):
    ct = ct_mri[0][:1, :, :250, :229]
    parts = S3IMFusionLoss()(ct, ct, ct), S3IMFusionLoss().components(ct, ct, ct)
    assert parts[0].item() == pytest.approx(0.0, abs=1e-5)
    assert all(v.item() == pytest.approx(0.0, abs=1e-5) for v in parts[1].values())


def test_composite_weights_and_unit_scale(ct_mri):
    ct, mri = (t[..., 60:188, 50:210] for t in ct_mri)
    f = torch.maximum(ct, mri)
    c = S3IMFusionLoss(seed=2).components(f, ct, mri)
    assert set(c) == {"total", "sim", "grad", "smooth"}
    torch.testing.assert_close(c["total"], 10 * c["sim"] + 5 * c["grad"] + c["smooth"])
    u = [(t + 1) / 2 for t in (f, ct, mri)]
    torch.testing.assert_close(c["grad"], MaxGradientLoss("l1", "abs")(*u))
    # Eq. 7's L2 norm per pixel: the root mean squared error of each source, per image
    rmse = sum(((u[0] - s) ** 2).flatten(1).mean(1).sqrt().mean() for s in u[1:])
    torch.testing.assert_close(c["smooth"], rmse)
    old = S3IMFusionLoss(seed=2, reduction="mean").components(f, ct, mri)
    torch.testing.assert_close(old["smooth"], IntensityLoss("l2")(*u))
    torch.testing.assert_close(c["sim"], S3IMLoss(seed=2, value_range=(0, 1))(*u))
    assert S3IMFusionLoss(seed=2)(f, ct, mri).item() == pytest.approx(c["total"].item(), rel=1e-6)


def test_gradient_term_vanishes_when_fused_carries_the_stronger_gradients(ct_mri):
    ct = ct_mri[0]
    flat = torch.full_like(ct, -1.0)  # no gradient anywhere: max(grad) is the CT's
    c = S3IMFusionLoss(seed=0).components(ct, ct, flat)
    assert c["grad"].item() == pytest.approx(0.0, abs=1e-6)
    assert c["smooth"].item() > 0


def test_composite_backpropagates(ct_mri):
    ct, mri = (t[..., 100:140, 90:146] for t in ct_mri)
    f = (0.5 * (ct + mri)).clone().requires_grad_()
    S3IMFusionLoss(seed=0)(f, ct, mri).backward()
    assert torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0
