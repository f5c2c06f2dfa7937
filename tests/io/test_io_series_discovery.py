"""Series discovery: unreadable files are reported, symbolic links stay inside the input, and
medfuse's own outputs and hidden folders are not read as input (issue 14, defects 6, 9, 10).

Every series here is a copy of the demo CT (24 slices) or MR (20 slices) in medfuse/data/demo,
damaged the way a failed copy or a full disk damages files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pydicom
import pytest

from medfuse.errors import GeometryError, InputError
from medfuse.io import find_series, load_volume
from tests.helpers import run_python

DEMO = Path(__file__).resolve().parents[2] / "medfuse" / "data" / "demo"


def _by_position(folder: Path) -> list[Path]:
    """The series' files ordered along the slice axis (z of ImagePositionPatient)."""
    files = sorted(folder.glob("*.dcm"))
    return sorted(files, key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True)
                                              .ImagePositionPatient[2]))


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.fixture()
def ct(tmp_path: Path) -> Path:
    """A copy of the demo CT series (24 slices), as tmp/ct."""
    return Path(shutil.copytree(DEMO / "ct", tmp_path / "ct"))


@pytest.mark.parametrize("end", [0, -1], ids=["first-slice", "last-slice"])
def test_header_truncated_end_slice_is_an_error_naming_it(ct: Path, end: int):
    victim = _by_position(ct)[end]
    _truncate(victim, 2000)  # cut inside the header, before the SeriesInstanceUID
    with pytest.raises(InputError) as err:
        load_volume(ct)  # old code: exit 0 and a volume one slice short
    msg = str(err.value)
    assert "\n" not in msg
    assert f"1 file(s) of the series could not be read: {victim.name}" in msg
    assert "--skip-unreadable" in msg


def test_skip_unreadable_reads_the_rest_and_lists_the_file(ct: Path):
    victim = _by_position(ct)[-1]
    _truncate(victim, 2000)
    vol = load_volume(ct, skip_unreadable=True)
    assert tuple(vol.shape[1:]) == (512, 512, 23)
    assert vol.meta["skipped_files"] == [
        {"file": victim.name, "reason": vol.meta["skipped_files"][0]["reason"]}
    ]
    assert "truncated" in vol.meta["skipped_files"][0]["reason"]


def test_unreadable_middle_slice_is_reported_before_uneven_spacing(ct: Path):
    victim = _by_position(ct)[11]
    _truncate(victim, 2000)
    with pytest.raises(InputError, match=f"could not be read: {victim.name}"):
        load_volume(ct)  # old code: GeometryError "uneven slice spacing"
    with pytest.raises(GeometryError, match="uneven slice spacing"):
        load_volume(ct, skip_unreadable=True)  # without it, the gap is real


def test_truncated_pixel_data_and_dangling_link_are_counted(ct: Path):
    files = _by_position(ct)
    _truncate(files[0], files[0].stat().st_size - 1000)  # header intact, pixel data cut
    _truncate(files[-1], 3000)
    (ct / "zz_gone.dcm").symlink_to(ct / "no_such_file.dcm")
    with pytest.raises(InputError) as err:
        load_volume(ct)
    msg = str(err.value)
    assert "3 file(s) of the series could not be read" in msg and "and 2 more" in msg
    vol = load_volume(ct, skip_unreadable=True)
    reasons = {d["file"]: d["reason"] for d in vol.meta["skipped_files"]}
    assert set(reasons) == {files[0].name, files[-1].name, "zz_gone.dcm"}
    assert "pixel data" in reasons[files[0].name]
    assert "symbolic link" in reasons["zz_gone.dcm"]  # dangling
    assert vol.shape[-1] == 22


