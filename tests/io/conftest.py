"""Fixtures for io tests: the phantom series loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ct_dir(phantom_dir: Path) -> Path:
    return phantom_dir / "CT_every4th"


@pytest.fixture(scope="session")
def mr_dir(phantom_dir: Path) -> Path:
    return phantom_dir / "MR_T2"


@pytest.fixture(scope="session")
def ct_volume(ct_dir: Path):
    from medfuse.io import load_volume

    return load_volume(ct_dir)


@pytest.fixture(scope="session")
def mr_volume(mr_dir: Path):
    from medfuse.io import load_volume

    return load_volume(mr_dir)
