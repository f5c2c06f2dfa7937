"""Query/retrieve over DIMSE (pynetdicom): C-FIND the series of a study, C-GET or C-MOVE one.

C-GET (preferred) needs nothing configured on the PACS for our AE: the instances come back on our
own association. Storage contexts are proposed in the SCP role for every SOP class the series
holds (from an IMAGE-level C-FIND), one context per transfer syntax so that the PACS can send each
file in the syntax it was stored in. C-MOVE, for a PACS without C-GET, asks the PACS to open its
own association to a storage SCP we run for the duration of the move; the PACS must know our AE
title, host and port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medfuse.errors import RemoteError
from medfuse.pacs.dimse import DimsePeer, associate, new_ae

__all__ = ["RemoteSeries", "find_series", "get_series", "move_series"]

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

#: syntaxes offered for each SOP class in C-GET: uncompressed first, then the common compressed.
_GET_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
)


@dataclass
class RemoteSeries:
    """A series as the PACS lists it.

    Attributes:
        series_instance_uid: SeriesInstanceUID.
        modality: Modality ("" when not returned).
        sop_instance_uids: the instances (IMAGE-level C-FIND).
        sop_class_uids: the distinct SOP classes of those instances.
    """

    series_instance_uid: str
    modality: str = ""
    sop_instance_uids: list[str] = field(default_factory=list)
    sop_class_uids: list[str] = field(default_factory=list)


def _find(assoc: Any, query: Any, peer: DimsePeer) -> list[Any]:
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    found = []
    for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        code = status.get("Status") if status else None
        if code is None:
            raise RemoteError(f"PACS {peer}: C-FIND got no reply (association lost)")
        if code in (0xFF00, 0xFF01):
            if identifier is not None:
                found.append(identifier)
        elif code != 0x0000:
            raise RemoteError(f"PACS {peer}: C-FIND refused with status 0x{code:04X}")
    return found


def find_series(
    peer: DimsePeer, study_uid: str, series_uid: str | None = None
) -> list[RemoteSeries]:
    """C-FIND (Study Root) the series of a study and the instances of each.

    Args:
        peer: the query/retrieve SCP.
        study_uid: StudyInstanceUID.
        series_uid: only this SeriesInstanceUID.

    Returns:
        the series in SeriesInstanceUID order (empty when the study is unknown).

    Raises:
        RemoteError: no association or a refused query.
    """
    from pydicom.dataset import Dataset
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    ae = new_ae(peer)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = associate(ae, peer)
    try:
        q = Dataset()
        q.QueryRetrieveLevel = "SERIES"
        q.StudyInstanceUID = study_uid
        q.SeriesInstanceUID = series_uid or ""
        q.Modality = ""
        series = {}
        for ident in _find(assoc, q, peer):
            uid = str(ident.get("SeriesInstanceUID", "") or "")
            if uid:
                series[uid] = RemoteSeries(uid, str(ident.get("Modality", "") or ""))
        for uid, s in series.items():
            q = Dataset()
            q.QueryRetrieveLevel = "IMAGE"
            q.StudyInstanceUID = study_uid
            q.SeriesInstanceUID = uid
            q.SOPInstanceUID = ""
            q.SOPClassUID = ""
            classes = set()
            for ident in _find(assoc, q, peer):
                s.sop_instance_uids.append(str(ident.get("SOPInstanceUID", "")))
                if ident.get("SOPClassUID"):
                    classes.add(str(ident.SOPClassUID))
            s.sop_class_uids = sorted(classes)
    finally:
        if assoc.is_established:
            assoc.release()
    return [series[k] for k in sorted(series)]


def _series_query(study_uid: str, series: RemoteSeries) -> Any:
    from pydicom.dataset import Dataset

    q = Dataset()
    q.QueryRetrieveLevel = "SERIES"
    q.StudyInstanceUID = study_uid
    q.SeriesInstanceUID = series.series_instance_uid
    return q


def _store_handler(folder: Path, series: RemoteSeries, written: list[str]) -> Any:
    """EVT_C_STORE handler writing the series' instances (bytes as received) into ``folder``."""
    expected = set(series.sop_instance_uids)

    def on_store(event: Any) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        if not _UID.fullmatch(uid) or (expected and uid not in expected):
            return 0xA900  # not one of ours (or not a UID): refuse rather than write it
        (folder / f"{uid}.dcm").write_bytes(event.encoded_dataset())
        written.append(uid)
        return 0x0000

    return on_store


