"""The batch report: a JSON file (one entry per study) and a summary table on the terminal.

JSON (written atomically, see docs/batch.md)::

    {"medfuse_batch_report": 1, "manifest": ..., "backend": {...}, "started": ..., "finished": ...,
     "elapsed_s": ..., "interrupted": null | "SIGINT" | "SIGTERM",
     "counts": {"ok": n, "skipped": n, "failed": n, "interrupted": n},
     "studies": [{"row", "id", "a", "b", "out", "status", "error", "exit_code", "note",
                  "timings_s": {"total", "fuse": {load, register, prepare, fuse, write, total}},
                  "host", "pid"}, ...]}
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["build_report", "write_report", "summary_table", "REPORT_VERSION"]

#: format version of the JSON report.
REPORT_VERSION = 1

_STYLE = {"ok": "green", "skipped": "cyan", "failed": "bold red", "interrupted": "yellow"}


def build_report(
    meta: dict[str, Any], studies: list[dict[str, Any]], results: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    """The report dict: ``meta`` fields, counts and one entry per study in manifest order.

    Args:
        meta: manifest, backend, started, finished, elapsed_s, interrupted.
        studies: the studies (:meth:`~medfuse.batch.manifest.Study.to_dict`).
        results: row -> result of :func:`~medfuse.batch.worker.run_study` (missing: interrupted).
    """
    from medfuse.batch.backends import not_started
    from medfuse.batch.worker import STATUSES

    entries = []
    for s in studies:
        r = dict(results.get(s["row"]) or not_started(s))
        entries.append({"row": s["row"], "id": s["id"], "a": s["a"], "b": s["b"], **r})
    counts = {k: sum(e["status"] == k for e in entries) for k in STATUSES}
    return {"medfuse_batch_report": REPORT_VERSION, **meta, "counts": counts, "studies": entries}


def write_report(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``report`` as JSON to ``path`` atomically (temporary file, then rename).

    Raises:
        OutputError: the report's folder cannot be written.
    """
    from medfuse.errors import OutputError

    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise OutputError(
            f"{p}: cannot write the batch report ({exc.strerror}); choose another --report PATH"
        ) from None
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(report, f, indent=2, default=str)
            f.write("\n")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def summary_table(report: dict[str, Any]) -> Any:
    """A rich Table: one line per study (row, id, status, seconds, error or note)."""
    from rich.table import Table
    from rich.text import Text

    c = report["counts"]
    table = Table(
        title=f"medfuse batch: {c['ok']} ok, {c['skipped']} skipped, {c['failed']} failed, "
        f"{c['interrupted']} interrupted",
        title_justify="left",
    )
    for col, kw in (("row", {"justify": "right"}), ("id", {}), ("status", {}),
                    ("s", {"justify": "right"}), ("error / note", {"overflow": "fold"})):
        table.add_column(col, **kw)
    for e in report["studies"]:
        secs = e.get("timings_s", {}).get("total")
        table.add_row(
            str(e["row"]),
            Text(str(e["id"])),
            Text(e["status"], style=_STYLE.get(e["status"], "")),
            "" if secs is None else f"{secs:.1f}",
            Text(e.get("error") or e.get("note") or ""),
        )
    return table
