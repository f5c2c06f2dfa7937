"""Inter-slice excess (ISE) on the real co-registered stroke FLAIR/T1 pair."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from medfuse.metrics.consistency import (
    fused_slices_ise,
    interslice_excess,
    interslice_profile,
)


@pytest.fixture(scope="module")
def pair(stroke_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(K, H, W) axial-ish stacks (voxel axis 2 first) of FLAIR and T1, 8-bit values."""
    import nibabel as nib

    a, b = (
        np.moveaxis(np.asarray(nib.load(stroke_dir / f"{n}.nii.gz").dataobj), 2, 0).astype(
            np.float32
        )
        for n in ("FLAIR", "T1")
    )
    return a, b


def test_pointwise_fusions_add_no_change(pair):
    """A source, the rounded mean or the maximum never changes more than a source does."""
    a, b = pair
    assert interslice_excess(a, a, b) == 0.0
    assert interslice_excess(b, a, b) == 0.0
    assert interslice_excess(np.rint((a + b) / 2), a, b) == 0.0
    assert interslice_excess(np.maximum(a, b), a, b) == 0.0


def test_injected_flicker_scores_higher(pair):
    """Per-slice gain jitter on the mean fusion: the more flicker, the higher; switching sources
    from slice to slice is far worse."""
    a, b = pair
    avg = np.rint((a + b) / 2)
    rng = np.random.default_rng(0)
    jitter = rng.standard_normal(len(a))
    scores = []
    for amp in (0.02, 0.05, 0.10):
        flick = np.clip(np.rint(avg * (1 + amp * jitter)[:, None, None]), 0, 255)
        scores.append(interslice_excess(flick, a, b))
    assert 0.005 < scores[0] < scores[1] < scores[2]
    assert scores[1] > 0.03
    alternate = np.where((np.arange(len(a)) % 2 == 0)[:, None, None], a, b)
    assert interslice_excess(alternate, a, b) > 0.5
    # the per-gap profile is zero where nothing was injected
    half = avg.copy()
    half[60:] = np.clip(np.rint(avg[60:] * (1 + 0.05 * jitter[60:])[:, None, None]), 0, 255)
    per_gap = interslice_profile(half, a, b).per_gap()
    assert np.nansum(per_gap[:59]) == 0 and np.nanmean(per_gap[60:]) > 0.02


def test_rgb_fused_and_unit_range_sources(pair):
    """The pipeline form: uint8 (N, 3, H, W) fused against (N, 1, H, W) sources in [0, 1]."""
    a, b = pair
    a01, b01 = a[:, None] / 255.0, b[:, None] / 255.0
    grey = np.rint((a + b) / 2).astype(np.uint8)[:, None]
    assert fused_slices_ise(np.repeat(grey, 3, axis=1), a01, b01) == 0.0
    flick = np.clip(
        np.rint(grey * np.where(np.arange(len(a)) % 2, 1.08, 0.92)[:, None, None, None]), 0, 255
    ).astype(np.uint8)
    assert fused_slices_ise(flick, a01, b01) > 0.05
    assert math.isnan(fused_slices_ise(flick[:1], a01[:1], b01[:1]))  # one slice: no gap


def test_bad_shapes():
    x = np.zeros((4, 8, 8))
    with pytest.raises(ValueError, match="shapes differ"):
        interslice_excess(x, x, np.zeros((4, 8, 9)))
    with pytest.raises(ValueError, match="at least 2 slices"):
        interslice_excess(x[:1], x[:1], x[:1])
    with pytest.raises(ValueError, match="stack"):
        interslice_excess(x[0], x[0], x[0])


def test_pooled_scales_tell_texture_switching_from_brightness_flicker(pair):
    """Per-pixel random switching between the sources: high at the pixel scale, low on 16-px
    blocks and slice means; a slice-wise gain jitter: the other way round."""
    a, b = pair
    rng = np.random.default_rng(0)
    switch = np.where(rng.random(a.shape) < 0.5, a, b)
    avg = np.rint((a + b) / 2)
    gain = np.clip(np.rint(avg * (1 + 0.05 * rng.standard_normal(len(a)))[:, None, None]), 0, 255)
    sw = [interslice_excess(switch, a, b, tolerance=t, pool=p)
          for p, t in ((1, 1), (16, 0), (0, 0))]
    gn = [interslice_excess(gain, a, b, tolerance=t, pool=p) for p, t in ((1, 1), (16, 0), (0, 0))]
    assert sw[0] > 0.2 and sw[1] < sw[0] / 5 and sw[2] < 0.02
    assert gn[0] < gn[1] < gn[2] and gn[2] > 0.5
    for p in (16, 0):
        assert interslice_excess(avg, a, b, tolerance=0, pool=p) < 1e-3
    with pytest.raises(ValueError, match="pool"):
        interslice_excess(avg, a, b, pool=-1)
