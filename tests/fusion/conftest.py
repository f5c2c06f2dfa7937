"""Fixtures for fusion tests: real pairs, and one end-to-end CLI run on the phantom pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli


@pytest.fixture(scope="session")
def phantom_run(phantom_dir: Path, tmp_path_factory) -> Path:
    """The full phantom pair fused end to end by the CLI (laplacian): the output folder."""
    out = tmp_path_factory.mktemp("phantom") / "out"
    res = run_cli(
        "fuse",
        str(phantom_dir / "CT_every4th"),
        str(phantom_dir / "MR_T2"),
        "-o",
        str(out),
        "--method",
        "laplacian",
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="session")
def ct_mri_pair(harvard_dir: Path):
    """One real Harvard CT-MRI pair as (1, 1, 256, 256) float32 tensors in [0, 1]."""
    import numpy as np
    import torch
    from PIL import Image

    ct_dir = harvard_dir / "CT-MRI" / "CT"
    name = sorted(p.name for p in ct_dir.glob("*.png"))[10]
    imgs = [
        np.asarray(Image.open(harvard_dir / "CT-MRI" / m / name).convert("L"))
        for m in ("CT", "MRI")
    ]
    return tuple(torch.from_numpy(i.astype(np.float32) / 255.0)[None, None] for i in imgs)
