"""DICOM series reading on the real MRI-DIR phantom: geometry from ImagePositionPatient."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medfuse.errors import GeometryError, InputError
from medfuse.io import find_series, load_volume, orientation_code, voxel_spacing

LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


def _headers(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]


def _world(affine, ijk) -> np.ndarray:
    a = np.asarray(affine, dtype=np.float64)
    return a[:3, :3] @ np.asarray(ijk, dtype=np.float64) + a[:3, 3]


def test_ct_shape_spacing_and_modality(ct_volume):
    assert tuple(ct_volume.shape) == (1, 512, 512, 91)
    assert ct_volume.dtype.is_floating_point
    aff = ct_volume.affine.numpy()
    assert aff.dtype == np.float64
    # slice step from positions: 2.5 mm although SliceThickness says 0.625
    np.testing.assert_allclose(voxel_spacing(aff), (0.390625, 0.390625, 2.5), atol=1e-6)
    assert ct_volume.meta["modality"] == "CT"
    assert ct_volume.meta["source_format"] == "dicom-series"
    assert orientation_code(aff) == "LPS"


def test_ct_first_and_last_slices_sit_at_their_files_positions(ct_volume, ct_dir):
    hdrs = _headers(ct_dir)
    assert float(hdrs[0].SliceThickness) == pytest.approx(0.625)  # the misleading header
    z_sorted = sorted(hdrs, key=lambda d: float(d.ImagePositionPatient[2]))
    first, last = z_sorted[0], z_sorted[-1]
    aff = ct_volume.affine.numpy()
    k_last = ct_volume.shape[-1] - 1
    np.testing.assert_allclose(
        _world(aff, [0, 0, 0]), LPS_TO_RAS * np.array(first.ImagePositionPatient, float), atol=1e-4
    )
    np.testing.assert_allclose(
        _world(aff, [0, 0, k_last]),
        LPS_TO_RAS * np.array(last.ImagePositionPatient, float),
        atol=1e-4,
    )
    # pixel (column c, row r) of a slice: IPP + c * dc * row_dir + r * dr * col_dir (PS3.3 C.7.6.2)
    iop = np.array(first.ImageOrientationPatient, float)
    dr, dc = (float(v) for v in first.PixelSpacing)
    c, r = 511, 100
    expected = np.array(first.ImagePositionPatient, float) + c * dc * iop[:3] + r * dr * iop[3:]
    np.testing.assert_allclose(_world(aff, [c, r, 0]), LPS_TO_RAS * expected, atol=1e-4)


def test_ct_slice_order_follows_position_not_instance_number(ct_volume):
    hdrs = ct_volume.meta["dicom_datasets"]
    assert len(hdrs) == 91
    z = [float(h.ImagePositionPatient[2]) for h in hdrs]
    assert np.all(np.diff(z) > 0)  # k grows with z: sorted by position
    inst = [int(h.InstanceNumber) for h in hdrs]
    # InstanceNumbers have gaps (every 4th) and run against z here (feet-first): sorting by them
    # would reverse the volume
    assert set(np.abs(np.diff(inst))) == {4}
    assert inst[0] > inst[-1]
    assert all("PixelData" not in h for h in hdrs)
    # each header's position is exactly where its slice k lies
    aff = ct_volume.affine.numpy()
    for k in (0, 45, 90):
        np.testing.assert_allclose(
            _world(aff, [0, 0, k]),
            LPS_TO_RAS * np.array(hdrs[k].ImagePositionPatient, float),
            atol=1e-4,
        )


def test_ct_intensities_are_hounsfield(ct_volume):
    hdr = ct_volume.meta["dicom_datasets"][30]
    ds = pydicom.dcmread(hdr.filename)
    raw = ds.pixel_array.astype(np.float64)
    hu = raw * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert float(ds.RescaleIntercept) == -1024.0
    # voxel (i, j) = (column, row): the slice is the transposed pixel array
    np.testing.assert_allclose(ct_volume[0, :, :, 30].numpy(), hu.T, atol=1e-3)
    assert float(ct_volume.min()) < -900  # air / padding in HU, not raw stored values


def test_mr_geometry_and_meta(mr_volume, mr_dir):
    assert tuple(mr_volume.shape) == (1, 512, 512, 94)
    aff = mr_volume.affine.numpy()
    np.testing.assert_allclose(voxel_spacing(aff), (0.5, 0.5, 2.5), atol=1e-6)
    hdrs = _headers(mr_dir)
    lowest = min(hdrs, key=lambda d: float(d.ImagePositionPatient[2]))
    np.testing.assert_allclose(
        aff[:3, 3], LPS_TO_RAS * np.array(lowest.ImagePositionPatient, float), atol=1e-4
    )
    meta = mr_volume.meta
    assert meta["modality"] == "MR"
    assert meta["series_description"] == str(lowest.SeriesDescription)
    assert meta["series_instance_uid"] == str(lowest.SeriesInstanceUID)
    assert meta["study_instance_uid"] == str(lowest.StudyInstanceUID)
    assert meta["frame_of_reference_uid"] == str(lowest.FrameOfReferenceUID)
    assert meta["source_path"] == str(mr_dir)
    assert meta["series_count"] == 1


def test_ct_and_mr_are_distinct_frames_of_reference(ct_volume, mr_volume):
    assert ct_volume.meta["frame_of_reference_uid"] != mr_volume.meta["frame_of_reference_uid"]
    assert ct_volume.meta["study_instance_uid"] != mr_volume.meta["study_instance_uid"]


@pytest.fixture()
def two_series_dir(tmp_path: Path, ct_dir: Path, mr_dir: Path) -> Path:
    folder = tmp_path / "both"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    for p in ct_dir.glob("*.dcm"):
        os.symlink(p, folder / "a" / p.name)
    for p in mr_dir.glob("*.dcm"):
        os.symlink(p, folder / "b" / p.name)
    (folder / "notes.txt").write_text("not dicom")
    return folder


def test_find_series_lists_both_phantom_series(two_series_dir: Path, ct_volume, mr_volume):
    series = find_series(two_series_dir)
    assert len(series) == 2
    by_uid = {s.series_instance_uid: s for s in series}
    ct = by_uid[ct_volume.meta["series_instance_uid"]]
    mr = by_uid[mr_volume.meta["series_instance_uid"]]
    assert (ct.modality, ct.n_files, ct.n_frames) == ("CT", 91, 91)
    assert (mr.modality, mr.n_files, mr.n_frames) == ("MR", 94, 94)
    assert ct.series_description == ct_volume.meta["series_description"]


def test_several_series_need_a_choice(two_series_dir: Path, ct_volume, mr_volume):
    with pytest.raises(InputError) as err:
        load_volume(two_series_dir)
    msg = str(err.value)
    assert "2 series found" in msg and "\n" not in msg
    assert (
        ct_volume.meta["series_instance_uid"] in msg
        and mr_volume.meta["series_instance_uid"] in msg
    )
    assert "91 slice(s)" in msg and "94 slice(s)" in msg
    vol = load_volume(two_series_dir, series_uid=mr_volume.meta["series_instance_uid"])
    assert tuple(vol.shape) == (1, 512, 512, 94)
    np.testing.assert_allclose(vol.affine.numpy(), mr_volume.affine.numpy())
    assert vol.meta["series_count"] == 2
    with pytest.raises(InputError, match="not found"):
        load_volume(two_series_dir, series_uid="1.2.3.4")


def test_missing_slice_is_a_geometry_error(tmp_path: Path, ct_dir: Path):
    hdrs = sorted(_headers(ct_dir), key=lambda d: float(d.ImagePositionPatient[2]))
    drop = Path(hdrs[40].filename).name
    for p in ct_dir.glob("*.dcm"):
        if p.name != drop:
            os.symlink(p, tmp_path / p.name)
    with pytest.raises(GeometryError, match="uneven slice spacing"):
        load_volume(tmp_path)


def test_duplicate_position_is_a_geometry_error(tmp_path: Path, mr_dir: Path):
    files = sorted(mr_dir.glob("*.dcm"))[:5]
    for p in files:
        os.symlink(p, tmp_path / p.name)
    shutil.copyfile(files[2], tmp_path / "copy.dcm")  # a real copy: a link is read only once
    with pytest.raises(GeometryError, match="share a position"):
        load_volume(tmp_path)


def test_empty_and_missing_inputs(tmp_path: Path):
    with pytest.raises(InputError, match="no DICOM image series"):
        load_volume(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        load_volume(tmp_path / "absent")
    assert find_series(tmp_path) == []


def test_folder_of_mixed_files_lists_its_series(shared_data: Path):
    wg04 = shared_data / "odd_dicom" / "wg04"
    series = find_series(wg04)
    assert sum(s.n_files for s in series) == len(list(wg04.glob("*.dcm")))
    with pytest.raises(InputError, match=f"{len(series)} series found"):
        load_volume(wg04)
    ct1 = pydicom.dcmread(wg04 / "CT1_UNC.dcm", stop_before_pixels=True)
    vol = load_volume(wg04, series_uid=str(ct1.SeriesInstanceUID))
    assert tuple(vol.shape) == (1, 512, 512, 1)


def test_folder_holding_one_enhanced_multiframe_file(tmp_path: Path, shared_data: Path):
    src = shared_data / "odd_dicom" / "pydicom_data_pkg" / "eCT_Supplemental.dcm"
    os.symlink(src, tmp_path / "IM0001")  # no extension: found by content
    vol = load_volume(tmp_path)
    assert tuple(vol.shape) == (1, 512, 512, 2)
    assert vol.meta["source_format"] == "dicom-series"
    np.testing.assert_allclose(vol.affine.numpy(), load_volume(src).affine.numpy())
