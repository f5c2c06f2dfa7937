"""medfuse send / fuse --send against a real Orthanc (C-ECHO + C-STORE, STOW-RS)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from tests.pacs.checks import assert_no_identity, local_hashes, stored_hashes, tree_state
from tests.pacs.orthanc import Netns, Orthanc


def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    return lines[0]


def test_send_dimse_every_instance_arrives_intact(orthanc: Orthanc, fused_demo: Path, tmp_path):
    report_path = tmp_path / "sent.json"
    r = orthanc.cli("send", str(fused_demo), "--pacs", orthanc.address, "--called-aet", "ORTHANC",
                    "--report", str(report_path))
    assert r.returncode == 0, r.stderr
    assert_no_identity(fused_demo, r.stdout, r.stderr, report_path.read_text())
    local = local_hashes(fused_demo / "dicom")
    assert len(local) == 20
    assert stored_hashes(orthanc, tmp_path / "rest") == local  # same UIDs, pixels, syntax
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["protocol"] == "dimse" and report["n_total"] == 20
    assert {row["sop_instance_uid"] for row in report["rows"]} == set(local)
    assert all(row["status"] == "sent" and row["code"] == 0 and row["attempts"] == 1
               for row in report["rows"])
    table = r.stdout.splitlines()
    assert table[0].split()[:4] == ["#", "file", "SOPInstanceUID", "status"]
    assert len(table) == 2 + 20 + 1 and table[-1].startswith("20/20 instances sent to 127.0.0.1:")


def test_send_while_server_down_fails_cleanly_then_rerun_completes(
    orthanc: Orthanc, fused_demo: Path, tmp_path
):
    before = tree_state(fused_demo)
    orthanc.stop()
    args = ("send", str(fused_demo), "--pacs", orthanc.address, "--called-aet", "ORTHANC",
            "--retries", "2", "--backoff", "0.1", "--timeout", "5")
    r = orthanc.cli(*args, "-q", "--report", str(tmp_path / "failed.json"))
    assert r.returncode == 7
    assert _error_line(r.stderr) == (
        f"medfuse: error: cannot connect to PACS {orthanc.address}: connection refused")
    assert r.stdout == ""
    report = json.loads((tmp_path / "failed.json").read_text())
    assert not report["ok"] and report["n_failed"] == 20 and "connection refused" in report["error"]
    assert tree_state(fused_demo) == before  # local outputs untouched

    orthanc.start()
    r = orthanc.cli(*args)
    assert r.returncode == 0, r.stderr
    assert stored_hashes(orthanc, tmp_path / "rest") == local_hashes(fused_demo / "dicom")
    assert tree_state(fused_demo) == before


def test_send_to_wrong_called_aet_is_rejected(orthanc: Orthanc, fused_demo: Path):
    r = orthanc.cli("send", str(fused_demo), "--pacs", orthanc.address, "--called-aet", "NOTHERE",
                    "--retries", "0", "-q")
    assert r.returncode == 7
    line = _error_line(r.stderr)
    assert line.startswith(f"medfuse: error: PACS {orthanc.address} (AE NOTHERE) rejected the "
                           "association from AE MEDFUSE: ")
    assert line.endswith("Called AE title not recognised (Service User, Rejected Permanent)")


# Associate with a wrong called AE title again and again in one process; print each error.
# pynetdicom's debug log (to memory) slows its threads enough to open the race window wide.
_REJECTED_N_TIMES = """
import io, logging, sys
logging.getLogger("pynetdicom").addHandler(logging.StreamHandler(io.StringIO()))
logging.getLogger("pynetdicom").setLevel(logging.DEBUG)
from medfuse.errors import RemoteError
from medfuse.pacs.dimse import DimsePeer, associate, new_ae
from pynetdicom.sop_class import Verification
peer = DimsePeer("127.0.0.1", int(sys.argv[1]), called_aet="NOTHERE")
for _ in range(int(sys.argv[2])):
    ae = new_ae(peer)
    ae.add_requested_context(Verification)
    try:
        associate(ae, peer).release()
        print("established")
    except RemoteError as exc:
        print(exc)
