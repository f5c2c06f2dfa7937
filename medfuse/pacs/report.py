"""Status reports of a send (one row per instance) and a pull (one row per series).

Rows hold UIDs, file names, status codes and messages only: never patient names or IDs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medfuse.errors import OutputError
from medfuse.io.interrupts import critical

__all__ = ["InstanceResult", "SeriesResult", "TransferReport", "format_table", "write_json"]


@dataclass
class InstanceResult:
    """What happened to one instance of a send.

    Attributes:
        path: the local file.
        sop_instance_uid: its SOPInstanceUID.
        status: ``"sent"``, ``"failed"`` or ``"pending"`` (not tried yet).
        code: the last DIMSE status (e.g. ``0x0000``) or HTTP status, None when none came back.
        attempts: how many times it was offered to the peer.
        message: why it failed, or a warning the peer returned ("" when none).
    """

    path: str
    sop_instance_uid: str
    status: str = "pending"
    code: int | None = None
    attempts: int = 0
    message: str = ""


@dataclass
class SeriesResult:
    """What happened to one series of a pull.

    Attributes:
        series_instance_uid: SeriesInstanceUID.
        modality: Modality as the peer reported it.
        expected: instances the query listed.
        received: instances written.
        folder: the series folder ("" when nothing was written).
        status: ``"pulled"``, ``"failed"`` or ``"skipped"``.
        message: why it failed ("" when it did not).
    """

    series_instance_uid: str
    modality: str = ""
    expected: int = 0
    received: int = 0
    folder: str = ""
    status: str = "pending"
    message: str = ""


@dataclass
class TransferReport:
    """A whole send or pull.

    Attributes:
        operation: ``"send"`` or ``"pull"``.
        protocol: ``"dimse"`` or ``"dicomweb"``.
        peer: the peer as text (``host:port (AE X)`` or the URL).
        elapsed_s: wall time of the transfer.
        rows: :class:`InstanceResult` (send) or :class:`SeriesResult` (pull) rows.
        error: why the whole transfer could not start (peer unreachable), "" otherwise.
    """

    operation: str
    protocol: str
    peer: str
    elapsed_s: float = 0.0
    rows: list[Any] = field(default_factory=list)
    error: str = ""

    @property
    def failed(self) -> list[Any]:
        """Rows that did not complete."""
        return [r for r in self.rows if r.status not in ("sent", "pulled", "skipped")]

    @property
    def ok(self) -> bool:
        """True when every row completed."""
        return not self.failed and not self.error

    def summary(self) -> str:
        """One line: counts, peer and time."""
        done = len(self.rows) - len(self.failed)
        what = "instances" if self.operation == "send" else "series"
        verb = "sent to" if self.operation == "send" else "pulled from"
        text = f"{done}/{len(self.rows)} {what} {verb} {self.peer} in {self.elapsed_s:.1f} s"
        return text + (f", {len(self.failed)} failed" if self.failed else "")

    def failure_line(self) -> str:
        """One line saying why the transfer did not complete ("" when it did)."""
        if self.error:
            return self.error
        if not self.failed:
            return ""
        what = ("instance(s) not stored on" if self.operation == "send"
                else "series not fetched from")
        first = " ".join(self.failed[0].message.split())
        return f"{len(self.failed)} of {len(self.rows)} {what} {self.peer}" + (
            f": {first}" if first else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``ok``, counts and one object per row)."""
        return {
            "operation": self.operation,
            "protocol": self.protocol,
            "peer": self.peer,
            "ok": self.ok,
            "error": self.error,
            "n_total": len(self.rows),
            "n_failed": len(self.failed),
            "elapsed_s": round(self.elapsed_s, 3),
            "rows": [asdict(r) for r in self.rows],
        }


def format_table(report: TransferReport) -> str:
    """The report as a fixed-width text table followed by its summary line."""
    if report.operation == "send":
        head = ("#", "file", "SOPInstanceUID", "status", "code", "tries", "message")
        rows = [
            (
                str(i),
                Path(r.path).name,
                r.sop_instance_uid,
                r.status,
                ""
                if r.code is None
                else f"0x{r.code:04X}"
                if report.protocol == "dimse"
                else str(r.code),
                str(r.attempts),
                r.message,
            )
            for i, r in enumerate(report.rows, 1)
        ]
    else:
        head = ("#", "SeriesInstanceUID", "modality", "received", "status", "folder", "message")
        rows = [
            (str(i), r.series_instance_uid, r.modality, f"{r.received}/{r.expected}", r.status,
             r.folder, r.message)
            for i, r in enumerate(report.rows, 1)
        ]
    widths = [max(len(h), *(len(row[k]) for row in rows)) if rows else len(h)
              for k, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*lines, report.summary()])


def write_json(report: TransferReport, path: str | os.PathLike) -> Path:
    """Write the report as JSON atomically (temporary file, then rename).

    Raises:
        OutputError: the file cannot be written.
    """
    out = Path(path)
    tmp: str | None = None
    try:  # a SIGTERM waits for the file to be complete or removed (medfuse.io.interrupts)
        with critical(raise_pending=False):
            try:
                out.absolute().parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.absolute().parent)
                with os.fdopen(fd, "w") as fh:
                    json.dump(report.to_dict(), fh, indent=2)
                    fh.write("\n")
                os.replace(tmp, out)
            finally:
                if tmp is not None and os.path.exists(tmp):  # not moved into place
                    os.unlink(tmp)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the report ({exc.strerror})") from None
    return out
