"""Per-epoch training log: a CSV file, and TensorBoard scalars when ``tensorboard`` is installed.

One CSV row per epoch: ``epoch, iteration, train_loss, lr, epoch_time_s``, the columns the run
adds (the loss terms ``train_<term>`` and their weighted shares ``train_share_<term>``,
``train_background``) and the validation values of that epoch (``val_loss``, every metric,
``val_background``, ``baseline_score``; empty when the epoch was not validated).
TensorBoard (``pip install tensorboard``; then ``tensorboard --logdir RUN_DIR/tb``) gets the same
scalars under ``train/`` and ``val/``; without the package only the CSV is written.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog", "tensorboard_available"]


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can be used (the ``tensorboard`` package is there)."""
    return importlib.util.find_spec("tensorboard") is not None


class MetricsLog:
    """Append per-epoch rows to ``metrics.csv`` (and TensorBoard) in a run folder.

    Args:
        folder: the run folder.
        columns: validation columns, in order (e.g. ``["val_loss", "MI", "Qabf", ...]``).
        resume_epoch: rows of later epochs (left by an interrupted run) are dropped on resume.
        tensorboard: ``"auto"`` (when installed), ``True`` or ``False``.
    """

    BASE = ("epoch", "iteration", "train_loss", "lr", "epoch_time_s")

    def __init__(self, folder: str | Path, columns: Sequence[str], resume_epoch: int | None = None,
                 tensorboard: bool | str = "auto") -> None:
        self.path = Path(folder) / "metrics.csv"
        self.columns = [*self.BASE, *columns]
        kept: list[dict[str, str]] = []
        if resume_epoch is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                kept = [
                    r
                    for r in csv.DictReader(f)
                    if r.get("epoch") and int(r["epoch"]) <= resume_epoch
                ]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(kept)
        self.rows: list[dict[str, Any]] = [dict(r) for r in kept]
        use_tb = tensorboard_available() if tensorboard == "auto" else bool(tensorboard)
        self.writer = None
        if use_tb:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(folder) / "tb"), purge_step=resume_epoch)

    def log(self, row: Mapping[str, Any]) -> None:
        """Append one epoch's row (missing columns stay empty; floats keep full precision)."""
        clean = {
            k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
            for k, v in row.items()
        }
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(clean)
        self.rows.append(dict(clean))
        if self.writer is not None:
            step = int(row["epoch"])
            for k, v in row.items():
                if k in ("epoch", "iteration") or not isinstance(v, (int, float)) or v == "":
                    continue
                group = "train" if k.startswith("train_") or k in ("lr", "epoch_time_s") else "val"
                self.writer.add_scalar(f"{group}/{k}", float(v), step)
            self.writer.flush()

    def close(self) -> None:
        """Close the TensorBoard writer (the CSV is closed after every row)."""
        if self.writer is not None:
            self.writer.close()
