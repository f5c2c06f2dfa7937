"""PACS pieces that need no server: instance discovery, reports, option errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from medfuse.cli import cli
from medfuse.data import demo_pair
from medfuse.errors import InputError
from medfuse.pacs.dimse import check_aet, parse_address
from medfuse.pacs.instances import find_instances
from medfuse.pacs.report import InstanceResult, TransferReport, format_table, write_json
from tests.helpers import run_cli


def test_find_instances_in_the_demo_folders():
    ct = Path(demo_pair()[0])
    found = find_instances(ct.parent)  # README, LICENSE skipped; ct/ and mr/ searched
    assert len(found) == 24 + 20
    assert {i.transfer_syntax_uid for i in found if i.path.parent == ct} == {
        "1.2.840.10008.1.2.4.80"}
    assert {i.sop_class_uid for i in found} == {"1.2.840.10008.5.1.4.1.1.2",
                                                "1.2.840.10008.5.1.4.1.1.4"}
    assert [i.path for i in found] == sorted(i.path for i in found)


def test_find_instances_errors(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        find_instances(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("not DICOM")
    with pytest.raises(InputError, match="no DICOM files found"):
        find_instances(tmp_path)
    ct, _ = demo_pair()
    first = min(Path(ct).glob("*.dcm"))
    shutil.copy(first, tmp_path / "a.dcm")
    shutil.copy(first, tmp_path / "b.dcm")
    (tmp_path / ".hidden").mkdir()
    shutil.copy(first, tmp_path / ".hidden" / "c.dcm")  # an unfinished atomic output: skipped
    with pytest.raises(InputError, match=r"b\.dcm: same SOPInstanceUID .* as .*a\.dcm"):
        find_instances(tmp_path)
    (tmp_path / "b.dcm").unlink()
    assert [i.path.name for i in find_instances(tmp_path)] == ["a.dcm"]


def test_report_table_and_json(tmp_path):
    report = TransferReport("send", "dimse", "host:104 (AE PACS)", 1.25, [
        InstanceResult("/x/SC_0001.dcm", "1.2.3", "sent", 0, 1),
        InstanceResult("/x/SC_0002.dcm", "1.2.4", "failed", 0xA700, 3,
                       "refused with status 0xA700"),
    ])
    lines = format_table(report).splitlines()
    assert lines[0].split() == ["#", "file", "SOPInstanceUID", "status", "code", "tries", "message"]
    assert lines[2].split() == ["1", "SC_0001.dcm", "1.2.3", "sent", "0x0000", "1"]
    assert lines[3].split()[:6] == ["2", "SC_0002.dcm", "1.2.4", "failed", "0xA700", "3"]
    assert lines[-1] == "1/2 instances sent to host:104 (AE PACS) in 1.2 s, 1 failed"
    data = json.loads(write_json(report, tmp_path / "sub" / "r.json").read_text())
    assert data["ok"] is False and data["n_failed"] == 1 and data["rows"][1]["attempts"] == 3
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["r.json"]  # no temporary left


def test_report_json_on_a_full_disk_is_one_error_and_leaves_no_temporary(tmp_path, monkeypatch):
    import errno

    from medfuse.errors import OutputError
    from medfuse.pacs import report as report_mod

    def full(obj, fh, **kw):
        fh.write("{")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report_mod.json, "dump", full)
    report = TransferReport("send", "dimse", "host:104 (AE PACS)", 1.0, [])
    with pytest.raises(OutputError, match=r"r\.json: cannot write the report \(No space left"):
        write_json(report, tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_address_and_aet_parsing():
    assert parse_address("127.0.0.1:4242") == ("127.0.0.1", 4242)
    assert parse_address("[::1]:104") == ("::1", 104)
    for bad in ("127.0.0.1", "host:", ":104", "host:0", "host:70000", "host:x"):
        with pytest.raises(ValueError, match="is not HOST:PORT"):
            parse_address(bad)
    assert check_aet("ORTHANC") == "ORTHANC"
    for bad in ("", "A" * 17, "BAD\\AET", "ÄET"):
        with pytest.raises(ValueError, match="is not an AE title"):
            check_aet(bad)


def test_cli_option_errors(tmp_path):
    ct, _ = demo_pair()
    folder = str(Path(ct).parent)
    cases = [
        (("send", folder), "give exactly one of --pacs HOST:PORT or --dicomweb URL"),
        (("send", folder, "--pacs", "h:1", "--dicomweb", "http://h/"), "give exactly one of"),
        (("send", folder, "--pacs", "nohost"), "--pacs: 'nohost' is not HOST:PORT"),
        (("send", folder, "--pacs", "h:1"), "--pacs needs --called-aet"),
        (("send", folder, "--dicomweb", "ftp://h/"), "is not an http(s) URL"),
        (("pull", "--study", "1.2", "-o", str(tmp_path), "--pacs", "h:1",
          "--called-aet", "A" * 17), "is not an AE title"),
        (("fuse", "--demo", "-o", str(tmp_path / "o"), "--send", "h:1"),
         "--send needs --called-aet"),
        (("fuse", "--demo", "-o", str(tmp_path / "o"), "--send", "h:1", "--called-aet", "X",
          "--format", "nifti"), "--send needs the dicom format"),
        (("fuse", "--demo", "-o", str(tmp_path / "o"), "--called-aet", "X"), "go with --send"),
    ]
    for args, message in cases:
        res = CliRunner().invoke(cli, list(args))
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output, (args, res.output)
    assert not (tmp_path / "o").exists()


def test_send_without_dicom_files_is_an_input_error(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    r = run_cli("send", str(tmp_path), "--pacs", "127.0.0.1:9", "--called-aet", "X")
    assert r.returncode == 3
    assert r.stderr.strip() == (f"medfuse: error: {tmp_path}: no DICOM files found "
                                "(a medfuse fuse output has them in dicom/)")


def test_unwritable_report_fails_before_sending(tmp_path):
    ct, _ = demo_pair()
    r = run_cli("send", str(ct), "--pacs", "127.0.0.1:9", "--called-aet", "X",
                "--report", str(tmp_path))
    assert r.returncode == 5
    assert r.stderr.strip() == f"medfuse: error: {tmp_path}: --report names a folder, not a file"
