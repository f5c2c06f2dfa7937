"""A training run's folder: made (or checked for a resume) first, its inputs recorded next.

:func:`prepare_output` refuses to mix two runs in one folder (unless told to overwrite) and finds
the checkpoint to resume from; :func:`write_run_inputs` records the config and the split once the
components are built, so a failed start leaves no run behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medfuse.errors import InputError, OutputError

__all__ = ["ARTEFACTS", "INIT_DIGEST_KEY", "init_weights_digest", "prepare_output",
           "write_run_inputs"]

#: ``config.json``'s record of the ``init_weights`` file's sha256 when the run first started
INIT_DIGEST_KEY = "init_weights_sha256"

#: the files a run writes in its folder (removed by ``overwrite``)
ARTEFACTS = ("last_checkpoint_*.pt", "mid_checkpoint_*.pt", "best_checkpoint_*.pt", "metrics.csv",
             "summary.json", "config.json", "split.json", "model_card.md", "*.safetensors")


def _resume_checkpoint(out: Path, resume: Any) -> Path:
    """The checkpoint a ``resume`` setting names: the folder's newest one, or a path."""
    from medfuse.engines.checkpoint import find_last_checkpoint

    if resume in (True, "auto", "last"):
        last = find_last_checkpoint(out)
        if last is None:
            raise InputError(f"{out}: no last_checkpoint_*.pt to resume from")
        return last
    path = Path(resume)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    return path


def prepare_output(out: Path, resume: Any, overwrite: bool) -> Path | None:
    """Create the run folder; return the checkpoint to resume from (if any).

    Args:
        out: the run folder.
        resume: ``None``/``False``/``""`` (a new run), ``True``/``"auto"``/``"last"`` (the
            folder's newest checkpoint) or a checkpoint path.
        overwrite: delete a previous run's files instead of refusing.

    Raises:
        OutputError: the folder cannot be written, or holds a previous run.
        InputError: the checkpoint to resume from is missing.
    """
    from medfuse.io.guard import check_output_place

    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    check_output_place(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the run folder ({exc.strerror})") from None
    if not os.access(out, os.W_OK):
        raise OutputError(f"{out}: folder is not writable")
    if resume not in (None, False, ""):
        return _resume_checkpoint(out, resume)
    existing = [p for pat in ARTEFACTS for p in out.glob(pat)]
    if existing and not overwrite:
        raise OutputError(f"{out}: holds a previous run ({existing[0].name}); use --resume, "
                          "--overwrite or another --output")
    for p in existing:
        p.unlink()
    return None


def init_weights_digest(out: Path, init: str | None, resumed: bool) -> str | None:
    """The sha256 of the run's ``init_weights`` file as the run first started from it.

    A fresh start hashes the file; a resumed run keeps the digest its ``config.json`` recorded
    (``INIT_DIGEST_KEY``) when it names the same file, since the file may have changed since:
    e.g. the run's own earlier weights were shipped in its place. ``None`` without
    ``init_weights``, or when the file cannot be read.
    """
    from medfuse.nets.pretrained import sha256

    if not init:
        return None
    if resumed:
        try:
            old = json.loads((out / "config.json").read_text())
        except (OSError, ValueError):
            old = {}
        if old.get("init_weights") == init and old.get(INIT_DIGEST_KEY):
            return str(old[INIT_DIGEST_KEY])
    try:
        return sha256(Path(init))
    except OSError:
        return None


def write_run_inputs(out: Path, parser: Any, task: str, train_ds: Any, val_ds: Any,
                     resumed: bool = False) -> None:
    """Mark the folder as a training run and write ``config.json`` and ``split.json``.

    ``config.json`` is the merged config, plus ``INIT_DIGEST_KEY`` (the sha256 of the
    ``init_weights`` file the run started from, see :func:`init_weights_digest`) when it has one.

    Args:
        out: the run folder.
        parser: the run's :class:`monai.bundle.ConfigParser` (its merged config is written).
        task: the config's task (e.g. ``"ct-mri"``).
        train_ds, val_ds: the datasets (``val_ds`` may be ``None``); the split names the
            validation items and counts the training ones.
        resumed: the run continues from a checkpoint in ``out``.
    """
    from medfuse.io.guard import MARKER, write_marker

    if not (out / MARKER).exists():
        write_marker(out, "train")
    config = parser.get()
    digest = init_weights_digest(out, config.get("init_weights"), resumed)
    if digest is not None:
        config = {**config, INIT_DIGEST_KEY: digest}
    (out / "config.json").write_text(json.dumps(config, indent=1, default=str) + "\n")
    names = [d["name"] for d in (getattr(val_ds, "data", None) or [])]
    split = {"task": task, "validation": names, "n_train_items": len(train_ds)}
    (out / "split.json").write_text(json.dumps(split, indent=1) + "\n")
