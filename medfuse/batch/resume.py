"""Resume: decide, before anything runs, which studies are already done.

A study is *skipped* when its output folder is complete (run.json present and every file it lists
in ``output_sha256`` present with that hash, :func:`medfuse.io.checksums.verify_outputs`) and was
made from the same inputs with the same options. It is *redone* (the old folder replaced only once
the new one is complete) when that output is partial, damaged or stale, or with ``--force``. A
non-empty folder that medfuse did not mark as its output (:mod:`medfuse.io.guard`) is never
deleted, not even with ``--force``: the study fails. Temporary folders a killed run left beside an
output are removed first (only those medfuse marked as its own).

The checks run in the batch process (threads hash in parallel), so a rerun of a finished cohort
starts no worker at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medfuse.io.guard import clear_stale_temps, is_medfuse_output

__all__ = ["Decision", "decide", "decide_all", "plan", "clear_stale_temps"]


@dataclass
class Decision:
    """What to do with one study.

    Attributes:
        action: "new" (no output yet), "skip", "redo" (replace the output) or "refuse".
        reason: why (for redo/refuse), else None.
        cleared: temporary folders removed beside the output.
    """

    action: str
    reason: str | None = None
    cleared: int = 0


def _stale(run: dict[str, Any], flags: dict[str, Any], a: str, b: str) -> str | None:
    """Why a complete output was made differently (other inputs or options), else None."""
    from dataclasses import asdict

    from medfuse.fusion.run import options_from_flags

    drop = ("progress", "overwrite")
    want = json.loads(json.dumps(asdict(options_from_flags(**flags)), default=str))
    want = {k: v for k, v in want.items() if k not in drop}
    if want.get("method") == "auto" and want.get("weights"):  # fuse_volumes records it so
        want["method"] = "network"
    have = {k: v for k, v in (run.get("options") or {}).items() if k not in drop}
    if want != have:
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        return f"made with other options ({', '.join(diff)})"
    inputs = run.get("inputs")
    paths = (
        [i.get("path") for i in inputs] if isinstance(inputs, list)
        else [inputs.get("a"), inputs.get("b")] if isinstance(inputs, dict) else []
    )
    if [str(p) for p in paths] != [a, b]:
        return "made from other inputs"
    return None


def decide(study: dict[str, Any], force: bool = False) -> Decision:
    """The :class:`Decision` for one study (:meth:`~medfuse.batch.manifest.Study.to_dict`)."""
    try:
        return _decide(study, force)
    except OSError as exc:
        why = f"{study['out']}: cannot check the output folder ({exc.strerror})"
        return Decision("refuse", why)


def _decide(study: dict[str, Any], force: bool) -> Decision:
    from medfuse.io.checksums import RUN_JSON, verify_outputs

    out = Path(study["out"])
    cleared = clear_stale_temps(out)
    if not out.is_dir() or not any(out.iterdir()):
        return Decision("new", None, cleared)
    if not is_medfuse_output(out):
        return Decision("refuse", (
            f"{out}: output folder exists, is not empty and is not a medfuse output; remove it "
            "yourself or choose another folder"
        ), cleared)
    if force:
        return Decision("redo", "--force", cleared)
    reason = verify_outputs(out)
    if reason is None:
        reason = _stale(json.loads((out / RUN_JSON).read_text()), study["flags"],
                        study["a"], study["b"])
        if reason is None:
            return Decision("skip", None, cleared)
    return Decision("redo", reason, cleared)


def decide_all(studies: list[dict[str, Any]], force: bool, threads: int = 4) -> list[Decision]:
    """:func:`decide` for every study, hashing in ``threads`` threads; in study order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return list(pool.map(lambda s: decide(s, force), studies))


def plan(
    studies: list[dict[str, Any]], force: bool, threads: int = 4
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split the studies into settled results and the ones to run.

    Returns:
        ``(settled, to_run)``: results for the skipped and refused studies; the studies to run,
        each with ``overwrite`` (replace the old output) and ``note`` (for the report) added.
    """
    from medfuse.batch.backends import not_started, skipped

    settled, to_run = [], []
    for s, d in zip(studies, decide_all(studies, force, threads)):
        notes = [f"removed {d.cleared} temporary folder(s) of an interrupted run"] * (d.cleared > 0)
        if d.action == "skip":
            settled.append(skipped(s, "; ".join([*notes, "output complete (hashes match)"])))
        elif d.action == "refuse":
            settled.append(not_started(s, d.reason, status="failed", exit_code=5))
        else:
            if d.action == "redo":
                notes.append(f"redone: {d.reason}")
            to_run.append({**s, "overwrite": d.action == "redo", "note": "; ".join(notes) or None})
    return settled, to_run
