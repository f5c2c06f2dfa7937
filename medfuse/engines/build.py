"""A run's ignite engines: the trainer and its loader, the evaluator, the checkpointers.

- :func:`build_trainer`: the seeded, resumable training loader and the
  :class:`~medfuse.engines.trainer.FusionTrainer` with its bookkeeping handlers;
- :func:`attach_validation`: the evaluator, its metrics and the best-model checkpoint (rank 0);
- :func:`resume_checkpointer`: the epoch-end checkpoint, and the state a resume restores from it.

Handlers fire in the order they are attached; :func:`medfuse.engines.workflow.run_training`
attaches them in the order a resume depends on (validation, the epoch's log, its checkpoint).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Events
from ignite.handlers import Checkpoint, DiskSaver, TerminateOnNan, global_step_from_engine
from monai.data import DataLoader
from monai.handlers import ValidationHandler
from monai.utils.enums import CommonKeys as Keys

from medfuse.engines.checkpoint import Record, load_checkpoint, resume_objects
from medfuse.engines.handlers import attach_data_seeding, attach_term_sums
from medfuse.engines.run_config import RunComponents, RunPlace, RunSettings
from medfuse.engines.sampling import ResumableSampler, SeededItems, epoch_seed
from medfuse.engines.trainer import FusionEvaluator, FusionQuality, FusionTrainer, baseline_means
from medfuse.errors import InputError

__all__ = ["ResumePoint", "Validation", "attach_validation", "build_trainer", "resume_checkpointer"]

logger = logging.getLogger("medfuse.train")


def _train_loader(settings: RunSettings, place: RunPlace, train_ds: Any
                  ) -> tuple[DataLoader, ResumableSampler, SeededItems, torch.Generator]:
    """The training loader, its :class:`ResumableSampler`, :class:`SeededItems` and generator.

    A DistributedSampler also for one process: its order is a pure function of (seed, epoch)
    (MONAI's Workflow calls set_epoch), unlike RandomSampler, whose shared generator a resumed
    run would advance differently (an uninterrupted run draws a last permutation when the old
    iterator ends). It skips the batches a mid-epoch resume has done; each item's augmentation
    is seeded by index.
    """
    generator = torch.Generator()
    generator.manual_seed(epoch_seed(settings.seed, 0))
    items = SeededItems(train_ds, settings.seed)
    sampler = ResumableSampler(items, num_replicas=place.world_size, rank=place.rank, shuffle=True,
                               seed=settings.seed)
    loader = DataLoader(items, batch_size=settings.batch_size, shuffle=False, sampler=sampler,
                        num_workers=settings.num_workers, generator=generator,
                        drop_last=bool(settings.tcfg.get("drop_last", False)),
                        pin_memory=place.device.type == "cuda", persistent_workers=False)
    return loader, sampler, items, generator


def build_trainer(settings: RunSettings, place: RunPlace, comp: RunComponents,
                  progress: bool | None) -> FusionTrainer:
    """The trainer with its data seeding, running sums, NaN stop and progress bar.

    Args:
        settings, place, comp: the run's settings, place and components.
        progress: show a progress bar (rank 0); ``None``: when stderr is a terminal.

    Returns:
        The :class:`~medfuse.engines.trainer.FusionTrainer` (its loader is ``data_loader``).
    """
    loader, sampler, items, generator = _train_loader(settings, place, comp.train_ds)
    network: torch.nn.Module = comp.model
    if place.world_size > 1:
        device_ids = [place.device.index] if place.device.type == "cuda" else None
        network = torch.nn.parallel.DistributedDataParallel(comp.model, device_ids=device_ids)
    trainer = FusionTrainer(device=place.device, max_epochs=settings.max_epochs,
                            train_data_loader=loader, network=network, optimizer=comp.optimizer,
                            loss_function=comp.loss_fn, amp=place.amp,
                            non_blocking=place.device.type == "cuda")
    trainer.logger.setLevel(logging.WARNING)
    attach_data_seeding(trainer, sampler, items, generator, settings.seed, place.rank,
                        settings.batch_size)
    attach_term_sums(trainer, place.rank, comp.term_weights)
    nan_stop = TerminateOnNan(output_transform=lambda o: o[Keys.LOSS])
    trainer.add_event_handler(Events.ITERATION_COMPLETED, nan_stop)
    show_progress = sys.stderr.isatty() if progress is None else progress
    if show_progress and place.rank == 0:
        from ignite.handlers import ProgressBar

        ProgressBar(persist=False).attach(trainer,
                                          output_transform=lambda o: {"loss": float(o[Keys.LOSS])})
    return trainer


@dataclass
class Validation:
    """A run's validation (empty when there is none).

    Attributes:
        evaluator: the :class:`~medfuse.engines.trainer.FusionEvaluator`, or ``None``.
        best_ckpt: the best-model :class:`~ignite.handlers.Checkpoint`, or ``None``.
        columns: the validation columns of ``metrics.csv``.
        baselines: ``{method: {metric: mean}}`` of the classical baselines.
    """

    evaluator: Any = None
    best_ckpt: Any = None
    columns: list[str] = field(default_factory=list)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)


def _key_metric_sign(key_metric: str, columns: list[str]) -> float:
    """``+1`` when a higher ``key_metric`` is better, else ``-1``; refuses an unknown metric."""
    from medfuse.metrics import higher_is_better

    if key_metric not in columns or key_metric == "val_background":
        raise InputError(f"config: validation#key_metric {key_metric!r} is not among the computed "
                         f"{', '.join(c for c in columns if c != 'val_background')}")
    if key_metric == "baseline_score":
        return 1.0
    return -1.0 if key_metric == "val_loss" or not higher_is_better(key_metric) else 1.0


def _priority(metrics: dict[str, Any], key_metric: str, sign: float) -> float:
    """The best-model checkpoint's priority of an epoch: ``sign * metrics[key_metric]``; for
    ``baseline_score`` with its ties broken by the lower background, then the lower validation
    loss (:func:`medfuse.nets.quality.baseline_priority`)."""
    if key_metric == "baseline_score":
        from medfuse.nets.quality import baseline_priority

        return baseline_priority(metrics)
    return sign * float(metrics[key_metric])


def attach_validation(trainer: FusionTrainer, settings: RunSettings, place: RunPlace,
                      comp: RunComponents) -> Validation:
    """Validate every ``validation#every_n_epochs`` epochs and keep the best model (rank 0).

    Raises:
        InputError: ``validation#key_metric`` is not a computed column.
    """
    vcfg, tcfg = settings.vcfg, settings.tcfg
    if place.rank != 0 or comp.val_ds is None or len(comp.val_ds) == 0:
        return Validation()
    batch_size = int(vcfg.get("batch_size", tcfg.get("val_batch_size", 4)))
    val_loader = DataLoader(comp.val_ds, batch_size=batch_size, shuffle=False, num_workers=0)
    profile = str(vcfg.get("profile", "vifb"))
    base_names = list(vcfg.get("baselines") or [])
    baselines: dict[str, dict[str, float]] = {}
    if base_names:  # the classical methods on the same pairs, once per run
        baselines = baseline_means(val_loader, base_names, profile, vcfg.get("metrics"))
    quality = FusionQuality(profile=profile, metrics=vcfg.get("metrics"), baselines=baselines)
    columns = ((["val_loss"] if vcfg.get("loss", True) else []) + list(quality.scorer.metrics)
               + ["val_background"] + (["baseline_score"] if base_names else []))
    key_metric = settings.key_metric
    sign = _key_metric_sign(key_metric, columns)
    loss = comp.loss_fn if vcfg.get("loss", True) else None
    evaluator = FusionEvaluator(device=place.device, val_data_loader=val_loader, network=comp.model,
                                loss_function=loss, amp=place.amp)
    evaluator.logger.setLevel(logging.WARNING)
    quality.attach(evaluator, "val")  # the best model is kept by the Checkpoint below
    best_ckpt = Checkpoint(
        {"model": comp.model, "network": Record(comp.net_name), "kwargs": Record(comp.net_kwargs),
         "task": Record(settings.task)},
        DiskSaver(str(place.out), require_empty=False, atomic=True), filename_prefix="best",
        score_function=lambda e: _priority(e.state.metrics, key_metric, sign),
        score_name=key_metric,
        n_saved=1, global_step_transform=global_step_from_engine(trainer))
    evaluator.add_event_handler(Events.COMPLETED, best_ckpt)
    interval = int(vcfg.get("every_n_epochs", 1))
    ValidationHandler(interval=interval, validator=evaluator).attach(trainer)
    return Validation(evaluator, best_ckpt, columns, baselines)


@dataclass
class ResumePoint:
    """Where a run (re)starts: the checkpoint (``None`` for a new run), its epoch and iteration."""

    path: Path | None = None
    epoch: int = 0
    iteration: int = 0


def resume_checkpointer(trainer: FusionTrainer, settings: RunSettings, place: RunPlace,
                        comp: RunComponents, best_ckpt: Any
                        ) -> tuple[Checkpoint, dict[str, Any], ResumePoint]:
    """The epoch-end checkpointer (not attached yet); restores its state on a resume.

    Args:
        trainer: the trainer (after :func:`attach_validation`, so ``best_ckpt`` is final).
        settings, place, comp: the run's settings, place and components.
        best_ckpt: the best-model checkpointer (its record is saved too), or ``None``.

    Returns:
        ``(checkpointer, objects, start)``: ``objects`` every checkpointed object by key (the
        checkpointer itself as ``"checkpointer"``); ``start`` where training resumes.

    Raises:
        InputError: the checkpoint to resume from does not fit this config.
    """
    extra = {"scaler": trainer.scaler, "best_checkpointer": best_ckpt}
    to_save = resume_objects(trainer, comp.model, comp.optimizer, comp.loss_fn, extra)
    saver = DiskSaver(str(place.out), require_empty=False, atomic=True)
    last_ckpt = Checkpoint(to_save, saver, filename_prefix="last", n_saved=1, include_self=True,
                           global_step_transform=lambda e, _: e.state.epoch)
    objects = {**to_save, "checkpointer": last_ckpt}
    start = ResumePoint()
    if place.resume_from is not None:
        ckpt = load_checkpoint(place.resume_from)
        missing = [k for k in to_save if k not in ckpt]
        if missing:
            raise InputError(f"{place.resume_from}: not a resume checkpoint of this config "
                             f"(lacks {', '.join(missing)})")
        for key in ("epoch_sums", "first_terms"):  # checkpoints written before these were kept
            ckpt["trainer"].setdefault(key, {})
        Checkpoint.load_objects(objects, ckpt)
        start = ResumePoint(place.resume_from, int(trainer.state.epoch),
                            int(trainer.state.iteration))
        trainer.state.max_epochs = settings.max_epochs
        logger.info("resumed from %s at epoch %d, iteration %d", place.resume_from, start.epoch,
                    start.iteration)
    return last_ckpt, objects, start
