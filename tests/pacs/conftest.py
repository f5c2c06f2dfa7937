"""Fixtures for the PACS tests: a real Orthanc in a private network namespace, a fused series."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.pacs.orthanc import Netns, Orthanc, missing_tools


@pytest.fixture(scope="session")
def netns() -> Iterator[Netns]:
    """A private network namespace (skips when Orthanc, unshare, nsenter or ip is missing)."""
    why = missing_tools()
    if why:
        pytest.skip(why)
    ns = Netns()
    try:
        yield ns
    finally:
        ns.close()


@pytest.fixture
def orthanc(netns: Netns, tmp_path: Path) -> Iterator[Orthanc]:
    """A running Orthanc with empty storage, stopped by PID after the test (also on failure)."""
    server = Orthanc(netns, tmp_path / "orthanc")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fused_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``medfuse fuse --demo --method average`` output (20-instance DICOM SC series in dicom/)."""
    out = tmp_path_factory.mktemp("fused") / "out"
    r = run_cli("fuse", "--demo", "--method", "average", "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    return out
