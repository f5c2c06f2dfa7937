"""Tiled network inference (``--tile``): nothing changes when a slice fits a tile, and no seams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medfuse.errors import InputError
from medfuse.fusion import get_method


def _stroke_slice(t1, t2, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Axial slice k of the co-registered stroke T2 and T1, each windowed to [0, 1]."""
    out = []
    for vol in (t2, t1):
        x = vol.as_tensor()[0, :, :, k].float()
        out.append(((x - x.min()) / (x.max() - x.min()))[None, None])
    return out[0], out[1]


def _tile_borders(size: int, tile: int, overlap: float) -> set[int]:
    """Pixel indices where a tile starts or ends along one side (MONAI's window placement)."""
    step = int(tile * (1 - overlap))
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return {s for s in starts if s > 0} | {s + tile for s in starts if s + tile < size}


def test_a_slice_that_fits_one_tile_is_fused_whole(ct_mri_pair):
    a, b = ct_mri_pair  # 256 x 256
    whole = get_method("s3imfusion", task="ct-mri", tile=0)(a, b)
    tiled = get_method("s3imfusion", task="ct-mri", tile=256)(a, b)
    assert torch.equal(whole, tiled)


def _seam_jumps(y: np.ndarray, rows: set[int], cols: set[int]) -> tuple[float, float]:
    """The largest jump between neighbouring pixels across a tile border, and inside tiles."""
    dy = np.abs(np.diff(y, axis=0))  # dy[i]: the jump between rows i and i + 1
    dx = np.abs(np.diff(y, axis=1))
    rb = np.zeros(dy.shape[0], bool)
    rb[[r - 1 for r in rows]] = True
    cb = np.zeros(dx.shape[1], bool)
    cb[[c - 1 for c in cols]] = True
    return max(dy[rb].max(), dx[:, cb].max()), max(dy[~rb].max(), dx[:, ~cb].max())


@pytest.mark.parametrize("net", ["s3imfusion", "ecfusion"])
def test_tiles_leave_no_seams_on_real_slices(t1, t2, net):
    a, b = _stroke_slice(t1, t2, 70)  # (1, 1, 124, 160): 3 x 4 tiles of 64
    tile, overlap = 64, 0.25
    y = get_method(net, task="ct-mri", tile=tile, tile_overlap=overlap)(a, b)
    y = y[0, 0].numpy().astype(np.float64)
    whole = get_method(net, task="ct-mri", tile=0)(a, b)[0, 0].numpy()
    assert y.shape == whole.shape and not np.array_equal(y, whole)  # really tiled
    rows, cols = _tile_borders(y.shape[0], tile, overlap), _tile_borders(y.shape[1], tile, overlap)
    assert rows and cols
    across, inside = _seam_jumps(y, rows, cols)
    assert across <= inside, (across, inside)


def test_bad_tile_sizes_are_one_line_errors():
    with pytest.raises(InputError, match="tile"):
        get_method("s3imfusion", task="ct-mri", tile=8)
    with pytest.raises(InputError, match="overlap"):
        get_method("s3imfusion", task="ct-mri", tile=64, tile_overlap=1.0)
