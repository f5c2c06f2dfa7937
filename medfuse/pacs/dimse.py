"""DIMSE peers (pynetdicom): address parsing, associations with one-line errors, C-ECHO, C-STORE.

:func:`store` sends every instance over one association whose presentation contexts are the SOP
classes and transfer syntaxes present (one context per pair, plus an uncompressed fallback per SOP
class when a compressed syntax is present, so a peer refusing the compressed one still gets the
instance, decoded losslessly to Explicit VR Little Endian). Failed instances and lost associations
are retried with exponential back-off.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from medfuse.errors import InputError, RemoteError
from medfuse.pacs.instances import LocalInstance
from medfuse.pacs.report import InstanceResult
from medfuse.pacs.retry import attempts

__all__ = [
    "DEFAULT_CALLING_AET",
    "DimsePeer",
    "parse_address",
    "check_aet",
    "new_ae",
    "associate",
    "check",
    "store",
]

DEFAULT_CALLING_AET = "MEDFUSE"
#: DIMSE statuses counted as stored: success and the C-STORE warnings (coercion, elements
#: discarded).
_STORED = {0x0000, 0xB000, 0xB006, 0xB007}
_MAX_CONTEXTS = 128


@dataclass(frozen=True)
class DimsePeer:
    """A DICOM application entity reached over TCP.

    Attributes:
        host: host name or IP address.
        port: TCP port.
        called_aet: the peer's AE title.
        calling_aet: our AE title.
        timeout: seconds for connecting, association negotiation and each DIMSE reply.
    """

    host: str
    port: int
    called_aet: str
    calling_aet: str = DEFAULT_CALLING_AET
    timeout: float = 30.0

    def __str__(self) -> str:
        return f"{self.host}:{self.port} (AE {self.called_aet})"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[IPv6]:PORT``) -> (host, port).

    Raises:
        ValueError: not HOST:PORT with a port in 1..65535.
    """
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:4242)")
    return host, int(port)


def check_aet(aet: str) -> str:
    """Validate a DICOM AE title (1-16 printable ASCII characters, no backslash).

    Raises:
        ValueError: an empty, too long or non-ASCII title.
    """
    if (not (0 < len(aet.strip()) <= 16) or not aet.isascii() or not aet.isprintable()
            or "\\" in aet):
        raise ValueError(f"{aet!r} is not an AE title (1-16 ASCII characters, no backslash)")
    return aet.strip()


def new_ae(peer: DimsePeer) -> Any:
    """A pynetdicom ``AE`` titled ``peer.calling_aet`` with ``peer.timeout`` on every timer."""
    from pynetdicom import AE

    ae = AE(ae_title=peer.calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = peer.timeout
    ae.connection_timeout = peer.timeout
    ae.maximum_associations = 1
    return ae


def _tcp_reason(peer: DimsePeer) -> str | None:
    """Why a TCP connection to the peer fails (None when it connects)."""
    try:
        with socket.create_connection((peer.host, peer.port), timeout=peer.timeout):
            return None
    except socket.gaierror:
        return "unknown host"
    except TimeoutError:
        return f"no answer within {peer.timeout:g} s"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()


def associate(ae: Any, peer: DimsePeer, **kwargs: Any) -> Any:
    """Open an association from ``ae`` (its requested contexts set) to ``peer``.

    A rejection is read from the A-ASSOCIATE-RJ PDU itself (an ``EVT_PDU_RECV`` handler), not
    from ``Association.is_rejected``: pynetdicom 3.0 checks whether the socket is still
    connected after sending the request, and when the peer's rejection and its closing of the
    connection arrive before that check (often, on loopback), it aborts the association and
    reports no rejection.

    Args:
        ae: a pynetdicom ``AE``.
        peer: the peer.
        **kwargs: passed to ``AE.associate`` (e.g. ``ext_neg``, ``evt_handlers``).

    Returns:
        the established pynetdicom ``Association``.

    Raises:
        RemoteError: the connection failed, or the peer rejected or aborted the association
            (one line naming host:port and the reason).
    """
    from pynetdicom import evt
    from pynetdicom.pdu import A_ASSOCIATE_RJ

    rejections: list[Any] = []

    def on_pdu(event: Any) -> None:
        if isinstance(event.pdu, A_ASSOCIATE_RJ):
            rejections.append(event.pdu.to_primitive())

    handlers = [*kwargs.pop("evt_handlers", []), (evt.EVT_PDU_RECV, on_pdu)]
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.called_aet, evt_handlers=handlers,
                         **kwargs)
    if assoc.is_established:
        return assoc
    if rejections:  # every A-ASSOCIATE-RJ passes the handler, whatever pynetdicom concluded
        rejection = rejections[0]
        raise RemoteError(
            f"PACS {peer} rejected the association from AE {peer.calling_aet}: "
            f"{rejection.reason_str} ({rejection.source_str}, {rejection.result_str})"
        )
    reason = _tcp_reason(peer)
    if reason is not None:
        raise RemoteError(f"cannot connect to PACS {peer.host}:{peer.port}: {reason}")
    raise RemoteError(f"PACS {peer} aborted the association or did not answer within "
                      f"{peer.timeout:g} s")


