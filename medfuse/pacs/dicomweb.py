"""DICOMweb peers (dicomweb-client): QIDO-RS check and search, STOW-RS store, WADO-RS retrieve.

Each instance is stored with its own STOW-RS request so that the report says which one failed;
failed ones are retried with exponential back-off. WADO-RS asks for the stored transfer syntax
(``transfer-syntax=*``) so that pulled files keep their encoding.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medfuse.errors import RemoteError
from medfuse.pacs.instances import LocalInstance
from medfuse.pacs.qr import RemoteSeries
from medfuse.pacs.report import InstanceResult
from medfuse.pacs.retry import attempts

__all__ = ["DicomwebServer", "check", "store", "find_series", "get_series"]

_SERIES_UID, _MODALITY, _SOP_UID, _SOP_CLASS = "0020000E", "00080060", "00080018", "00080016"


@dataclass(frozen=True)
class DicomwebServer:
    """A DICOMweb service root, e.g. ``http://127.0.0.1:8042/dicom-web`` for Orthanc.

    Attributes:
        url: the service root (QIDO, WADO and STOW under it).
        timeout: seconds for connecting and for each reply.
    """

    url: str
    timeout: float = 30.0

    def __str__(self) -> str:
        return self.url


def _client(server: DicomwebServer) -> Any:
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(server.url.rstrip("/"), timeout=server.timeout)
    client.set_http_retry_params(retry=False)  # our own retries (its default waits ~30 s)
    return client


def _reason(server: DicomwebServer, exc: Exception) -> RemoteError:
    """One-line RemoteError for a requests exception."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        r = exc.response
        return RemoteError(f"DICOMweb server {server}: HTTP {r.status_code} {r.reason} "
                           f"for {r.request.method} {r.url}")
    if isinstance(exc, requests.Timeout):
        return RemoteError(f"DICOMweb server {server}: no answer within {server.timeout:g} s")
    if isinstance(exc, requests.ConnectionError):
        found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
        why = found.group(1).strip().lower() if found else "connection failed"
        return RemoteError(f"cannot connect to DICOMweb server {server}: {why}")
    return RemoteError(f"DICOMweb server {server}: {exc}")


def _errors() -> tuple[type[Exception], ...]:
    import requests

    return (requests.RequestException, ValueError)


def check(server: DicomwebServer, retries: int = 0, backoff: float = 1.0) -> None:
    """Check the server answers a QIDO-RS query (the DICOMweb counterpart of C-ECHO).

    Raises:
        RemoteError: unreachable or refusing after all attempts.
    """
    error: RemoteError | None = None
    for _ in attempts(retries, backoff):
        try:
            _client(server).search_for_studies(limit=1)
            return
        except _errors() as exc:
            error = _reason(server, exc)
    assert error is not None
    raise error


def _store_one(
    client: Any, server: DicomwebServer, inst: LocalInstance, row: InstanceResult
) -> None:
    import pydicom

    row.attempts += 1
    try:
        ds = pydicom.dcmread(inst.path)
    except Exception as exc:  # noqa: BLE001 - a local file that vanished or broke since the scan
        row.status, row.message = "failed", f"cannot read the file: {exc}"
        return
    try:
        resp = client.store_instances([ds])
    except _errors() as exc:
        err = _reason(server, exc)
        row.status, row.message = "failed", str(err)
        import requests

        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            row.code = exc.response.status_code
        return
    failed = resp.get("FailedSOPSequence") if resp is not None else None
    row.code = 200
    if failed:
        reason = failed[0].get("FailureReason")
        row.status = "failed"
        row.message = "refused" + (f" with failure reason 0x{int(reason):04X}" if reason else "")
        return
    row.status, row.message = "sent", ""


def store(
    instances: Sequence[LocalInstance],
    server: DicomwebServer,
    retries: int = 2,
    backoff: float = 1.0,
    log: Callable[[str], None] | None = None,
) -> list[InstanceResult]:
    """STOW-RS every instance (one request each), retrying failures with back-off.

    Args:
        instances: what to send.
        server: the DICOMweb service.
        retries: extra attempts for failed instances.
        backoff: seconds before the first retry, doubled for each later one.
        log: called with one line per retry round.

    Returns:
        one :class:`InstanceResult` per instance, in input order.
    """
    client = _client(server)
    rows = [InstanceResult(str(i.path), i.sop_instance_uid) for i in instances]
    pending = list(range(len(instances)))
    for k in attempts(retries, backoff):
        if k and log:
            log(f"retry {k}/{retries}: {len(pending)} instance(s) left")
        for n in pending:
            _store_one(client, server, instances[n], rows[n])
        pending = [n for n in pending if rows[n].status != "sent"]
        if not pending:
            break
    return rows


def _value(item: dict[str, Any], tag: str) -> str:
    vals = item.get(tag, {}).get("Value") or [""]
    return str(vals[0])


def find_series(
    server: DicomwebServer, study_uid: str, series_uid: str | None = None
) -> list[RemoteSeries]:
    """QIDO-RS the series of a study and the instances of each.

    Returns:
        the series in SeriesInstanceUID order (empty when the study is unknown).

    Raises:
        RemoteError: the server is unreachable or refuses the query.
    """
    import requests

    client = _client(server)
    try:
        try:
            found = client.search_for_series(study_instance_uid=study_uid)
        except requests.HTTPError as exc:
            if exc.response is not None and exc.response.status_code == 404:
                return []
            raise
        series = {}
        for item in found:
            uid = _value(item, _SERIES_UID)
            if uid and (series_uid is None or uid == series_uid):
                series[uid] = RemoteSeries(uid, _value(item, _MODALITY))
        for uid, s in series.items():
            items = client.search_for_instances(study_instance_uid=study_uid,
                                                series_instance_uid=uid)
            s.sop_instance_uids = [_value(i, _SOP_UID) for i in items]
            s.sop_class_uids = sorted({_value(i, _SOP_CLASS) for i in items} - {""})
    except _errors() as exc:
        raise _reason(server, exc) from None
    return [series[k] for k in sorted(series)]


def get_series(server: DicomwebServer, study_uid: str, series: RemoteSeries, folder: Path) -> int:
    """WADO-RS one series into ``folder`` (``<SOPInstanceUID>.dcm``, stored transfer syntax).

    Returns:
        the number of instances written.

    Raises:
        RemoteError: the retrieve failed or fewer instances came than QIDO-RS listed.
    """
    from pydicom.uid import UID

    client = _client(server)
    what = f"DICOMweb server {server}: WADO-RS of series {series.series_instance_uid}"
    written = set()
    try:
        for ds in client.iter_series(study_uid, series.series_instance_uid,
                                     media_types=(("application/dicom", "*"),)):
            uid = str(ds.SOPInstanceUID)
            if not UID(uid).is_valid:
                raise RemoteError(f"{what}: an instance has an invalid SOPInstanceUID")
            ds.save_as(folder / f"{uid}.dcm", enforce_file_format=True)
            written.add(uid)
    except _errors() as exc:
        raise _reason(server, exc) from None
    missing = set(series.sop_instance_uids) - written
    if missing:
        raise RemoteError(f"{what}: {len(missing)} of {len(series.sop_instance_uids)} instances "
                          "did not arrive")
    return len(written)
