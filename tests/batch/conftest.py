"""Helpers for the batch run tests: manifests of real pairs, process and temp-folder checks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from medfuse.io.checksums import verify_outputs
from tests.helpers import cli_env, run_python


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """A CSV manifest with the union of the rows' keys as columns."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    lines = [",".join(cols)] + [",".join(r.get(c, "") for c in cols) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def tagged_pids(tag: str) -> list[int]:
    """PIDs of live processes whose environment holds ``MEDFUSE_TEST_TAG=tag`` (ours only)."""
    needle = f"MEDFUSE_TEST_TAG={tag}".encode()
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if needle in (p / "environ").read_bytes().split(b"\0"):
                    stat = (p / "stat").read_text()
                    if stat.rsplit(")", 1)[1].split()[0] != "Z":
                        pids.append(int(p.name))
            except OSError:
                pass
    return pids


def wait_gone(tag: str, seconds: float = 120) -> list[int]:
    """Wait until no tagged process is left; the ones still alive after ``seconds``."""
    end = time.monotonic() + seconds
    while tagged_pids(tag) and time.monotonic() < end:
        time.sleep(0.2)
    return tagged_pids(tag)


def run_private_ray(
    args: Sequence[str], tag: str, prefix: Sequence[str]
) -> tuple[subprocess.CompletedProcess, list[int]]:
    """``python ARGS`` that starts a local Ray instance, under ``prefix`` (a private network).

    The run gets its own short ``RAY_TMPDIR`` (Ray's socket paths are limited) and
    ``MEDFUSE_TEST_TAG=tag``; afterwards every tagged process still alive is killed and the folder
    removed, even when the run fails.

    Returns:
        The finished process, and the tagged processes still alive 60 s after it ended.
    """
    ray_tmp = tempfile.mkdtemp(prefix="mfray", dir="/tmp")
    try:
        res = run_python(*args, env=cli_env(RAY_TMPDIR=ray_tmp, MEDFUSE_TEST_TAG=tag),
                         prefix=prefix)
        left = wait_gone(tag, 60)
    finally:
        for pid in tagged_pids(tag):  # only on failure: never leave Ray processes behind
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return res, left


def temp_leftovers(folder: Path) -> list[str]:
    """Hidden temporary folders (``.NAME.tmp-*`` / ``.NAME.old-*``) in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and
                  (".tmp-" in p.name or ".old-" in p.name))


def assert_complete(out: Path) -> dict:
    """``out`` is a complete medfuse output (run.json hashes match); its run.json."""
    assert verify_outputs(out) is None, (out, verify_outputs(out))
    return json.loads((out / "run.json").read_text())


def report_by_id(path: Path) -> dict[str, dict]:
    """The batch report's studies by id."""
    return {s["id"]: s for s in json.loads(path.read_text())["studies"]}


@pytest.fixture
def tag() -> str:
    """A unique tag put into a CLI run's environment, to find its processes afterwards."""
    return uuid.uuid4().hex


def netns_prefix() -> tuple[str, ...] | None:
    """A command prefix running its command in a private network namespace (loopback up)."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return None
    for flags in (["-n"], ["-rn"]):
        probe = subprocess.run(["unshare", *flags, "ip", "link", "set", "lo", "up"],
                               capture_output=True)
        if probe.returncode == 0:
            return ("unshare", *flags, "sh", "-c", 'ip link set lo up && exec "$@"', "sh")
    return None
