"""medfuse pull against a real Orthanc: C-FIND + C-GET and QIDO-RS + WADO-RS, then info/fuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medfuse.data import demo_pair
from medfuse.pacs.pull import series_folder_name
from tests.pacs.checks import assert_no_identity, local_hashes
from tests.pacs.orthanc import Netns, Orthanc


def _uids(folder: Path) -> tuple[str, str]:
    """(StudyInstanceUID, SeriesInstanceUID) of the first file of a series folder."""
    import pydicom

    ds = pydicom.dcmread(next(iter(sorted(folder.glob("*.dcm")))), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)


@pytest.fixture
def demo_on_pacs(orthanc: Orthanc) -> dict[str, Path]:
    """The bundled demo CT (JPEG-LS, 24 files) and MR (20 files) stored on Orthanc by medfuse
    send."""
    ct, mr = demo_pair()
    r = orthanc.cli("send", str(Path(ct).parent), "--pacs", orthanc.address,
                    "--called-aet", "ORTHANC", "-q")
    assert r.returncode == 0, r.stderr
    return {"CT": Path(ct), "MR": Path(mr)}


def _info(orthanc: Orthanc, *folders: Path) -> list[dict]:
    """``medfuse info --json`` of series folders (one call)."""
    r = orthanc.cli("info", *map(str, folders), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.slow
def test_pull_cget_study_then_fuse(orthanc: Orthanc, demo_on_pacs: dict[str, Path], tmp_path):
    out = tmp_path / "pulled"
    folders = {}
    for modality, local in demo_on_pacs.items():
        study, series = _uids(local)
        extra = ("--series", series) if modality == "MR" else ()
        r = orthanc.cli("pull", "--pacs", orthanc.address, "--called-aet", "ORTHANC",
                        "--study", study, *extra, "-o", str(out))
        assert r.returncode == 0, r.stderr
        assert_no_identity(local, r.stdout, r.stderr)
        folder = out / series_folder_name(modality, series)
        assert f"1/1 series pulled from {orthanc.address}" in r.stdout
        # bytes of every pixel element and the transfer syntax (JPEG-LS for the CT) kept
        assert local_hashes(folder) == local_hashes(local)
        folders[modality] = folder
    for info, (modality, local) in zip(_info(orthanc, *folders.values()), demo_on_pacs.items()):
        assert info["modality"] == modality and info["series_instance_uid"] == _uids(local)[1]
        assert info["n_instances"] == len(list(local.glob("*.dcm")))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in folders.values())

    # a rerun keeps the complete folders and fetches nothing again
    study, _ = _uids(demo_on_pacs["CT"])
    before = sorted(p.stat().st_mtime_ns for p in folders["CT"].iterdir())
    r = orthanc.cli("pull", "--pacs", orthanc.address, "--called-aet", "ORTHANC", "--study", study,
                    "-o", str(out), "--report", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    (row,) = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert row["status"] == "skipped" and row["received"] == 24
    assert sorted(p.stat().st_mtime_ns for p in folders["CT"].iterdir()) == before

    # the pulled folders are ordinary fuse inputs
    r = orthanc.cli("fuse", str(folders["CT"]), str(folders["MR"]), "-o", str(tmp_path / "fused"),
                    "--method", "average", "--format", "dicom", "-q")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "fused" / "dicom").glob("*.dcm"))) == 20


def test_pull_cmove_to_our_storage_scp(netns: Netns, tmp_path):
    """C-MOVE for a PACS without C-GET: Orthanc knows AE MEDFUSE at our storage SCP's port."""
    dicom_port, http_port, move_port = netns.free_ports(3)
    server = Orthanc(netns, tmp_path / "orthanc", ports=(dicom_port, http_port), extra={
        "DicomAlwaysAllowMove": True,
        "DicomModalities": {"medfuse": ["MEDFUSE", "127.0.0.1", move_port]},
    })
    server.start()
    try:
        ct = Path(demo_pair()[0])
        r = server.cli("send", str(ct), "--pacs", server.address, "--called-aet", "ORTHANC", "-q")
        assert r.returncode == 0, r.stderr
        study, series = _uids(ct)
        pull = ("pull", "--pacs", server.address, "--called-aet", "ORTHANC", "--study", study,
                "--move-port", str(move_port), "-q")
        r = server.cli(*pull, "-o", str(tmp_path / "in"))
        assert r.returncode == 0, r.stderr
        assert local_hashes(tmp_path / "in" / series_folder_name("CT", series)) == local_hashes(ct)

        r = server.cli(*pull, "--calling-aet", "STRANGER", "-o", str(tmp_path / "in2"),
                       "--retries", "0")
        assert r.returncode == 7
        line = r.stderr.strip()
        assert "\n" not in line and "C-MOVE of series" in line
        assert line.endswith(f"(does the PACS know AE STRANGER at this host, port {move_port}?)")
        assert not any((tmp_path / "in2").iterdir())  # no half-written series folder
    finally:
        server.stop()


def test_send_stow_then_pull_wado(orthanc: Orthanc, tmp_path):
    """STOW-RS the demo pair, WADO-RS each study back: same bytes, syntax (JPEG-LS CT) and UIDs."""
    ct, mr = (Path(p) for p in demo_pair())
    r = orthanc.cli("send", str(ct.parent), "--dicomweb", orthanc.dicomweb, "-q")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "pulled"
    folders = []
    for modality, local in (("CT", ct), ("MR", mr)):
        study, series = _uids(local)
        r = orthanc.cli("pull", "--dicomweb", orthanc.dicomweb, "--study", study, "-o", str(out))
        assert r.returncode == 0, r.stderr
        assert_no_identity(local, r.stdout, r.stderr)
        folders.append(out / series_folder_name(modality, series))
        assert local_hashes(folders[-1]) == local_hashes(local)
    assert sorted(out.iterdir()) == sorted(folders)
    ct_info, mr_info = _info(orthanc, *folders)
    assert (ct_info["modality"], ct_info["n_instances"]) == ("CT", 24)
    assert (mr_info["modality"], mr_info["n_instances"]) == ("MR", 20)


def test_pull_unknown_study_is_one_clear_error(orthanc: Orthanc, tmp_path):
    for peer in (("--pacs", orthanc.address, "--called-aet", "ORTHANC"),
                 ("--dicomweb", orthanc.dicomweb)):
        r = orthanc.cli("pull", *peer, "--study", "1.2.3.4", "-o", str(tmp_path / "in"), "-q")
        assert r.returncode == 3
        assert r.stderr.strip() == "medfuse: error: study 1.2.3.4: not found on " + (
            f"{orthanc.address} (AE ORTHANC)" if peer[0] == "--pacs" else orthanc.dicomweb)
    assert not any((tmp_path / "in").iterdir())


def test_pull_while_server_down(orthanc: Orthanc, tmp_path):
    orthanc.stop()
    r = orthanc.cli("pull", "--pacs", orthanc.address, "--called-aet", "ORTHANC", "--study",
                    "1.2.3.4", "-o", str(tmp_path / "in"), "--retries", "1", "--backoff", "0", "-q")
    assert r.returncode == 7
    assert r.stderr.strip() == (
        f"medfuse: error: cannot connect to PACS {orthanc.address}: connection refused")
