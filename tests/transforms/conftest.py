"""Fixtures for transform tests: real volumes loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def t1(stroke_dir: Path):
    from medfuse.io import load_volume

    return load_volume(stroke_dir / "T1.nii.gz")


@pytest.fixture(scope="session")
def t2(stroke_dir: Path):
    from medfuse.io import load_volume

    return load_volume(stroke_dir / "T2.nii.gz")


@pytest.fixture(scope="session")
def ct(phantom_dir: Path):
    from medfuse.io import load_volume

    return load_volume(phantom_dir / "CT_every4th")
