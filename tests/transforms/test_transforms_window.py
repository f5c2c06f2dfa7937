"""Intensity windowing on real CT (HU) and MR."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medfuse.errors import InputError
from medfuse.transforms import WINDOW_PRESETS, Window, Windowd, percentile


def test_ct_presets_follow_level_width(ct):
    ct = ct[:, ::4, ::4, ::5]  # a real-HU subsample keeps the test fast
    x = ct.numpy()
    for name, (level, width) in [
        ("ct-brain", (40, 80)),
        ("ct-subdural", (75, 215)),
        ("ct-bone", (400, 1800)),
        ("ct-soft-tissue", (50, 400)),
    ]:
        assert WINDOW_PRESETS[name] == (level, width)
        out = Window(name)(ct)
        lo, hi = level - width / 2, level + width / 2
        exp = np.clip((x - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(out.numpy(), exp, atol=1e-6)
        assert out.meta["window"] == {"preset": name, "lower": lo, "upper": hi}
        assert isinstance(out, MetaTensor)
        np.testing.assert_allclose(out.affine.numpy(), ct.affine.numpy())


def test_ct_brain_known_values():
    img = MetaTensor(torch.tensor([[-1000.0, 0.0, 40.0, 80.0, 1000.0]]), meta={"modality": "CT"})
    out = Window("ct-brain")(img)
    np.testing.assert_allclose(out.numpy(), [[0.0, 0.0, 0.5, 1.0, 1.0]])
    # explicit level/width overrides the preset
    out = Window("ct-brain", level=0.0, width=2000.0)(img)
    np.testing.assert_allclose(out.numpy(), [[0.0, 0.5, 0.52, 0.54, 1.0]], atol=1e-6)


def test_auto_preset_from_modality(ct, t1):
    assert Window()(ct).meta["window"]["preset"] == "ct-brain"
    assert Window()(t1).meta["window"]["preset"] == "mr"  # modality unknown -> MR percentiles
    pet = MetaTensor(torch.arange(1000.0).reshape(1, 10, 10, 10), meta={"modality": "PT"})
    w = Window()(pet)
    assert w.meta["window"]["preset"] == "pet"
    assert w.meta["window"]["lower"] == 0.0
    assert w.meta["window"]["upper"] == pytest.approx(np.percentile(np.arange(1000.0), 99.5))


def test_dicom_preset_uses_header_window(ct, t1):
    hdr = ct.meta["dicom_datasets"][0]
    c, w = float(hdr.WindowCenter), float(hdr.WindowWidth)  # 40 / 400 in the phantom CT
    out = Window("dicom")(ct[:, ::8, ::8, ::8])
    assert out.meta["window"] == {"preset": "dicom", "lower": c - w / 2, "upper": c + w / 2}
    assert Window("dicom")(t1).meta["window"]["preset"] == "mr"  # NIfTI: no header -> auto


def test_percentiles_match_numpy(t1):
    x = t1.numpy()
    lo, hi = np.percentile(x, [2.0, 98.0])
    assert percentile(t1, [2.0, 98.0]) == pytest.approx([lo, hi], rel=1e-5)
    out = Window(percentiles=(2.0, 98.0))(t1)
    np.testing.assert_allclose(out.numpy(), np.clip((x - lo) / (hi - lo), 0, 1), atol=1e-5)
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


def test_percentile_on_large_volume_matches_numpy(ct):
    # more than 2**24 voxels: torch.quantile refuses, ours must not
    assert ct.numel() > 2**24
    np.testing.assert_allclose(
        percentile(ct, [0.5, 99.5]), np.percentile(ct.numpy(), [0.5, 99.5]), rtol=1e-5
    )


def test_device_path_percentiles_match_numpy(t1):
    from medfuse.transforms.window import _kth_percentiles

    flat = t1.as_tensor().reshape(-1)
    q = [0.0, 0.5, 37.3, 99.5, 100.0]
    np.testing.assert_allclose(_kth_percentiles(flat, q), np.percentile(flat.numpy(), q), rtol=1e-6)


def test_windowd_per_key(ct, t1):
    d = Windowd(keys=["ct", "mr"], preset=["ct-bone", "mr"])({"ct": ct, "mr": t1})
    assert d["ct"].meta["window"]["preset"] == "ct-bone"
    assert d["mr"].meta["window"]["preset"] == "mr"
    d = Windowd(keys=["mr"], percentiles=(1, 99))({"mr": t1})
    assert d["mr"].meta["window"]["preset"] == "percentiles 1-99"


def test_bad_window_arguments():
    with pytest.raises(InputError, match="unknown window preset"):
        Window("lung-ish")
    with pytest.raises(InputError, match="both"):
        Window(level=40.0)
    with pytest.raises(InputError, match="> 0"):
        Window(level=40.0, width=0.0)
    with pytest.raises(InputError, match="percentiles"):
        Window(percentiles=(99, 1))


def test_constant_image_windows_to_zero():
    img = MetaTensor(torch.full((1, 4, 4, 4), 7.0), meta={"modality": "MR"})
    out = Window("mr")(img)
    assert float(out.abs().max()) == 0.0
