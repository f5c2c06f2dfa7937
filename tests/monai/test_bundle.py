"""MONAI bundles: ``medfuse export-bundle``, ``python -m monai.bundle run`` offline on a real NIfTI
pair (equal to ``medfuse fuse``), offline metadata validation, and the committed bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medfuse.bundle.check import bundle_problems
from medfuse.bundle.schema import SCHEMA_PATH, metadata_errors, validate_metadata
from medfuse.errors import InputError
from medfuse.nets.pretrained import WEIGHTS_DIR, sha256
from tests.helpers import REPO, run_cli, run_python

BUNDLES = REPO / "pipelines" / "bundles"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, weights_file: Path) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "ecfusion_ct-mri"
    res = run_cli("export-bundle", "--weights", str(weights_file), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert f"wrote MONAI bundle {out}" in res.stdout
    return out


def _one_error_line(args: list[str], code: int, *fragments: str) -> None:
    from click.testing import CliRunner

    from medfuse.cli import cli

    res = CliRunner().invoke(cli, ["export-bundle", *args])
    assert res.exit_code == code, (res.exit_code, res.output)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medfuse: error: "), res.output
    for f in fragments:
        assert f in lines[0], lines[0]


def test_export_writes_a_complete_bundle(bundle: Path, weights_file: Path):
    assert sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()) == [
        ".medfuse-output", "LICENSE", "configs/inference.json", "configs/metadata.json",
        "docs/README.md", "models/model.pt"]
    meta = validate_metadata(bundle / "configs" / "metadata.json")
    assert meta["medfuse"] == {"network": "ecfusion", "task": "ct-mri",
                               "weights_sha256": sha256(weights_file),
                               "kwargs": {"features": 4, "num_blocks": 2, "taps": [1, 2],
                                          "token_channels": [8, 4]}}
    assert set(meta["network_data_format"]["inputs"]) == {"image_a", "image_b"}
    assert meta["required_packages_version"]["medfuse"]
    assert any("Scientific Reports" in r for r in meta["references"])
    cfg = json.loads((bundle / "configs" / "inference.json").read_text())
    assert cfg["network_def"]["_target_"] == "medfuse.nets.ecfusion.ECFusion"
    assert cfg["network_def"]["features"] == 4
    assert cfg["inferer"]["_target_"] == "medfuse.bundle.components.SliceFusionInferer"
    # the only large file is the state dict: the weights' tensor bytes plus torch.save's per-record
    # overhead
    state = torch.load(bundle / "models/model.pt", weights_only=True)
    payload = sum(v.numel() * v.element_size() for v in state.values())
    assert (payload < (bundle / "models/model.pt").stat().st_size
            <= payload + 512 * len(state) + 16384)
    assert sum(p.stat().st_size for p in bundle.rglob("*")
               if p.is_file() and p.suffix != ".pt") < 20000
    assert bundle_problems(bundle, weights_file) == []
    assert "python -m monai.bundle run" in (bundle / "docs" / "README.md").read_text()


def test_bundle_runs_offline_and_equals_medfuse_fuse(tmp_path: Path, bundle: Path, nifti_pair,
                                                     reference_fused):
    a, b = nifti_pair
    out = tmp_path / "eval"
    res = run_python("-m", "monai.bundle", "run",
                     "--config_file", str(bundle / "configs/inference.json"),
                     "--meta_file", str(bundle / "configs/metadata.json"),
                     "--bundle_root", str(bundle),
                     "--image_a", str(a), "--image_b", str(b), "--output_dir", str(out),
                     "--device", "$torch.device('cpu')")
    assert res.returncode == 0, res.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == ["t1_fused.nii.gz"]
    fused, ref_b, ref_a = nib.load(out / "t1_fused.nii.gz"), nib.load(b), nib.load(a)
    assert fused.shape == ref_b.shape == (83, 107, 6)
    np.testing.assert_allclose(fused.affine, ref_b.affine, atol=1e-5)  # B's grid, not A's
    assert not np.allclose(fused.affine, ref_a.affine, atol=1e-3)
    data = np.asarray(fused.dataobj)
    assert data.dtype == np.uint8 and data.std() > 0.5
    mine = np.asarray(nib.load(reference_fused).dataobj)
    # Same network, same input: the same voxels, up to float32 summation order. oneDNN picks its
    # convolution kernels by batch shape and thread count, and the bundle's inferer batches slices
    # differently from `medfuse fuse`, so a value within 1e-6 of a rounding boundary may land one
    # grey level apart (CI saw 2 of 53286 voxels). A wrong grid, network or window differs by far
    # more.
    diff = np.abs(data.astype(np.int16) - mine.astype(np.int16))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= data.size // 1000, (
        diff.max(), np.count_nonzero(diff))


def test_metadata_validates_offline_with_monai_verify_metadata(bundle: Path):
    # the shipped schema file exists, so MONAI skips its download
    res = run_python("-m", "monai.bundle", "verify_metadata", "--meta_file",
                     str(bundle / "configs/metadata.json"), "--filepath", str(SCHEMA_PATH))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "metadata is verified with no error" in res.stdout + res.stderr
    res = run_python("-m", "medfuse.bundle.schema", str(bundle / "configs/metadata.json"))
    assert res.returncode == 0 and res.stdout.strip().endswith(": valid"), res.stderr


def test_metadata_schema_rejects_broken_metadata(tmp_path: Path, bundle: Path):
    meta = json.loads((bundle / "configs/metadata.json").read_text())
    bad = dict(meta)
    del bad["network_data_format"]
    assert any("'network_data_format' is a required property" in e for e in metadata_errors(bad))
    bad = json.loads(json.dumps(meta))
    del bad["network_data_format"]["inputs"]["image_a"]["value_range"]
    bad["pytorch_version"] = 2
    errs = metadata_errors(bad)
    assert any(e.startswith("pytorch_version: 2 is not of type 'string'") for e in errs), errs
    assert any("network_data_format/inputs/image_a" in e for e in errs), errs
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"metadata.json: invalid bundle metadata: "):
        validate_metadata(path)
    res = run_python("-m", "medfuse.bundle.schema", str(path))
    assert (res.returncode == 3 and res.stderr.startswith("medfuse: error: ")
            and "Traceback" not in res.stderr)


def test_export_bundle_errors_are_one_line_and_write_nothing(tmp_path: Path, bundle: Path,
                                                             weights_file: Path):
    _one_error_line(["--weights", str(weights_file), "-o", str(bundle)], 5,
                    "output folder exists and is not empty")
    out = tmp_path / "b"
    _one_error_line(["--weights", str(tmp_path / "none.safetensors"), "-o", str(out)], 6,
                    "none.safetensors: weights file not found")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not weights")
    _one_error_line(["--weights", str(junk), "-o", str(out)], 6,
                    "junk.safetensors: not a readable safetensors file")
    _one_error_line(["--weights", str(weights_file), "--net", "s3imfusion", "-o", str(out)], 6,
                    "weights do not match network 's3imfusion'")
    _one_error_line(["--net", "ecfusion", "--task", "mr-mr", "-o", str(out)], 6,
                    "unknown task 'mr-mr'")
    _one_error_line(["--net", "nosuchnet", "--task", "pet-mri", "-o", str(out)], 6,
                    "no shipped weights for nosuchnet on pet-mri")
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["junk.safetensors"]


def test_make_bundles_script_writes_and_checks(tmp_path: Path, weights_file: Path):
    wdir, out = tmp_path / "weights", tmp_path / "bundles"
    wdir.mkdir()
    shutil.copy(weights_file, wdir / "ecfusion-ct-mri.safetensors")
    res = run_python("scripts/make_bundles.py", "--weights-dir", str(wdir), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert [p.name for p in out.iterdir()] == ["ecfusion_ct-mri"]
    assert bundle_problems(out / "ecfusion_ct-mri", wdir / "ecfusion-ct-mri.safetensors") == []
    # no output marker (it holds its creation time: the committed bundles would churn), and a
    # second run still replaces the folder (its metadata.json tells medfuse it is its own)
    assert not (out / "ecfusion_ct-mri" / ".medfuse-output").exists()
    res = run_python("scripts/make_bundles.py", "--weights-dir", str(wdir), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert not (out / "ecfusion_ct-mri" / ".medfuse-output").exists()
    res = run_python("scripts/make_bundles.py", "--weights-dir", str(wdir), "--out", str(out),
                     "--check")
    assert res.returncode == 0 and "ecfusion_ct-mri: ok" in res.stdout, res.stderr
    # a bundle no longer matching its weights (retrained file) fails the check
    state = torch.load(out / "ecfusion_ct-mri/models/model.pt", weights_only=True)
    first = next(iter(state))
    state[first] = state[first] + 1
    torch.save(state, out / "ecfusion_ct-mri/models/model.pt")
    (out / "stale_bundle").mkdir()
    res = run_python("scripts/make_bundles.py", "--weights-dir", str(wdir), "--out", str(out),
                     "--check")
    assert res.returncode == 1
    assert f"1 tensors differ from ecfusion-ct-mri.safetensors (first {first})" in res.stderr
    assert "stale_bundle: no weights file for this bundle" in res.stderr


def test_committed_bundles_match_the_shipped_weights():
    """Every pipelines/bundles/<net>_<task>/ matches medfuse/weights/<net>-<task>.safetensors."""
    bundles = sorted(p for p in BUNDLES.iterdir() if p.is_dir()) if BUNDLES.is_dir() else []
    for b in bundles:
        net, task = b.name.split("_", 1)
        weights = WEIGHTS_DIR / f"{net}-{task}.safetensors"
        assert weights.is_file(), f"{b}: no shipped weights {weights.name}"
        assert bundle_problems(b, weights) == []
    shipped = sorted(p.stem.replace("-", "_", 1) for p in WEIGHTS_DIR.glob("*.safetensors"))
    assert sorted(b.name for b in bundles) == shipped, (
        "run scripts/make_bundles.py after adding weights")
