"""The MONAI Label-style fusion infer task on a real NIfTI pair (no MONAI Label server needed)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Compose

from medfuse.errors import InputError
from medfuse.integrations.monailabel import HAVE_MONAILABEL, FusionInferTask
from medfuse.nets import load_weights


def _assert_same_fusion(actual: np.ndarray, reference: Path) -> None:
    """The same uint8 fusion as ``medfuse fuse``: the float paths differ (batching, kernels) by
    about 1e-6, which flips a value sitting on a rounding boundary by one grey level."""
    desired = np.asarray(nib.load(reference).dataobj)
    assert actual.shape == desired.shape and actual.dtype == desired.dtype
    diff = np.abs(actual.astype(np.int16) - desired.astype(np.int16))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= 1e-3 * diff.size, (
        f"{np.count_nonzero(diff)} pixels differ, by up to {diff.max()}")


@pytest.fixture(scope="module")
def task(weights_file: Path) -> FusionInferTask:
    return FusionInferTask(network="ecfusion", task="ct-mri", weights=weights_file, device="cpu")


def test_pre_inferer_post_transforms_on_real_data(task: FusionInferTask, nifti_pair,
                                                  reference_fused):
    a, b = nifti_pair
    assert task.is_valid() and task.info()["dimension"] == 3
    assert task.path.endswith("ecfusion-ct-mri.safetensors")
    data = Compose(task.pre_transforms())({"image_a": str(a), "image_b": str(b)})
    img = data["image"]
    assert tuple(img.shape) == (2, 83, 107, 6) and "image_a" not in data
    np.testing.assert_allclose(img.affine.numpy(), nib.load(b).affine, atol=1e-5)
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0
    # A interpolated onto B's grid: as nibabel's own resampling does it
    from nibabel.processing import resample_from_to

    t1_on_b = resample_from_to(nib.load(a), nib.load(b), order=1).get_fdata()
    assert np.corrcoef(img[0].numpy().ravel(), t1_on_b.ravel())[0, 1] > 0.99
    pred = task.inferer()(img[None], task.model)
    assert tuple(pred.shape) == (1, 1, 83, 107, 6) and pred.dtype == torch.float32
    out = Compose(task.post_transforms())({"pred": pred[0]})["pred"]
    assert out.dtype == torch.uint8
    _assert_same_fusion(out[0].numpy(), reference_fused)


def test_call_writes_the_fused_nifti(tmp_path: Path, task: FusionInferTask, nifti_pair,
                                     reference_fused):
    a, b = nifti_pair
    path, info = task({"image": str(b), "image_a": str(a),
                       "output": str(tmp_path / "fused.nii.gz")})
    assert (path == str(tmp_path / "fused.nii.gz")
            and [p.name for p in tmp_path.iterdir()] == ["fused.nii.gz"])
    img = nib.load(path)
    np.testing.assert_allclose(img.affine, nib.load(b).affine, atol=1e-5)
    _assert_same_fusion(np.asarray(img.dataobj), reference_fused)
    assert (info["shape"] == [83, 107, 6]
            and info["latencies"]["total"] >= info["latencies"]["infer"])


def test_same_result_from_a_built_model(weights_file: Path, nifti_pair, reference_fused):
    t = FusionInferTask(model=load_weights(weights_file), device="cpu")
    path, _ = t({"image_a": str(nifti_pair[0]), "image_b": str(nifti_pair[1])})
    try:
        _assert_same_fusion(np.asarray(nib.load(path).dataobj), reference_fused)
    finally:
        Path(path).unlink()


def test_bad_requests(tmp_path: Path, task: FusionInferTask, nifti_pair):
    with pytest.raises(InputError, match="no such image for 'image_a'"):
        task({"image_b": str(nifti_pair[1])})
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not a nifti")
    with pytest.raises(InputError, match="cannot load the pair"):
        task({"image_a": str(junk), "image_b": str(nifti_pair[1]),
              "output": str(tmp_path / "o.nii.gz")})
    assert [p.name for p in tmp_path.iterdir()] == ["junk.nii.gz"]


def test_base_class_matches_the_environment():
    import importlib.util

    assert HAVE_MONAILABEL == (importlib.util.find_spec("monailabel") is not None)
