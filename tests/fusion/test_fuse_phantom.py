"""``medfuse fuse`` end to end on the full phantom CT/MR pair (../shared, not co-registered).

One CLI run (session fixture ``phantom_run``) is inspected by every test here: registration,
DICOM Secondary Capture validity and identity, geometry, and SC pixels against the NIfTI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from medfuse.io import load_volume, voxel_to_world, world_to_voxel
from medfuse.registration import read_transform
from medfuse.transforms import ExtractSlices, ResampleToReference

pytestmark = pytest.mark.slow


def test_outputs_and_run_record(phantom_run: Path, phantom_dir: Path):
    names = sorted(p.name for p in phantom_run.iterdir())
    assert names == [".medfuse-output", "dicom", "fused.nii.gz", "preview.png", "review.png",
                     "run.json", "transform.tfm"]
    run = json.loads((phantom_run / "run.json").read_text())
    assert run["reference_grid"] == "b" and run["method"]["method"] == "laplacian"
    a, b = run["inputs"]
    ct_ds = pydicom.dcmread(
        next((phantom_dir / "CT_every4th").glob("*.dcm")), stop_before_pixels=True
    )
    assert a["series_instance_uid"] == ct_ds.SeriesInstanceUID and a["modality"] == "CT"
    assert b["modality"] == "MR" and b["shape"] == [1, 512, 512, 94]
    assert set(run["timings_s"]) >= {"load", "register", "prepare", "fuse", "write", "total"}
    assert run["windows"]["a"]["preset"] == "ct-brain" and run["windows"]["b"]["preset"] == "mr"
    assert run["versions"]["medfuse"] and run["versions"]["SimpleITK"]
    assert run["n_slices"] == 94 and run["slice_size"] == [512, 512]
    # no patient identity in the record
    text = (phantom_run / "run.json").read_text()
    assert str(ct_ds.PatientName) not in text


def test_registration_brings_the_pair_together(phantom_run: Path, phantom_ct, phantom_mr):
    reg = json.loads((phantom_run / "run.json").read_text())["registration"]
    assert reg["kind"] == "rigid" and reg["why"] == "different frames of reference"
    mi = reg["mutual_information_nats"]
    print(f"mutual information before {mi['before']:.4f} nats, after {mi['after']:.4f} nats")
    assert mi["after"] > 1.5 * mi["before"]
    assert reg["metric_final"] < reg["metric_initial"]
    # the CT is feet-first, the MR head-first: a half turn about the anterior-posterior axis
    m = read_transform(phantom_run / "transform.tfm").matrix
    assert np.allclose(m, np.asarray(reg["matrix_ras"]), atol=1e-5)
    assert m[0, 0] < -0.99 and m[1, 1] > 0.99 and m[2, 2] < -0.99

    # the phantom's tissue: Dice of the CT and MR masks on the MR grid rises
    mr = phantom_mr[0].numpy()
    mr_mask = ndimage.binary_fill_holes(ndimage.binary_closing(mr > 200, iterations=3))
    ct_mask = (phantom_ct.clamp(-1000, 3000) > -300).float()

    def dice(matrix):
        r = ResampleToReference(mode="nearest")(ct_mask, phantom_mr, pre_affine=matrix)[0].numpy()
        r = r > 0.5
        return 2 * (r & mr_mask).sum() / (r.sum() + mr_mask.sum())

    d0, d1 = dice(np.eye(4)), dice(m)
    print(f"phantom mask Dice before {d0:.3f}, after {d1:.3f}")
    assert d1 > 0.9 and d1 > d0 + 0.1

    # the CT's gold fiducials (> 2500 HU) land inside the MR's phantom (eroded by 2.5 mm)
    ijk = np.argwhere(phantom_ct[0].numpy() > 2500)
    assert len(ijk) > 50
    w = voxel_to_world(phantom_ct.affine.numpy(), ijk)
    w = w @ m[:3, :3].T + m[:3, 3]
    v = np.rint(world_to_voxel(phantom_mr.affine.numpy(), w)).astype(int)
    inner = ndimage.binary_erosion(mr_mask, iterations=5)
    ok = np.all((v >= 0) & (v < mr.shape), axis=1)
    hits = np.zeros(len(v), bool)
    hits[ok] = inner[tuple(v[ok].T)]
    print(f"fiducial voxels inside the MR phantom: {hits.mean():.0%} of {len(v)}")
    assert hits.mean() > 0.95


def test_sc_series_identity_and_geometry(phantom_run: Path, phantom_dir: Path, phantom_mr):
    files = sorted((phantom_run / "dicom").glob("*.dcm"))
    assert len(files) == 94
    mr_by_uid = {h.SOPInstanceUID: h for h in phantom_mr.meta["dicom_datasets"]}
    ct_uids = {
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID
        for p in (phantom_dir / "CT_every4th").glob("*.dcm")
    }
    mr0 = phantom_mr.meta["dicom_datasets"][0]
    aff = phantom_mr.affine.numpy()
    series = set()
    for k, p in enumerate(files):
        ds = pydicom.dcmread(p)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        assert ds.PatientID == mr0.PatientID and ds.StudyInstanceUID == mr0.StudyInstanceUID
        assert ds.SeriesInstanceUID != mr0.SeriesInstanceUID
        series.add(ds.SeriesInstanceUID)
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert "FrameOfReferenceUID" not in ds and "ImagePositionPatient" not in ds
        assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsAllocated == 8
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.5, 0.5])
        assert list(ds.PatientOrientation) == ["L", "P"]
        assert ds.SeriesDescription == "medfuse laplacian: CT + T2"
        assert int(ds.InstanceNumber) == k + 1
        # the MR instance this slice was cut from sits exactly at the slice's position
        mr_refs = [r for r in ds.SourceImageSequence if r.ReferencedSOPInstanceUID in mr_by_uid]
        ct_refs = [r for r in ds.SourceImageSequence if r.ReferencedSOPInstanceUID in ct_uids]
        assert len(mr_refs) == 1 and len(mr_refs) + len(ct_refs) == len(ds.SourceImageSequence)
        src = mr_by_uid[mr_refs[0].ReferencedSOPInstanceUID]
        ipp_ras = np.array([-1, -1, 1]) * np.asarray([float(v) for v in src.ImagePositionPatient])
        assert np.allclose(ipp_ras, aff[:3, :3] @ [0, 0, k] + aff[:3, 3], atol=1e-3)
        if 10 <= k < 84:  # the CT covers the middle of the MR after registration
            assert ct_refs
        assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == mr0.SeriesInstanceUID
        other = ds.StudiesContainingOtherReferencedInstancesSequence[0]
        assert other.ReferencedSeriesSequence[0].SeriesInstanceUID != mr0.SeriesInstanceUID
        assert len(other.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == 91
    assert len(series) == 1


def test_sc_files_pass_dciodvfy(phantom_run: Path):
    assert shutil.which("dciodvfy"), (
        "dciodvfy missing: bash scripts/setup.sh --test installs dicom3tools"
    )
    files = sorted((phantom_run / "dicom").glob("*.dcm"))
    for p in files[:: max(1, len(files) // 12)] + [files[-1]]:
        res = subprocess.run(["dciodvfy", str(p)], capture_output=True, text=True)
        errors = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]
        assert not errors, f"{p.name}: {errors}"


def test_sc_pixels_match_the_nifti(phantom_run: Path, phantom_mr):
    img = nib.load(str(phantom_run / "fused.nii.gz"))
    assert img.get_data_dtype() == np.uint8
    assert np.allclose(img.affine, phantom_mr.affine.numpy(), atol=1e-4)
    vol = load_volume(phantom_run / "fused.nii.gz")
    assert tuple(vol.shape) == (1, 512, 512, 94)
    slices = ExtractSlices("axial")(vol)[:, 0].numpy().astype(np.uint8)
    files = sorted((phantom_run / "dicom").glob("*.dcm"))
    for k, p in enumerate(files):
        assert np.array_equal(pydicom.dcmread(p).pixel_array, slices[k]), p.name
    assert slices.max() > 200 and (slices > 0).mean() > 0.2  # real content, not a blank
