"""A hostile PACS cannot make ``pull`` write outside ``-o`` (issue 14, defect 4).

Orthanc will not hand out a SeriesInstanceUID like ``1/../../victim``, so the peer here is a
DICOMweb client answering with the real demo CT/MR instances (pydicom datasets, their DICOM JSON
for QIDO-RS) after the CT's SeriesInstanceUID was replaced by a path. The code under test is the
real :func:`medfuse.pacs.pull.pull_study` and :func:`medfuse.pacs.dicomweb.find_series` that
turn the remote answer into folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest

from medfuse.data import demo_pair
from medfuse.pacs import dicomweb
from medfuse.pacs.dicomweb import DicomwebServer
from medfuse.pacs.pull import pull_study

HOSTILE = "1/../../victim"


class _HostileClient:
    """QIDO-RS/WADO-RS answers built from real datasets (only what medfuse calls)."""

    def __init__(self, datasets: list[Any]) -> None:
        self.datasets = datasets

    def _json(self, ds: Any) -> dict[str, Any]:
        keep = ("SeriesInstanceUID", "Modality", "SOPInstanceUID", "SOPClassUID")
        head = pydicom.Dataset()
        for k in keep:
            setattr(head, k, getattr(ds, k))
        return head.to_json_dict()

    def search_for_series(self, study_instance_uid: str) -> list[dict[str, Any]]:
        seen = {str(d.SeriesInstanceUID): d for d in self.datasets}
        return [self._json(d) for d in seen.values()]

    def search_for_instances(self, study_instance_uid: str, series_instance_uid: str) -> list:
        return [self._json(d) for d in self.datasets
                if str(d.SeriesInstanceUID) == series_instance_uid]

    def iter_series(self, study: str, series: str, media_types: Any = None):
        yield from (d for d in self.datasets if str(d.SeriesInstanceUID) == series)


@pytest.mark.parametrize("overwrite", [False, True])
def test_series_uid_that_is_a_path_is_refused(tmp_path: Path, monkeypatch, overwrite: bool):
    ct, mr = demo_pair()
    cts = [pydicom.dcmread(p) for p in sorted(ct.glob("*.dcm"))]
    for d in cts:
        d.SeriesInstanceUID = HOSTILE
    mrs = [pydicom.dcmread(p) for p in sorted(mr.glob("*.dcm"))]
    monkeypatch.setattr(dicomweb, "_client", lambda server: _HostileClient(cts + mrs))
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine\n")
    out = tmp_path / "in" / "pulled"
    report = pull_study(DicomwebServer("http://pacs.invalid/dicom-web"),
                        str(mrs[0].StudyInstanceUID), out, overwrite=overwrite, retries=0)
    rows = {r.modality: r for r in report.rows}
    assert rows["CT"].status == "failed" and "not a DICOM UID" in rows["CT"].message
    assert rows["CT"].received == 0 and rows["CT"].folder == ""
    assert rows["MR"].status == "pulled" and rows["MR"].received == len(mrs)
    assert [p.name for p in victim.iterdir()] == ["keep.txt"]  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "victim"]
    assert [p.name for p in out.iterdir()] == [f"MR_{mrs[0].SeriesInstanceUID}"]
