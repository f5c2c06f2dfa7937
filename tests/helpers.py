"""Helpers shared by the test modules (imported as ``tests.helpers``; the repo root is on the
path)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess: this checkout first on the path, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_python(
    *args: str,
    cwd: Path = REPO,
    timeout: int = 900,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess:
    """``python ARGS`` in a subprocess, with this checkout first on the path.

    Args:
        env: the environment (default: :func:`cli_env`).
        prefix: a command to run it under (e.g. ``("unshare", "-n", ...)``).
    """
    return subprocess.run(
        [*prefix, sys.executable, *args],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli(
    *args: str,
    cwd: Path = REPO,
    timeout: int = 900,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess:
    """``python -m medfuse ARGS`` in a subprocess (see :func:`run_python`)."""
    return run_python("-m", "medfuse", *args, cwd=cwd, timeout=timeout, env=env, prefix=prefix)


def random_ecfusion(path: Path, task: str, seed: int) -> Path:
    """A small randomly initialised ECFusion saved with save_weights (for the network path)."""
    import torch

    from medfuse.nets import get_network, save_weights

    torch.manual_seed(seed)
    kw = {"features": 4, "num_blocks": 2, "taps": [1, 2], "token_channels": [8, 4]}
    return save_weights(get_network("ecfusion", **kw), path, "ecfusion", kwargs=kw, task=task)


def tree_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below ``folder`` by relative path (to show nothing was touched)."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def demo_study(folder: Path) -> Path:
    """``folder`` (created) holding copies of the demo ``ct/`` and ``mr/`` and a user's note."""
    import shutil

    from medfuse.data import demo_pair

    folder.mkdir()
    for src in demo_pair():
        shutil.copytree(src, folder / src.name)
    (folder / "notes.txt").write_text("mine\n")
    return folder