"""


def test_every_rejection_is_reported_as_a_rejection(orthanc: Orthanc):
    """Orthanc's A-ASSOCIATE-RJ and its closing of the connection can reach pynetdicom before it
    checks that the socket is connected; it then aborts and reports no rejection (134 of 300
    tries on loopback with its debug log on, before the fix; once in a CI run without it).
    Each of 60 tries must name the rejection."""
    import sys

    r = orthanc.netns.run(sys.executable, "-c", _REJECTED_N_TIMES, str(orthanc.dicom_port), "60",
                          timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    expected = (f"PACS {orthanc.address} (AE NOTHERE) rejected the association from AE MEDFUSE: "
                "Called AE title not recognised (Service User, Rejected Permanent)")
    assert len(lines) == 60 and set(lines) == {expected}, set(lines)


def test_send_reports_each_failed_instance_and_exits_nonzero(
    orthanc: Orthanc, fused_demo: Path, tmp_path
):
    """One real fused instance, and a copy relabelled with a SOP class Orthanc does not know."""
    import pydicom
    from pydicom.uid import generate_uid

    folder = tmp_path / "mixed"
    folder.mkdir()
    good = folder / "SC_0001.dcm"
    shutil.copy(fused_demo / "dicom" / "SC_0001.dcm", good)
    ds = pydicom.dcmread(good)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(folder / "SC_unknown.dcm")

    r = orthanc.cli("send", str(folder), "--pacs", orthanc.address, "--called-aet", "ORTHANC",
                    "--retries", "1", "--backoff", "0", "--report", str(tmp_path / "r.json"))
    assert r.returncode == 7
    rows = {Path(x["path"]).name: x for x in json.loads((tmp_path / "r.json").read_text())["rows"]}
    assert rows["SC_0001.dcm"]["status"] == "sent" and rows["SC_0001.dcm"]["attempts"] == 1
    bad = rows["SC_unknown.dcm"]
    assert bad["status"] == "failed" and bad["attempts"] == 2  # first try + one retry
    assert "no presentation context for SOP class 1.2.826.0.1.3680043.8.498.1" in bad["message"]
    assert "1/2 instances sent" in r.stdout and "1 failed" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith(
        "medfuse: error: 1 of 2 instance(s) not stored")
    assert "Traceback" not in r.stderr
    good_uid = str(pydicom.dcmread(good, stop_before_pixels=True).SOPInstanceUID)
    assert set(stored_hashes(orthanc, tmp_path / "rest")) == {good_uid}


def test_send_dicomweb_stow(orthanc: Orthanc, fused_demo: Path, tmp_path):
    r = orthanc.cli("send", str(fused_demo), "--dicomweb", orthanc.dicomweb,
                    "--report", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    assert stored_hashes(orthanc, tmp_path / "rest") == local_hashes(fused_demo / "dicom")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["protocol"] == "dicomweb" and report["ok"] and report["n_total"] == 20


def test_send_dicomweb_server_down(orthanc: Orthanc, fused_demo: Path):
    orthanc.stop()
    r = orthanc.cli("send", str(fused_demo), "--dicomweb", orthanc.dicomweb, "--retries", "0", "-q")
    assert r.returncode == 7
    assert _error_line(r.stderr).startswith(
        f"medfuse: error: cannot connect to DICOMweb server {orthanc.dicomweb}: ")


def test_send_compressed_to_a_pacs_refusing_it_falls_back_to_uncompressed(netns: Netns, tmp_path):
    """The demo CT is JPEG-LS; this Orthanc accepts only uncompressed syntaxes."""
    import pydicom

    from medfuse.data import demo_pair

    ct = Path(demo_pair()[0])
    server = Orthanc(netns, tmp_path / "orthanc", extra={
        "AcceptedTransferSyntaxes": ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]})
    server.start()
    try:
        r = server.cli("send", str(ct), "--pacs", server.address, "--called-aet", "ORTHANC",
                       "--report", str(tmp_path / "r.json"))
        assert r.returncode == 0, r.stderr
        rows = json.loads((tmp_path / "r.json").read_text())["rows"]
        assert len(rows) == 24 and all(x["status"] == "sent" for x in rows)
        assert all("decoded to Explicit VR Little Endian" in x["message"] for x in rows)
        ids = server.json("/instances", tmp_path / "rest")
        stored = [pydicom.dcmread(io.BytesIO(b)) for b in
                  server.fetch(*(f"/instances/{i}/file" for i in ids), scratch=tmp_path / "rest")]
    finally:
        server.stop()
    local = {str(d.SOPInstanceUID): d for d in (pydicom.dcmread(f) for f in ct.glob("*.dcm"))}
    assert {str(d.SOPInstanceUID) for d in stored} == set(local)
    for d in stored:  # lossless: the decoded pixels are the same numbers
        assert d.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert (d.pixel_array == local[str(d.SOPInstanceUID)].pixel_array).all()


@pytest.mark.slow
def test_fuse_send_keeps_output_when_pacs_down(orthanc: Orthanc, tmp_path):
    out = tmp_path / "out"
    orthanc.stop()
    r = orthanc.cli("fuse", "--demo", "--method", "average", "-o", str(out), "-q",
                    "--send", orthanc.address, "--called-aet", "ORTHANC")
    assert r.returncode == 7  # distinct from fusion's own failures (3-6)
    line = _error_line(r.stderr)
    assert line.startswith(f"medfuse: error: {out} written, but sending failed: cannot connect "
                           f"to PACS {orthanc.address}: connection refused")
    assert (out / "run.json").is_file() and len(list((out / "dicom").glob("*.dcm"))) == 20

    orthanc.start()
    r = orthanc.cli("send", str(out), "--pacs", orthanc.address, "--called-aet", "ORTHANC", "-q")
    assert r.returncode == 0, r.stderr
    assert stored_hashes(orthanc, tmp_path / "rest") == local_hashes(out / "dicom")
