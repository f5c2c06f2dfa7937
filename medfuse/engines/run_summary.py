"""The end of a run: the best model exported, ``summary.json`` and ``model_card.md`` written.

- :func:`export_best_model`: the best checkpoint's weights (or the last ones when nothing was
  validated) into ``<net>-<task>.safetensors`` (:func:`medfuse.nets.save_weights`);
- :func:`run_summary`: the summary dict (wall time, hardware, epochs, best validation metrics,
  loss terms, files); :func:`write_summary` writes it and the draft card.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medfuse.engines.build import ResumePoint, Validation
from medfuse.engines.handlers import EpochLog
from medfuse.engines.run_config import RunComponents, RunPlace, RunSettings

__all__ = ["BestModel", "RunTimes", "export_best_model", "hardware", "run_summary", "write_summary"]


def hardware(device: torch.device, world_size: int) -> dict[str, Any]:
    """The device, processes, platform and library versions of a run."""
    import ignite
    import monai

    info: dict[str, Any] = {
        "device": str(device), "world_size": world_size, "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "python": sys.version.split()[0],
        "torch": torch.__version__, "monai": monai.__version__, "ignite": ignite.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


@dataclass
class BestModel:
    """The exported model: its checkpoint (``None``: the last weights), epoch, metrics, file."""

    path: Path | None
    epoch: int
    weights: Path
    metrics: dict[str, float] = field(default_factory=dict)


def _load_best(out: Path, comp: RunComponents, validation: Validation, rows: list[dict[str, Any]],
               last_epoch: int) -> tuple[Path | None, int, dict[str, float]]:
    """Load the best checkpoint into the model; its path, epoch and ``metrics.csv`` values."""
    from medfuse.engines.checkpoint import load_checkpoint

    best_ckpt = validation.best_ckpt
    if best_ckpt is None or not best_ckpt.last_checkpoint:
        return None, last_epoch, {}
    path = out / Path(best_ckpt.last_checkpoint).name
    comp.model.load_state_dict(load_checkpoint(path)["model"])
    epoch = int(path.stem.split("_")[2])
    metrics: dict[str, float] = {}
    for row in rows:
        if int(row["epoch"]) == epoch:
            metrics = {k: float(row[k]) for k in validation.columns if row.get(k) not in (None, "")}
    return path, epoch, metrics


def export_best_model(settings: RunSettings, place: RunPlace, comp: RunComponents,
                      validation: Validation, rows: list[dict[str, Any]],
                      last_epoch: int) -> BestModel:
    """Write the best model (or the last one when nothing was validated) as safetensors.

    Args:
        settings, place, comp: the run's settings, place and components.
        validation: the run's validation (its best-model checkpointer and columns).
        rows: the rows of ``metrics.csv``.
        last_epoch: the trainer's last epoch.
    """
    from medfuse.nets import save_weights

    path, epoch, metrics = _load_best(place.out, comp, validation, rows, last_epoch)
    weights = place.out / f"{comp.net_name}-{settings.task or 'model'}.safetensors"
    save_weights(comp.model, weights, comp.net_name, comp.net_kwargs, settings.task or None,
                 extra={"config": settings.name, "epoch": str(epoch), "seed": str(settings.seed),
                        "key_metric": settings.key_metric, "val_metrics": json.dumps(metrics)})
    return BestModel(path, epoch, weights, metrics)


@dataclass
class RunTimes:
    """When the run started (``time.time()``) and how long ``trainer.run()`` took (seconds)."""

    start: float
    train_wall: float


def _timing(log: EpochLog, times: RunTimes, iterations: int, start: ResumePoint,
            now: float) -> dict[str, Any]:
    """The summary's times: wall, training, mean epoch, per iteration."""
    epoch_times = log.epoch_times
    total = sum(epoch_times)
    return {
        "wall_time_s": round(now - times.start, 2), "train_time_s": round(times.train_wall, 2),
        "mean_epoch_time_s": round(total / len(epoch_times), 3) if epoch_times else None,
        "seconds_per_iteration": round(total / max(iterations - start.iteration, 1), 4)
        if epoch_times else None,
    }


def run_summary(settings: RunSettings, place: RunPlace, comp: RunComponents, trainer: Any,
                validation: Validation, log: EpochLog, start: ResumePoint, best: BestModel,
                stopped: bool, times: RunTimes) -> dict[str, Any]:
    """The run's summary (what ``summary.json`` holds and the model card reads).

    Args:
        settings, place, comp: the run's settings, place and components.
        trainer: the trainer after its run.
        validation, log: the run's validation and epoch log.
        start: where the run (re)started.
        best: the exported model.
        stopped: whether a stop was requested.
        times: the run's start and training time.
    """
    import time

    from medfuse.nets.pretrained import sha256

    epochs, iters = int(trainer.state.epoch), int(trainer.state.iteration)
    resumed = start.path is not None
    rows = log.mlog.rows if log.mlog is not None else []
    return {
        "name": settings.name, "network": comp.net_name, "network_kwargs": comp.net_kwargs,
        "task": settings.task, "seed": settings.seed, "epochs": epochs,
        "max_epochs": settings.max_epochs, "iterations": iters,
        "completed": epochs >= settings.max_epochs,
        "resumed_from_epoch": start.epoch if resumed else None,
        "resumed_from_iteration": start.iteration if resumed else None,
        "stopped_early": stopped and iters < settings.max_epochs * len(trainer.data_loader),
        "batch_size": settings.batch_size, "world_size": place.world_size,
        "train_items": len(comp.train_ds),
        "validation_items": len(comp.val_ds) if comp.val_ds is not None else 0,
        "amp": str(place.amp).replace("torch.", "") if place.amp is not None else None,
        **_timing(log, times, iters, start, time.time()),
        "epoch_time_total_s": round(sum(float(r.get("epoch_time_s") or 0) for r in rows), 1)
        if rows else None,
        "run_dir": str(place.out), "hardware": hardware(place.device, place.world_size),
        "validation": {"profile": settings.vcfg.get("profile", "vifb"),
                       "key_metric": settings.key_metric, "metrics": validation.columns,
                       "best_epoch": best.epoch if best.path is not None else None,
                       "best": best.metrics, "baselines": validation.baselines},
        "loss_terms": {"weights": comp.term_weights,
                       "first_iteration": dict(trainer.state.first_terms or {}),
                       "last_epoch": dict(log.last_terms)},
        "final_train_loss": float(rows[-1]["train_loss"]) if rows else None,
        "files": {"weights": best.weights.name, "weights_sha256": sha256(best.weights),
                  "best_checkpoint": best.path.name if best.path is not None else None,
                  "metrics_csv": "metrics.csv", "split": "split.json", "config": "config.json"},
    }


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` and the draft ``model_card.md`` into the run folder."""
    from medfuse.engines.card import render_model_card

    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "model_card.md").write_text(render_model_card(summary))