def check(peer: DimsePeer, retries: int = 0, backoff: float = 1.0) -> None:
    """C-ECHO the peer (retrying with back-off): is it there and does it accept us?

    Raises:
        RemoteError: no association, or the echo did not succeed after all attempts.
    """
    from pynetdicom.sop_class import Verification

    ae = new_ae(peer)
    ae.add_requested_context(Verification)
    error: RemoteError | None = None
    for _ in attempts(retries, backoff):
        try:
            assoc = associate(ae, peer)
        except RemoteError as exc:
            error = exc
            continue
        try:
            status = assoc.send_c_echo()
        finally:
            assoc.release()
        code = status.get("Status") if status else None
        if code == 0x0000:
            return
        error = RemoteError(
            f"PACS {peer} C-ECHO failed: "
            + ("no reply" if code is None else f"status 0x{code:04X}")
        )
    assert error is not None
    raise error


def _contexts(instances: Sequence[LocalInstance]) -> list[Any]:
    """Presentation contexts for the (SOP class, transfer syntax) pairs present."""
    from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom.presentation import build_context

    pairs: dict[str, set[str]] = {}
    for inst in instances:
        pairs.setdefault(inst.sop_class_uid, set()).add(inst.transfer_syntax_uid)
    contexts = []
    for sop, syntaxes in sorted(pairs.items()):
        for ts in sorted(syntaxes):
            contexts.append(build_context(sop, [ts]))
        if any(UID(ts).is_compressed for ts in syntaxes):
            contexts.append(build_context(sop, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
    if len(contexts) > _MAX_CONTEXTS:
        raise InputError(
            f"{len(contexts)} SOP class / transfer syntax combinations need more than one "
            f"association ({_MAX_CONTEXTS} presentation contexts at most): send fewer files at once"
        )
    return contexts


def _store_one(
    assoc: Any, accepted: set[tuple[str, str]], inst: LocalInstance, row: InstanceResult
) -> bool:
    """C-STORE one instance on an open association; fill ``row``; True when stored.

    ``accepted`` holds the (SOP class, transfer syntax) pairs the peer accepted.
    """
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    row.attempts += 1
    if (inst.sop_class_uid, inst.transfer_syntax_uid) in accepted:
        dataset: Any = inst.path  # pynetdicom sends the file's encoded bytes as they are
        note = ""
    elif (inst.sop_class_uid, ExplicitVRLittleEndian) in accepted:
        try:
            dataset = pydicom.dcmread(inst.path)
            dataset.decompress(generate_instance_uid=False)  # lossless: same instance
        except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's problem
            row.status = "failed"
            row.message = (
                f"cannot decode for the uncompressed fallback: {' '.join(str(exc).split())}"
            )
            return False
        note = "decoded to Explicit VR Little Endian (peer refused the compressed syntax)"
    else:
        row.status = "failed"
        row.message = (f"peer accepted no presentation context for SOP class "
                       f"{inst.sop_class_uid} / transfer syntax {inst.transfer_syntax_uid}")
        return False
    try:
        status = assoc.send_c_store(dataset)
    except (OSError, ValueError, AttributeError, RuntimeError) as exc:  # unreadable file, lost link
        row.status, row.message = "failed", f"not sent: {' '.join(str(exc).split())}"
        return False
    code = status.get("Status") if status else None
    row.code = code
    if code in _STORED:
        row.status = "sent"
        warn = "" if code == 0 else f"stored with warning 0x{code:04X}"
        row.message = "; ".join(m for m in (note, warn) if m)
        return True
    row.status = "failed"
    comment = str(status.get("ErrorComment", "")) if status else ""
    row.message = ("no reply (association lost)" if code is None
                   else f"refused with status 0x{code:04X}" + (f": {comment}" if comment else ""))
    return False


def store(
    instances: Sequence[LocalInstance],
    peer: DimsePeer,
    retries: int = 2,
    backoff: float = 1.0,
    log: Callable[[str], None] | None = None,
) -> list[InstanceResult]:
    """C-STORE every instance, over one association per attempt, retrying failures with back-off.

    Args:
        instances: what to send (see :func:`medfuse.pacs.instances.find_instances`).
        peer: the storage SCP.
        retries: extra attempts for instances (or associations) that failed.
        backoff: seconds before the first retry, doubled for each later one.
        log: called with one line per retry round.

    Returns:
        one :class:`InstanceResult` per instance, in input order (status ``sent`` or ``failed``).
    """
    ae = new_ae(peer)
    ae.requested_contexts = _contexts(instances)
    rows = {i.sop_instance_uid: InstanceResult(str(i.path), i.sop_instance_uid) for i in instances}
    pending = list(instances)
    for k in attempts(retries, backoff):
        if k and log:
            log(f"retry {k}/{retries}: {len(pending)} instance(s) left")
        try:
            assoc = associate(ae, peer)
        except RemoteError as exc:
            for inst in pending:
                rows[inst.sop_instance_uid].status = "failed"
                rows[inst.sop_instance_uid].message = str(exc)
            continue
        accepted = {(str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
                    for cx in assoc.accepted_contexts}
        try:
            for inst in pending:
                if not assoc.is_established:
                    row = rows[inst.sop_instance_uid]
                    row.status, row.message = "failed", "association lost before sending"
                    continue
                _store_one(assoc, accepted, inst, rows[inst.sop_instance_uid])
        finally:
            if assoc.is_established:
                assoc.release()
        pending = [i for i in pending if rows[i.sop_instance_uid].status != "sent"]
        if not pending:
            break
    return [rows[i.sop_instance_uid] for i in instances]
