"""Behaviour of the individual metrics, the profiles, colour handling and aggregation, on the real
reference triplets and Harvard pairs (../shared)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.signal import convolve2d

import medfuse.metrics as M
from medfuse.metrics import FusionMetrics, aggregate

TRIPLETS = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "triplets"


def _triplet(task: str = "CT-MRI", pair: str = "16003", fused: str = "F_avg"):
    if not TRIPLETS.is_dir():
        pytest.skip(f"reference triplets not found: {TRIPLETS}")
    d = TRIPLETS / task / pair
    return tuple(np.asarray(Image.open(d / f"{n}.png")) for n in (fused, "A", "B"))


# --- an independent, literal transcription of Han et al.'s VIFF_Public.m (2D kernels, conv2) ---
def _fspecial(n: int, sigma: float) -> np.ndarray:
    x = np.arange(n) - (n - 1) / 2
    h = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


def _filter2_valid(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return convolve2d(x, np.rot90(w, 2), mode="valid")


def _com_vid_vind_g(ref, dist, sq):
    nums, dens, gs = [], [], []
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = _fspecial(n, n / 5)
        if scale > 1:
            ref = _filter2_valid(win, ref)[::2, ::2]
            dist = _filter2_valid(win, dist)[::2, ::2]
        mu1, mu2 = _filter2_valid(win, ref), _filter2_valid(win, dist)
        s1 = _filter2_valid(win, ref * ref) - mu1 * mu1
        s2 = _filter2_valid(win, dist * dist) - mu2 * mu2
        s12 = _filter2_valid(win, ref * dist) - mu1 * mu2
        s1[s1 < 0] = 0
        s2[s2 < 0] = 0
        g = s12 / (s1 + 1e-10)
        sv = s2 - g * s12
        g[s1 < 1e-10] = 0
        sv[s1 < 1e-10] = s2[s1 < 1e-10]
        s1[s1 < 1e-10] = 0
        g[s2 < 1e-10] = 0
        sv[s2 < 1e-10] = 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= 1e-10] = 1e-10
        gs.append(g)
        nums.append(np.log10(1 + g**2 * s1 / (sv + sq)))
        dens.append(np.log10(1 + s1 / sq))
    return nums, dens, gs


def _viff_literal(im1, im2, imf):
    sq, c = 0.005 * 255 * 255, 1e-7
    p = np.array([1, 0, 0.15, 1]) / 2.15
    t1n, t1d, t1g = _com_vid_vind_g(im1.astype(float), imf.astype(float), sq)
    t2n, t2d, t2g = _com_vid_vind_g(im2.astype(float), imf.astype(float), sq)
    out = np.zeros(4)
    for i in range(4):
        L = t1g[i] < t2g[i]
        z12 = t2n[i].copy()
        z12[L] = t1n[i][L]
        m12 = t2d[i].copy()
        m12[L] = t1d[i][L]
        out[i] = np.sum(z12 + c) / np.sum(m12 + c)
    return float(np.sum(out * p))


@pytest.mark.parametrize("task,pair,fused", [("CT-MRI", "16003", "F_avg"),
                                             ("PET-MRI", "25016", "F_max"),
                                             ("SPECT-MRI", "10008", "F_w73")])
def test_viff_matches_literal_transcription_of_han_2013(task, pair, fused):
    f, a, b = _triplet(task, pair, fused)
    assert M.viff(f, a, b) == pytest.approx(_viff_literal(a, b, f), rel=1e-10)


def test_viff_and_vif_of_a_perfect_copy():
    f, a, _ = _triplet()
    assert M.viff(a, a, a) == pytest.approx(1.0, abs=1e-6)
    assert M.vif_pair(a, a) == pytest.approx(1.0, abs=1e-6)
    assert M.vif(a, a, a) == pytest.approx(2.0, abs=1e-6)
    v, vf = M.vif_and_viff(f, a, a)
    assert (v == pytest.approx(M.vif(f, a, a), rel=1e-12)
            and vf == pytest.approx(M.viff(f, a, a), rel=1e-12))


def test_viff_is_lower_than_vif_and_favours_a_better_fusion():
    f_avg, a, b = _triplet("CT-MRI", "16003", "F_avg")
    blurred = np.asarray(Image.fromarray(f_avg).resize((64, 64)).resize((256, 256), Image.BILINEAR))
    assert M.viff(blurred, a, b) < M.viff(f_avg, a, b)
    assert 0 < M.viff(f_avg, a, b) < M.vif(f_avg, a, b)


def test_ssim_of_identical_images_is_one():
    _, a, _ = _triplet()
    assert M.ssim_pair(a, a, "vifb") == pytest.approx(1.0, abs=1e-12)
    assert M.ssim_pair(a, a, "skimage") == pytest.approx(1.0, abs=1e-6)
    assert M.ssim(a, a, a, "vifb", reduce="sum") == pytest.approx(2.0, abs=1e-12)


def test_ssim_maps_average_to_the_paper_ssim_and_locate_a_defect():
    from medfuse.metrics.similarity import ssim_maps_skimage

    f, a, b = (x.astype(np.float32) for x in _triplet())
    sa, sb = ssim_maps_skimage(f, [a, b])
    assert sa.shape == sb.shape == f.shape
    paper = FusionMetrics(profile="paper", metrics=["SSIM"])(f, a, b)["SSIM"]
    assert 0.5 * (sa.mean(dtype=np.float64) + sb.mean(dtype=np.float64)) == pytest.approx(paper)
    # one grey speck in the black corner: SSIM against a drops to ~0 in its 7x7 windows only
    assert a[:20, :20].max() == 0 and f[:20, :20].max() == 0
    g = f.copy()
    g[10, 10] = 1.0
    ga = ssim_maps_skimage(g, [a])[0]
    assert ga[7:14, 7:14].max() < 0.1 and sa[7:14, 7:14].min() == pytest.approx(1.0)
    np.testing.assert_array_equal(ga[30:, 30:], sa[30:, 30:])


def test_entropy_sd_of_known_images():
    img = np.zeros((16, 16))
    img[:, 8:] = 200
    assert M.entropy(img) == pytest.approx(1.0)
    assert M.standard_deviation(img) == pytest.approx(100.0)
    assert M.entropy(np.full((8, 8), 7.0)) == 0.0


def test_mutual_information_of_a_copy_is_twice_its_entropy():
    _, a, _ = _triplet()
    h_bits = M.entropy(a)
    assert M.mutual_information(a, a, a, unit="bits") == pytest.approx(2 * h_bits, rel=1e-12)
    assert M.mutual_information(a, a, a) == pytest.approx(2 * h_bits * math.log(2), rel=1e-12)


def test_sf_ag_on_a_ramp():
    ramp = np.tile(np.arange(10, dtype=float) * 3, (10, 1))  # d/dx = 3, d/dy = 0
    assert M.spatial_frequency(ramp, "cddfuse") == pytest.approx(3.0)
    assert M.spatial_frequency(ramp, "vifb") == pytest.approx(3.0 * math.sqrt(9 / 10))
    assert M.average_gradient(ramp, "cddfuse") == pytest.approx(3 / math.sqrt(2))
    assert M.average_gradient(ramp, "vifb") == pytest.approx(3 / math.sqrt(2) * 100 / 81)


def test_psnr_conventions():
    f, a, b = _triplet()
    m = M.mse(f, a, b)
    assert M.psnr(f, a, b, "cddfuse") == pytest.approx(10 * math.log10(float(f.max()) ** 2 / m))
    # S3IMFusion: 255^2 over the MSE of [0, 1] data = a true PSNR plus 20 log10(255)
    assert M.psnr(f, a, b, "s3imfusion") == pytest.approx(10 * math.log10(255**2 / m)
                                                          + 20 * math.log10(255))
    assert 60 < M.psnr(f, a, b, "s3imfusion") < 70
    with pytest.raises(ValueError, match="convention"):
        M.psnr(f, a, b, "matlab")


def test_psnr_of_a_fused_image_equal_to_both_sources_is_infinite():
    """Zero error: +inf dB in every convention, as the references' log10(x / 0) gives (it raised
    ZeroDivisionError, a traceback from `medfuse evaluate --profile paper` on identical images)."""
    _, a, _ = _triplet()
    for convention in ("vifb", "cddfuse", "s3imfusion"):
        assert M.psnr(a, a, a, convention) == math.inf
    scores = FusionMetrics(profile="paper")(a, a, a)
    assert scores["PSNR"] == math.inf and scores["SSIM"] == pytest.approx(1.0, abs=1e-6)


def test_cc_scd_signs():
    f, a, b = _triplet()
    assert M.correlation_coefficient(a, a, a) == pytest.approx(1.0)
    assert M.correlation_coefficient(255 - a.astype(float), a, a) == pytest.approx(-1.0)
    assert 0 < M.scd(f, a, b) < 2


def test_qcv_is_zero_for_a_perfect_copy_and_grows_with_distortion():
    f, a, b = _triplet()
    assert M.qcv(a, a, a) == pytest.approx(0.0, abs=1e-9)
    noisy = np.clip(f + np.random.default_rng(0).normal(0, 20, f.shape), 0, 255)
    assert M.qcv(noisy, a, b) > M.qcv(f, a, b)


def test_paper_profile_conventions():
    f, a, b = _triplet("CT-MRI", "16003", "F_max")
    p = FusionMetrics("paper")(f, a, b)
    v = FusionMetrics("vifb")(f, a, b)
    c = FusionMetrics("cddfuse")(f, a, b)
    assert p["MI"] == pytest.approx(v["MI"] / math.log(2), rel=1e-12)  # bits
    for k in ("Qabf", "Qcb", "Qcv", "EN", "SD", "SF", "AG"):
        assert p[k] == v[k]
    assert p["VIF"] == pytest.approx(c["VIF"], rel=1e-12)  # summed Sheikh-Bovik
    # mean of two skimage-style SSIMs without the border crop: close to CDDFuse's sum / 2
    assert p["SSIM"] == pytest.approx(c["SSIM"] / 2, rel=0.05) and p["SSIM"] != c["SSIM"] / 2
    # the paper's scale for the max rule on CT-MRI (its test split): MI 4.1, Qabf .58, VIF .61,
    # SSIM .69, Qcb .65 -> same order here (bits, summed VIF, mean SSIM), not 0.5x or 2x off
    assert (3 < p["MI"] < 5 and 0.5 < p["VIF"] < 1 and 0.6 < p["SSIM"] < 0.8
            and 0.55 < p["Qcb"] < 0.75)


def test_colour_source_is_scored_on_its_bt601_luma(harvard_dir):
    """The reference A.png of a PET pair is the rounded BT.601 luma of the Harvard RGB PET."""
    f, a, b = _triplet("PET-MRI", "25016", "F_avg")
    rgb = np.asarray(Image.open(harvard_dir / "PET-MRI" / "PET" / "25016.png").convert("RGB"))
    assert rgb.ndim == 3
    np.testing.assert_array_equal(np.rint(M.to_luma(rgb)), a.astype(float))
    fm = FusionMetrics("vifb", ["MI", "Qabf", "SSIM"])
    assert fm(f, rgb, b) == fm(f, a, b)
    assert fm(f, np.moveaxis(rgb, -1, 0), b) == fm(f, a, b)  # (3, H, W) as well


def test_quantize_and_torch_inputs():
    torch = pytest.importorskip("torch")
    f, a, b = _triplet()
    fm = FusionMetrics("cddfuse", ["EN", "SSIM", "Qabf"])
    ref = fm(f, a, b)
    jitter = f.astype(np.float32) + 0.3  # float output of a network before saving as 8-bit
    assert fm(jitter, a, b) == ref
    assert fm(torch.from_numpy(f.astype(np.float32))[None, None],
              torch.from_numpy(a.copy()), b) == ref
    assert FusionMetrics("cddfuse", ["SSIM"], quantize=False)(jitter, a, b)["SSIM"] != ref["SSIM"]


def test_fusionmetrics_selection_and_errors():
    f, a, b = _triplet()
    fm = FusionMetrics("vifb", "qabf, SSIM")
    assert fm.metrics == ("Qabf", "SSIM")
    assert list(fm(f, a, b)) == ["Qabf", "SSIM"]
    assert FusionMetrics("cddfuse").metrics == M.DEFAULT_METRICS["cddfuse"]
    with pytest.raises(ValueError, match="unknown metric profile"):
        FusionMetrics("matlab")
    with pytest.raises(ValueError, match="unknown metric.*NIQE"):
        FusionMetrics("vifb", ["NIQE"])
    with pytest.raises(ValueError, match="sizes differ"):
        fm(f[:128], a, b)
    with pytest.raises(ValueError, match="2D image"):
        M.entropy(np.zeros((2, 3, 4, 5)))


def test_every_metric_has_a_direction():
    for table in M.PROFILES.values():
        for name in table:
            assert isinstance(M.higher_is_better(name), bool)
    assert (not M.higher_is_better("Qcv") and not M.higher_is_better("CE")
            and M.higher_is_better("Qcb"))


def test_aggregate():
    rows = [{"name": "x", "Qabf": 0.5, "MI": 1.0}, {"name": "y", "Qabf": 0.7, "MI": float("nan")},
            {"name": "z", "Qabf": 0.9, "MI": 3.0}]
    s = aggregate(rows)
    assert list(s) == ["Qabf", "MI"]
    assert s["Qabf"]["mean"] == pytest.approx(0.7) and s["Qabf"]["median"] == pytest.approx(0.7)
    assert s["Qabf"]["std"] == pytest.approx(0.2) and s["Qabf"]["n"] == 3
    assert s["MI"]["mean"] == pytest.approx(2.0) and s["MI"]["n"] == 2
    assert s["Qabf"]["min"] == 0.5 and s["Qabf"]["max"] == 0.9
    assert aggregate([]) == {}


def test_unit_range_input_warns():
    f, a, b = _triplet()
    with pytest.warns(UserWarning, match=r"\[0, 1\]"):
        FusionMetrics("vifb", ["EN"])(f / 255.0, a, b)


def test_too_small_images_are_refused_clearly():
    img = np.random.default_rng(0).integers(0, 256, (32, 32)).astype(float)
    with pytest.raises(ValueError, match="too small for VIF"):
        FusionMetrics("vifb", ["VIF"])(img, img, img)
    with pytest.raises(ValueError, match="too small for SSIM"):
        M.ssim(img[:8, :8], img[:8, :8], img[:8, :8])
    assert FusionMetrics("vifb", ["EN", "Qabf"])(img, img, img)["EN"] > 0


def test_score_batch_of_network_outputs_in_minus_one_one():
    torch = pytest.importorskip("torch")
    f, a, b = _triplet()
    g, c, d = _triplet("SPECT-MRI", "10007", "F_max")
    fm = FusionMetrics("vifb", ["MI", "Qabf", "VIF"])

    def batch(*imgs):  # (B, 1, H, W) in [-1, 1], as the networks produce
        return torch.from_numpy(np.stack([i.astype(np.float32) / 127.5 - 1 for i in imgs])[:, None])

    rows = fm.score_batch(batch(f, g), batch(a, c), batch(b, d), value_range=(-1, 1))
    assert rows == [fm(f, a, b), fm(g, c, d)]
    with pytest.raises(ValueError, match="B, 1, H, W"):
        fm.score_batch(f, a, b)
