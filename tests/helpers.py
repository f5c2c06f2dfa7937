"""Helpers shared by the test modules (imported as ``tests.helpers``; the repo root is on the path)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, cwd: Path = REPO, timeout: int = 900, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess:
    """``python -m medfuse ARGS`` in a subprocess, with this checkout first on the path.

    ``prefix`` goes before the interpreter (e.g. ``nsenter --net=...`` to run in a namespace).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [*prefix, sys.executable, "-m", "medfuse", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