def test_files_that_are_not_dicom_are_still_ignored_quietly(ct: Path):
    (ct / "README").write_text("exported by the scanner\n")
    (ct / ".DS_Store").write_bytes(os.urandom(4096))
    (ct / "notes.txt").write_bytes(b"\x00" * 300)
    rtstruct = pydicom.dcmread(DEMO / "ct" / "00000010.dcm")  # a DICOM object without an image
    for kw in ("Rows", "Columns", "PixelData", "BitsAllocated"):
        delattr(rtstruct, kw)
    rtstruct.SOPClassUID = rtstruct.file_meta.MediaStorageSOPClassUID = (
        "1.2.840.10008.5.1.4.1.1.481.3"  # RT Structure Set Storage
    )
    rtstruct.SeriesInstanceUID = "1.2.3.4.5"
    rtstruct.save_as(ct / "rtstruct.dcm")
    vol = load_volume(ct)
    assert vol.shape[-1] == 24 and vol.meta["skipped_files"] == []


def test_symlink_cycles_inside_the_series_are_visited_once(ct: Path):
    (ct / "self").symlink_to(".")
    (ct / "sub").mkdir()
    (ct / "sub" / "back").symlink_to("..")
    (ct / "again").symlink_to("../ct")
    vol = load_volume(ct)  # old code: "961 slices share a position"
    assert vol.shape[-1] == 24
    assert [s.n_files for s in find_series(ct)] == [24]


def test_folder_links_out_of_the_input_are_not_followed(tmp_path: Path, ct: Path):
    shutil.copytree(DEMO / "mr", tmp_path / "mr")
    (ct / "self").symlink_to(".")
    (ct / "up").symlink_to("..")  # the parent holds the MR series (and ct again)
    (ct / "mr_link").symlink_to(tmp_path / "mr")
    code = (
        "import sys; from medfuse.io import load_volume\n"
        "v = load_volume(sys.argv[1])\n"
        "print(v.meta['modality'], v.shape[-1], v.meta['skipped_files'])\n"
    )
    # old code never ends (it walks ct/up/ct/up/...); the bound only stops a hung run
    proc = run_python("-c", code, str(ct), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["CT", "24", "[]"]


def _stand_in_output(folder: Path, how: str) -> None:
    """An MR series in ``folder`` marked as medfuse's output the way ``how`` says."""
    shutil.copytree(DEMO / "mr", folder / "dicom")
    if how == "run.json":
        (folder / "run.json").write_text(json.dumps({"command": "medfuse fuse"}))
    elif how == "marker":
        (folder / ".medfuse-output").write_text("")


@pytest.mark.parametrize("how,name", [("run.json", "fused"), ("marker", "fused"),
                                      ("hidden", ".out.tmp-1234")])
def test_medfuse_outputs_and_hidden_folders_are_not_scanned(ct: Path, how: str, name: str):
    _stand_in_output(ct / name, how)
    vol = load_volume(ct)  # old code: "2 series found"
    assert vol.meta["modality"] == "CT" and vol.shape[-1] == 24
    assert [s.modality for s in find_series(ct)] == ["CT"]


def test_a_folder_with_a_foreign_run_json_is_still_scanned(ct: Path):
    (ct / "other").mkdir()
    shutil.copytree(DEMO / "mr", ct / "other" / "mr")
    (ct / "other" / "run.json").write_text(json.dumps({"command": "another tool"}))
    assert sorted(s.modality for s in find_series(ct)) == ["CT", "MR"]


def test_a_real_medfuse_output_inside_the_input_is_skipped(tmp_path: Path, ct: Path):
    """Another study's output inside the CT folder (a batch row) does not break this input."""
    from medfuse.fusion.pipeline import FuseOptions, fuse_volumes

    opts = FuseOptions(method="average", register="none", formats=("dicom",), progress=False)
    fuse_volumes(ct, DEMO / "mr", tmp_path / "out", opts)
    shutil.move(tmp_path / "out", ct / "fused")
    assert len(list((ct / "fused" / "dicom").glob("*.dcm"))) > 0
    vol = load_volume(ct)  # old code: "2 series found" (the CT and the fused SC series)
    assert vol.meta["modality"] == "CT" and vol.shape[-1] == 24