def _check_retrieve(final: Any, what: str, series: RemoteSeries, written: list[str]) -> int:
    """Raise unless the last C-GET/C-MOVE response says success and every instance arrived."""
    code = final.get("Status") if final else None
    if code is None:
        raise RemoteError(f"{what} got no reply (association lost)")
    failed = int(final.get("NumberOfFailedSuboperations", 0) or 0)
    if code not in (0x0000, 0xB000) or failed:
        raise RemoteError(
            f"{what} ended with status 0x{code:04X}, {failed} failed sub-operation(s)"
        )
    missing = set(series.sop_instance_uids) - set(written)
    if missing:
        raise RemoteError(f"{what}: {len(missing)} of {len(series.sop_instance_uids)} instances "
                          "did not arrive")
    return len(written)


def get_series(peer: DimsePeer, study_uid: str, series: RemoteSeries, folder: Path) -> int:
    """C-GET one series into ``folder`` (one ``<SOPInstanceUID>.dcm`` per instance, bytes as sent).

    Args:
        peer: the query/retrieve SCP.
        study_uid: StudyInstanceUID.
        series: the series (its SOP classes select the storage contexts).
        folder: an existing, empty folder.

    Returns:
        the number of instances written.

    Raises:
        RemoteError: no association, a refused retrieve, failed sub-operations, or fewer
            instances than the C-FIND listed.
    """
    from pynetdicom import evt
    from pynetdicom.presentation import build_role
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

    classes = series.sop_class_uids or [_SECONDARY_CAPTURE]
    ae = new_ae(peer)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    per_syntax = 1 + len(classes) * len(_GET_SYNTAXES) <= 128
    for sop in classes:
        if per_syntax:
            for ts in _GET_SYNTAXES:
                ae.add_requested_context(sop, [ts])
        else:
            ae.add_requested_context(sop, list(_GET_SYNTAXES))
    if len(ae.requested_contexts) > 128:
        raise RemoteError(
            f"series {series.series_instance_uid}: too many SOP classes for one C-GET"
        )
    written: list[str] = []
    roles = [build_role(sop, scp_role=True) for sop in classes]
    handlers = [(evt.EVT_C_STORE, _store_handler(folder, series, written))]
    assoc = associate(ae, peer, ext_neg=roles, evt_handlers=handlers)
    final = None
    try:
        for status, _ in assoc.send_c_get(_series_query(study_uid, series),
                                          StudyRootQueryRetrieveInformationModelGet):
            final = status
    finally:
        if assoc.is_established:
            assoc.release()
    what = f"PACS {peer}: C-GET of series {series.series_instance_uid}"
    return _check_retrieve(final, what, series, written)


def move_series(
    peer: DimsePeer, study_uid: str, series: RemoteSeries, folder: Path, port: int,
    bind: str = "",
) -> int:
    """C-MOVE one series to a storage SCP we run on ``port`` (AE ``peer.calling_aet``).

    The PACS must know that AE title with this machine's address and ``port`` (Orthanc: a
    ``DicomModalities`` entry); it opens its own association to us to send the instances.

    Args:
        peer: the query/retrieve SCP.
        study_uid: StudyInstanceUID.
        series: the series (its SOP classes select the contexts our SCP accepts).
        folder: an existing, empty folder.
        port: TCP port our storage SCP listens on while the move runs.
        bind: address it listens on ("" = every interface).

    Returns:
        the number of instances written.

    Raises:
        RemoteError: the port cannot be opened, no association, a refused move (e.g. the PACS
            does not know our AE), failed sub-operations, or missing instances.
    """
    from pynetdicom import evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

    ae = new_ae(peer)
    ae.maximum_associations = 2
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    for sop in series.sop_class_uids or [_SECONDARY_CAPTURE]:
        ae.add_supported_context(sop, list(_GET_SYNTAXES))  # we accept the PACS's first choice
    written: list[str] = []
    handlers = [(evt.EVT_C_STORE, _store_handler(folder, series, written))]
    try:
        server = ae.start_server((bind, port), block=False, evt_handlers=handlers)
    except OSError as exc:
        raise RemoteError(f"cannot listen on port {port} for C-MOVE: "
                          f"{(exc.strerror or str(exc)).lower()}") from None
    final = None
    try:
        assoc = associate(ae, peer)
        try:
            for status, _ in assoc.send_c_move(_series_query(study_uid, series), peer.calling_aet,
                                               StudyRootQueryRetrieveInformationModelMove):
                final = status
        finally:
            if assoc.is_established:
                assoc.release()
    finally:
        server.shutdown()
    what = f"PACS {peer}: C-MOVE of series {series.series_instance_uid} to AE {peer.calling_aet}"
    try:
        return _check_retrieve(final, what, series, written)
    except RemoteError as exc:
        if written:
            raise
        # nothing came: most often the PACS does not know the destination (0xA801, Orthanc 0xC000)
        raise RemoteError(f"{exc} (does the PACS know AE {peer.calling_aet} at this host, "
                          f"port {port}?)") from None
