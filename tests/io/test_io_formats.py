"""NIfTI, MetaImage, NRRD and single-file/multi-frame DICOM readers, checked against independent
readers (SimpleITK, nibabel, pydicom) on real data."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medfuse.errors import InputError
from medfuse.io import load_volume, orientation_code, voxel_spacing

LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


def _sitk_world_ras(img: sitk.Image, ijk) -> np.ndarray:
    return LPS_TO_RAS * np.array(
        img.TransformContinuousIndexToPhysicalPoint([float(v) for v in ijk])
    )


def _world(affine, ijk) -> np.ndarray:
    a = np.asarray(affine, dtype=np.float64)
    return np.asarray(ijk, dtype=np.float64) @ a[:3, :3].T + a[:3, 3]


def test_nifti_matches_nibabel(stroke_dir: Path):
    path = stroke_dir / "T1.nii.gz"
    vol = load_volume(path)
    img = nib.load(str(path))
    assert tuple(vol.shape) == (1, *img.shape)
    np.testing.assert_allclose(vol.affine.numpy(), img.affine, atol=1e-6)
    np.testing.assert_array_equal(vol[0].numpy(), img.get_fdata(dtype=np.float32))
    assert vol.meta["source_format"] == "nifti"
    assert vol.meta["modality"] == ""
    assert vol.meta["dicom_datasets"] == []
    assert vol.meta["frame_of_reference_uid"] is None


def test_metaimage_matches_simpleitk_geometry(shared_data: Path):
    path = shared_data / "volumes" / "vhp_male_head" / "vm_head_mri.mha"
    vol = load_volume(path)
    img = sitk.ReadImage(str(path))
    assert tuple(vol.shape) == (1, 256, 256, 33)
    arr = sitk.GetArrayFromImage(img)  # (K, J, I)
    np.testing.assert_array_equal(vol[0].numpy(), arr.transpose(2, 1, 0).astype(np.float32))
    for ijk in [(0, 0, 0), (255, 0, 0), (0, 255, 32), (17.5, 100.0, 3.0)]:
        np.testing.assert_allclose(
            _world(vol.affine.numpy(), ijk), _sitk_world_ras(img, ijk), atol=1e-4
        )
    np.testing.assert_allclose(
        voxel_spacing(vol.affine.numpy()), (1.01562, 1.01562, 5.0), atol=1e-5
    )
    assert vol.meta["source_format"] == "metaimage"


def test_nrrd_written_from_real_data(shared_data: Path, tmp_path: Path):
    """A small NRRD (oblique direction, real MR voxels) written by SimpleITK reads back exactly."""
    src = sitk.ReadImage(str(shared_data / "volumes" / "vhp_male_head" / "vm_head_mri.mha"))
    crop = src[60:124, 40:120, 5:15]
    rot = sitk.VersorTransform((0.0, 0.0, 1.0), np.deg2rad(20.0)).GetMatrix()
    crop.SetDirection(rot)
    crop.SetOrigin((12.5, -40.0, 7.25))
    path = tmp_path / "mr_crop.nrrd"
    sitk.WriteImage(crop, str(path))
    vol = load_volume(path)
    assert vol.meta["source_format"] == "nrrd"
    assert tuple(vol.shape) == (1, 64, 80, 10)
    np.testing.assert_array_equal(
        vol[0].numpy(), sitk.GetArrayFromImage(crop).transpose(2, 1, 0).astype(np.float32)
    )
    for ijk in [(0, 0, 0), (63, 79, 9), (10, 3, 7)]:
        np.testing.assert_allclose(
            _world(vol.affine.numpy(), ijk), _sitk_world_ras(crop, ijk), atol=1e-4
        )


@pytest.mark.parametrize("series", ["MR_T2", "CT_every4th"])  # head-first and feet-first
def test_dicom_series_to_nifti_round_trip_keeps_world_coordinates(
    phantom_dir: Path, tmp_path: Path, series: str
):
    """SimpleITK's own DICOM reader writes a NIfTI; every voxel keeps its world position."""
    folder = phantom_dir / series
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    img = reader.Execute()
    out = tmp_path / "mr.nii.gz"
    sitk.WriteImage(img, str(out))
    dcm = load_volume(folder)
    nii = load_volume(out)
    assert dcm.shape == nii.shape
    np.testing.assert_allclose(dcm.affine.numpy(), nii.affine.numpy(), atol=1e-4)
    np.testing.assert_array_equal(dcm.numpy(), nii.numpy())
    # every voxel of a dense sub-grid (and all corners): the same world coordinate both ways
    grid = np.stack(np.meshgrid(*[np.r_[0:n:7, n - 1] for n in dcm.shape[1:]], indexing="ij"), -1)
    ijk = grid.reshape(-1, 3)
    np.testing.assert_allclose(
        _world(dcm.affine.numpy(), ijk), _world(nii.affine.numpy(), ijk), atol=1e-3
    )


