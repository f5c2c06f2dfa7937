"""Send every DICOM instance under a folder to a PACS (C-ECHO + C-STORE, or STOW-RS)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from medfuse.errors import RemoteError
from medfuse.pacs import dicomweb, dimse
from medfuse.pacs.instances import find_instances
from medfuse.pacs.report import InstanceResult, TransferReport

__all__ = ["Peer", "send_folder"]

Peer = dimse.DimsePeer | dicomweb.DicomwebServer


def send_folder(
    path: str | os.PathLike,
    peer: Peer,
    retries: int = 2,
    backoff: float = 1.0,
    log: Callable[[str], None] | None = None,
) -> TransferReport:
    """Send the DICOM instances at or under ``path`` to ``peer``; local files are only read.

    The peer is checked first (C-ECHO, or a QIDO-RS query for DICOMweb); when it cannot be
    reached after all attempts, the report's ``error`` says why and every row is ``failed``.

    Args:
        path: a folder (e.g. a ``medfuse fuse`` output) or one DICOM file.
        peer: a :class:`~medfuse.pacs.dimse.DimsePeer` or
            :class:`~medfuse.pacs.dicomweb.DicomwebServer`.
        retries: extra attempts for the check, lost associations and failed instances.
        backoff: seconds before the first retry, doubled for each later one.
        log: called with progress lines (no patient names or IDs).

    Returns:
        the per-instance report (``report.ok`` is False when anything failed).

    Raises:
        InputError: no DICOM files under ``path``, or an unreadable one.
    """
    t0 = time.perf_counter()
    instances = find_instances(path)
    is_dimse = isinstance(peer, dimse.DimsePeer)
    report = TransferReport("send", "dimse" if is_dimse else "dicomweb", str(peer))
    proto = dimse if is_dimse else dicomweb
    if log:
        log(f"sending {len(instances)} instance(s) to {peer}")
    try:
        proto.check(peer, retries=retries, backoff=backoff)
    except RemoteError as exc:
        report.error = str(exc)
        report.rows = [InstanceResult(str(i.path), i.sop_instance_uid, "failed", message=str(exc))
                       for i in instances]
    else:
        report.rows = proto.store(instances, peer, retries=retries, backoff=backoff, log=log)
    report.elapsed_s = time.perf_counter() - t0
    return report
