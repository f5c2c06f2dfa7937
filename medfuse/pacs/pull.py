"""Pull the series of a study from a PACS into one subfolder each (C-FIND + C-GET, or WADO-RS)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path

from medfuse.errors import InputError, OutputError, RemoteError
from medfuse.io.atomic import AtomicOutputDir
from medfuse.io.guard import check_output_place, clear_stale_temps, is_uid
from medfuse.pacs import dicomweb, dimse, qr
from medfuse.pacs.report import SeriesResult, TransferReport
from medfuse.pacs.retry import attempts
from medfuse.pacs.send import Peer

__all__ = ["series_folder_name", "pull_study"]


def series_folder_name(modality: str, series_uid: str) -> str:
    """Subfolder of a pulled series: ``<Modality>_<SeriesInstanceUID>`` (e.g. ``CT_1.2.3``)."""
    mod = "".join(c for c in modality if c.isalnum()) or "SERIES"
    return f"{mod}_{series_uid}"


def pull_study(
    peer: Peer,
    study_uid: str,
    out_dir: str | os.PathLike,
    series_uid: str | None = None,
    overwrite: bool = False,
    retries: int = 2,
    backoff: float = 1.0,
    log: Callable[[str], None] | None = None,
    move_port: int | None = None,
) -> TransferReport:
    """Fetch every series of a study (or one) into ``out_dir/<Modality>_<SeriesInstanceUID>/``.

    Each series is written into a temporary folder renamed into place once complete, so a series
    folder that exists is whole; a rerun skips those (``skipped``) unless ``overwrite``.

    Args:
        peer: a :class:`~medfuse.pacs.dimse.DimsePeer` (C-FIND + C-GET) or
            :class:`~medfuse.pacs.dicomweb.DicomwebServer` (QIDO-RS + WADO-RS).
        study_uid: StudyInstanceUID.
        out_dir: the folder receiving one subfolder per series (created if missing).
        series_uid: only this SeriesInstanceUID.
        overwrite: replace series folders that exist.
        retries: extra attempts for the query and for each failed series.
        backoff: seconds before the first retry, doubled for each later one.
        log: called with progress lines (UIDs and counts only).
        move_port: DIMSE only: C-MOVE instead of C-GET, to a storage SCP on this port with AE
            ``peer.calling_aet`` (the PACS must know it).

    Returns:
        the per-series report.

    Raises:
        RemoteError: the peer cannot be reached or refuses the query.
        InputError: the study (or series) is not on the peer.
        OutputError: ``out_dir`` cannot be created.
    """
    t0 = time.perf_counter()
    is_dimse = isinstance(peer, dimse.DimsePeer)
    proto = qr if is_dimse else dicomweb
    report = TransferReport("pull", "dimse" if is_dimse else "dicomweb", str(peer))
    fetch = proto.get_series
    if move_port is not None:
        if not is_dimse:
            raise ValueError("move_port needs a DIMSE peer")
        fetch = functools.partial(qr.move_series, port=move_port)
    out = Path(out_dir)
    check_output_place(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the output folder ({exc.strerror})") from None
    error: RemoteError | None = None
    for _ in attempts(retries, backoff):
        try:
            found = proto.find_series(peer, study_uid, series_uid)
            break
        except RemoteError as exc:
            error = exc
    else:
        assert error is not None
        raise error
    if not found:
        what = f"series {series_uid} of study {study_uid}" if series_uid else f"study {study_uid}"
        raise InputError(f"{what}: not found on {peer}")
    for s in found:
        if not is_uid(s.series_instance_uid):  # a remote string never becomes a path unchecked
            report.rows.append(SeriesResult(
                "(invalid)", s.modality, len(s.sop_instance_uids), status="failed",
                message="the peer answered a SeriesInstanceUID that is not a DICOM UID "
                        "(digits and dots, at most 64 characters); not written"))
            if log:
                log("a series with an invalid SeriesInstanceUID: failed, nothing written")
            continue
        name = series_folder_name(s.modality, s.series_instance_uid)
        row = SeriesResult(s.series_instance_uid, s.modality, len(s.sop_instance_uids),
                           folder=str(out / name))
        report.rows.append(row)
        target = out / name
        clear_stale_temps(target)  # a killed pull's hidden temporary folder (medfuse-marked only)
        if target.is_dir() and any(target.iterdir()) and not overwrite:
            row.status, row.message = "skipped", "folder exists (use --overwrite to fetch again)"
            row.received = sum(1 for _ in target.glob("*.dcm"))
            continue
        for _ in attempts(retries, backoff):
            try:
                with AtomicOutputDir(target, overwrite=overwrite, command="pull") as tmp:
                    row.received = fetch(peer, study_uid, s, tmp)
                row.status, row.message = "pulled", ""
                break
            except RemoteError as exc:
                row.status, row.message, row.received = "failed", str(exc), 0
        if log:
            log(f"series {s.series_instance_uid} ({s.modality or '?'}): {row.status}, "
                f"{row.received}/{row.expected} instance(s)")
    report.elapsed_s = time.perf_counter() - t0
    return report