def test_single_file_ct_is_one_slice_in_hu(shared_data: Path):
    path = shared_data / "odd_dicom" / "pydicom_pkg" / "CT_small.dcm"
    vol = load_volume(path)
    ds = pydicom.dcmread(path)
    assert tuple(vol.shape) == (1, 128, 128, 1)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(vol[0, :, :, 0].numpy(), hu.T, atol=1e-3)
    np.testing.assert_allclose(
        vol.affine.numpy()[:3, 3], LPS_TO_RAS * np.array(ds.ImagePositionPatient, float), atol=1e-4
    )
    assert vol.meta["source_format"] == "dicom-file"
    assert len(vol.meta["dicom_datasets"]) == 1
    assert "PixelData" not in vol.meta["dicom_datasets"][0]
    assert vol.meta["dicom_datasets"][0].SOPInstanceUID == ds.SOPInstanceUID


def test_oblique_and_coronal_mr_orientation(shared_data: Path):
    wg04 = shared_data / "odd_dicom" / "wg04"
    for name in ("MR3_UNC.dcm", "MR4_UNC.dcm", "MR2_UNC.dcm"):
        ds = pydicom.dcmread(wg04 / name, stop_before_pixels=True)
        vol = load_volume(wg04 / name)
        iop = np.array(ds.ImageOrientationPatient, float)
        aff = vol.affine.numpy()
        # i follows the row direction, j the column direction (in RAS)
        np.testing.assert_allclose(
            aff[:3, 0] / np.linalg.norm(aff[:3, 0]), LPS_TO_RAS * iop[:3], atol=1e-5
        )
        np.testing.assert_allclose(
            aff[:3, 1] / np.linalg.norm(aff[:3, 1]), LPS_TO_RAS * iop[3:], atol=1e-5
        )
        assert len(orientation_code(aff)) == 3


def test_enhanced_multiframe_ct_uses_per_frame_positions(shared_data: Path):
    path = shared_data / "odd_dicom" / "pydicom_data_pkg" / "eCT_Supplemental.dcm"
    ds = pydicom.dcmread(path)
    vol = load_volume(path)
    assert tuple(vol.shape) == (1, 512, 512, 2)
    pos = [
        np.array(f.PlanePositionSequence[0].ImagePositionPatient, float)
        for f in ds.PerFrameFunctionalGroupsSequence
    ]
    iop = np.array(
        ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient,
        float,
    )
    normal = np.cross(iop[:3], iop[3:])  # (0, 0, -1) here: k grows towards the feet
    pos.sort(key=lambda p: float(p @ normal))
    aff = vol.affine.numpy()
    np.testing.assert_allclose(_world(aff, [0, 0, 0]), LPS_TO_RAS * pos[0], atol=1e-4)
    np.testing.assert_allclose(_world(aff, [0, 0, 1]), LPS_TO_RAS * pos[1], atol=1e-4)
    assert voxel_spacing(aff)[2] == pytest.approx(10.0)


def test_rt_dose_grid_frame_offsets_and_scaling(shared_data: Path):
    path = shared_data / "odd_dicom" / "pydicom_pkg" / "rtdose.dcm"
    ds = pydicom.dcmread(path)
    vol = load_volume(path)
    assert tuple(vol.shape) == (1, 10, 10, 15)
    offsets = np.array(ds.GridFrameOffsetVector, float)
    step = abs(offsets[1] - offsets[0])
    assert voxel_spacing(vol.affine.numpy())[2] == pytest.approx(step)
    dose = ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)
    order = np.argsort(
        offsets
        * np.sign(
            np.cross(
                np.array(ds.ImageOrientationPatient[:3], float),
                np.array(ds.ImageOrientationPatient[3:], float),
            )[2]
        )
    )
    np.testing.assert_allclose(vol[0].numpy(), dose[order].transpose(2, 1, 0), rtol=1e-5)


def test_unsupported_file_is_an_input_error(tmp_path: Path):
    bad = tmp_path / "image.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match="image.png"):
        load_volume(bad)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"garbage")
    with pytest.raises(InputError, match="unreadable NIfTI"):
        load_volume(broken)


def test_nifti_2d_and_4d_from_real_data(stroke_dir: Path, tmp_path: Path):
    img = nib.load(str(stroke_dir / "T2.nii.gz"))
    data = np.asarray(img.dataobj)
    flat = tmp_path / "slice.nii"
    nib.save(nib.Nifti1Image(data[:, :, 70], img.affine), str(flat))
    vol = load_volume(flat)
    assert tuple(vol.shape) == (1, data.shape[0], data.shape[1], 1)
    np.testing.assert_array_equal(vol[0, :, :, 0].numpy(), data[:, :, 70].astype(np.float32))
    series = tmp_path / "two.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([data, data], -1), img.affine), str(series))
    with pytest.raises(InputError, match="time series"):
        load_volume(series)
