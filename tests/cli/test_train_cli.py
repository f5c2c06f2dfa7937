"""``medfuse train`` as a user runs it: a subprocess on the real configs and data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _train(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "medfuse", "train", *args], capture_output=True,
                          text=True, cwd=cwd, env=full_env, timeout=900)


def _no_traceback(res: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("medfuse: error:")]
    assert len(errors) == 1, res.stderr


def test_help_lists_the_options() -> None:
    res = _train("--help")
    assert res.returncode == 0, res.stderr
    for opt in ("--output", "--device", "--resume", "--overwrite", "--print-config",
                "trainer#max_epochs"):
        assert opt in res.stdout


def test_print_config_merges_overlay_and_overrides() -> None:
    res = _train("pipelines/ecfusion_ct-mri.json", "pipelines/cpu_quick.json",
                 "trainer#max_epochs=3", "validation.key_metric=VIF", "--print-config")
    assert res.returncode == 0, res.stderr
    cfg = json.loads(res.stdout)
    assert cfg["trainer"]["max_epochs"] == 3 and cfg["trainer"]["batch_size"] == 4
    assert cfg["input_size"] == 128 and cfg["validation"]["key_metric"] == "VIF"
    assert cfg["loss"]["lam"] == 0.02


def test_user_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    res = _train(str(tmp_path / "missing.json"))
    assert res.returncode == 3 and "config file not found" in res.stderr
    _no_traceback(res)
    res = _train("pipelines/ecfusion_ct-mri.json", "nosuch#key=1")
    assert res.returncode == 2 and "no section 'nosuch'" in res.stderr
    res = _train("pipelines/ecfusion_ct-mri.json", "data_root=/nonexistent", "loss#lam=0",
                 "-o", str(tmp_path / "r"))
    assert res.returncode == 3 and "data folder not found" in res.stderr
    _no_traceback(res)
    assert not any((tmp_path / "r").iterdir())  # a failed start leaves no run behind


def test_missing_vgg_weights_is_a_weights_error(tmp_path: Path) -> None:
    env = {"TORCH_HOME": str(tmp_path / "torch"), "MEDFUSE_CACHE": str(tmp_path / "cache"),
           "MEDFUSE_VGG19_WEIGHTS": "", "MEDFUSE_VGG16_WEIGHTS": ""}
    res = _train("pipelines/ecfusion_ct-mri.json", "-o", str(tmp_path / "run"), env=env)
    assert res.returncode == 6, res.stderr
    assert "VGG19 weights" in res.stderr
    _no_traceback(res)


@pytest.mark.slow
def test_quick_cli_run_then_refuses_to_overwrite(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["pipelines/s3imfusion_spect-mri.json", "pipelines/cpu_quick.json",
            "trainer#max_epochs=1", "train_limit=2", "val_limit=1", "input_size=64",
            "trainer#batch_size=2", "-o", str(run), "--no-progress"]
    res = _train(*args)
    assert res.returncode == 0, res.stderr
    assert "trained s3imfusion on spect-mri: 1 epochs" in res.stdout
    assert (run / "s3imfusion-spect-mri.safetensors").is_file() and (run / "summary.json").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "spect-mri" and summary["validation"]["best_epoch"] == 1
    assert "epoch 1/1" in res.stderr  # the per-epoch log line
    again = _train(*args)
    assert again.returncode == 5 and "holds a previous run" in again.stderr
    _no_traceback(again)
    done = _train(*args[:-3], "trainer#max_epochs=1", "-o", str(run), "--resume", "--no-progress")
    assert done.returncode == 0, done.stderr  # nothing left to train: exports again, exit 0


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tmp_path: Path) -> None:
    """DDP over gloo: 2 processes, each its DistributedSampler share; rank 0 validates and
    exports."""
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "medfuse", "train", "pipelines/s3imfusion_ct-mri.json", "pipelines/cpu_quick.json",
           "trainer#max_epochs=1", "train_limit=4", "val_limit=1", "input_size=64",
           "trainer#batch_size=1", "-o", str(run), "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    # 4 pairs / 2 processes / batch 1
    assert summary["world_size"] == 2 and summary["iterations"] == 2
    assert summary["validation"]["best_epoch"] == 1
    assert (run / "s3imfusion-ct-mri.safetensors").is_file()
