"""``load_fuse_output``: a registered fuse run's sources come back as the method saw them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from medfuse.cli import cli


def test_registered_demo_sources_reproduce_the_average_fusion(tmp_path: Path):
    """Demo CT/MR (rigid registration): the mean of the re-created sources is the written fusion,
    to the 8-bit rounding, on every voxel; the windows match run.json's."""
    from medfuse.fusion.sources import load_fuse_output

    out = tmp_path / "out"
    r = CliRunner().invoke(
        cli, ["fuse", "--demo", "-o", str(out), "--method", "average", "--format", "nifti", "-q"]
    )
    assert r.exit_code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert run["registration"]["kind"] == "rigid"
    got = load_fuse_output(out)
    assert got.notes == []
    for n, ab in enumerate("ab"):
        for k in ("lower", "upper"):
            assert got.sources.windows[n][k] == run["windows"][ab][k]
    a, b = (x.numpy()[:, 0] for x in got.sources.luma)
    want = np.clip(np.rint((a + b) / 2 * 255), 0, 255)
    diff = np.abs(got.fused[:, 0].astype(np.float64) - want)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    # the registration matters: without the transform the CT lands elsewhere
    from medfuse.fusion.sources import slices_on_grid
    from medfuse.io import load_volume
    from medfuse.transforms import Window

    vols = [load_volume(p) for p in got.source_paths]
    plain = slices_on_grid(vols, [Window("auto"), Window("auto")], (False, False), 1, None)
    a0 = plain.luma[0].numpy()[:, 0]
    assert np.abs(np.clip(np.rint((a0 + b) / 2 * 255), 0, 255) - got.fused[:, 0]).mean() > 5
