"""``benchmarks/bench_baseline_bar.py``: blends of a network's output with the baselines, scored
against ``--method auto``'s bar (real validation pairs, shipped weights)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_baseline_bar  # noqa: E402
from bench_quality import BASELINES  # noqa: E402


def test_blend_folder_mixes_pixelwise_and_refuses_other_shapes(harvard_dir: Path,
                                                               tmp_path: Path) -> None:
    net, base = tmp_path / "net", tmp_path / "base"
    net.mkdir()
    base.mkdir()
    ct, mri = harvard_dir / "CT-MRI" / "CT", harvard_dir / "CT-MRI" / "MRI"
    names = sorted(p.name for p in ct.iterdir())[:2]
    for name in names:
        Image.open(ct / name).convert("L").save(net / name)
        Image.open(mri / name).convert("L").save(base / name)
    out = bench_baseline_bar.blend_folder(net, base, tmp_path / "mix", 0.25)
    for name in names:
        x = np.asarray(Image.open(net / name), dtype=np.float64)
        y = np.asarray(Image.open(base / name), dtype=np.float64)
        got = np.asarray(Image.open(out / name), dtype=np.float64)
        assert np.abs(got - (0.75 * x + 0.25 * y)).max() <= 0.5
        assert not np.array_equal(got, x) and not np.array_equal(got, y)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(base / names[0])
    with pytest.raises(SystemExit, match=names[0]):
        bench_baseline_bar.blend_folder(net, base, tmp_path / "bad", 0.5)


@pytest.mark.slow
def test_the_end_weights_reproduce_the_network_and_each_baseline(tmp_path: Path) -> None:
    """Weight 0 scores as the network itself, weight 1 as the baseline it blends with: the blends
    go through the same PNGs and scorer as the methods' own outputs."""
    table, baselines = bench_baseline_bar.bar_table("ct-mri", "ecfusion", None, [0.0, 1.0],
                                                    tmp_path)
    rows = {label: (means, wins) for label, means, wins in table}
    net, net_wins = rows["ecfusion"]
    assert set(net) == {"MI", "Qabf", "VIF", "SSIM", "Qcb", "Qcv"}
    for b in BASELINES:
        assert rows[f"ecfusion+0*{b}"] == (pytest.approx(net, rel=1e-9), net_wins)
        one, wins = rows[f"ecfusion+1*{b}"]
        assert one == pytest.approx({m: baselines[b][m] for m in net}, rel=1e-9)
        assert wins == []  # a baseline never beats itself
