"""One training run from a config: build, train, validate, checkpoint, export, summarise.

:func:`run_training` is what ``medfuse train`` calls. A run folder ends up with:

==============================  ===============================================================
``config.json``                 the merged config as run (files + overrides)
``split.json``                  the validation file names of this run
``metrics.csv``                 one row per epoch (:class:`~medfuse.engines.metrics_log.MetricsLog`)
``last_checkpoint_<e>.pt``      resume checkpoint (model, optimiser, trainer, RNG, scaler)
``mid_checkpoint_<i>.pt``       resume checkpoint inside an epoch (iteration ``i``), while one runs
``best_checkpoint_<e>_*.pt``    the best model by the key validation metric
``<net>-<task>.safetensors``    the best model exported with :func:`medfuse.nets.save_weights`
``summary.json``                wall time, hardware, epochs, best validation metrics, files
``model_card.md``               a draft card (:func:`medfuse.engines.card.render_model_card`)
==============================  ===============================================================

Reproducibility: :func:`monai.utils.set_determinism` seeds everything before the network is built;
the data order is a :class:`~medfuse.engines.sampling.ResumableSampler`'s (a
``DistributedSampler``, one process or many) of ``(seed, epoch)``, and every item's augmentation
is seeded from ``(seed, epoch, index)`` (:class:`~medfuse.engines.sampling.SeededItems`), so the
data depend on nothing else (not on ``num_workers``); the global generators (used by losses or
networks) and the epoch's running sums are saved in every checkpoint. A run resumed from an
epoch-end or a mid-epoch checkpoint (``trainer#checkpoint_every_n_iterations``, a stop by
``trainer#stop_after_iterations`` or SIGTERM) repeats the uninterrupted one bit for bit on a given
machine and thread count.

The steps live in small modules: :mod:`~medfuse.engines.run_config` (settings, device,
components), :mod:`~medfuse.engines.run_folder` (the folder, ``config.json``, ``split.json``),
:mod:`~medfuse.engines.build` (trainer, evaluator, checkpointers),
:mod:`~medfuse.engines.handlers` (data seeds, running sums, the epoch log),
:mod:`~medfuse.engines.stops` (mid-epoch checkpoints, stops, SIGTERM) and
:mod:`~medfuse.engines.run_summary` (export, ``summary.json``, model card).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from medfuse.engines.handlers import EpochLog, terms_summary
from medfuse.engines.metrics_log import MetricsLog
from medfuse.engines.run_config import (
    RunComponents,
    RunPlace,
    RunSettings,
    build_components,
    config_value,
    resolve_device,
    resolve_threads,
)
from medfuse.engines.sampling import epoch_seed

__all__ = ["epoch_seed", "resolve_device", "resolve_threads", "run_training", "terms_summary"]


def _place_run(parser: Any, settings: RunSettings, output_dir: str | Path | None,
               device: str | None, resume: Any, overwrite: bool) -> RunPlace:
    """Pick the device and AMP dtype, prepare the run folder and agree on the resume checkpoint.

    Args:
        parser: the run's config.
        settings: its settings.
        output_dir, device, resume, overwrite: as :func:`run_training`'s.
    """
    import ignite.distributed as idist

    from medfuse.engines.run_folder import prepare_output
    from medfuse.engines.trainer import amp_dtype

    world_size, rank = idist.get_world_size(), idist.get_rank()
    dev = resolve_device(device or config_value(parser, "device", "auto"))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    amp = amp_dtype(settings.tcfg.get("amp", "auto"), dev)
    out = Path(output_dir or config_value(parser, "output_dir", f"runs/{settings.name}"))
    resume_from = prepare_output(out, resume, overwrite) if rank == 0 else None
    if world_size > 1:
        shared = idist.broadcast(str(resume_from or ""), src=0, safe_mode=True)
        resume_from = Path(str(shared)) if shared else None
    return RunPlace(world_size, rank, dev, amp, out, resume_from)


def _components(parser: Any, settings: RunSettings, place: RunPlace) -> RunComponents:
    """Build the components; then (rank 0) record the config and the split in the run folder."""
    from medfuse.engines.run_folder import write_run_inputs

    comp = build_components(parser, settings, place.device)
    if place.rank == 0:  # written once the components are built: a failed start leaves no run
        write_run_inputs(place.out, parser, settings.task, comp.train_ds, comp.val_ds,
                         resumed=place.resume_from is not None)
    return comp


def _metrics_log(settings: RunSettings, place: RunPlace, comp: RunComponents, columns: list[str],
                 resume_epoch: int | None) -> MetricsLog | None:
    """The run's :class:`~medfuse.engines.metrics_log.MetricsLog` (rank 0; else ``None``)."""
    if place.rank != 0:
        return None
    weights = comp.term_weights
    train_columns = ([f"train_{k}" for k in weights] + [f"train_share_{k}" for k in weights]
                     + ["train_background"])
    return MetricsLog(place.out, [*train_columns, *columns, *(["val_time_s"] if columns else [])],
                      resume_epoch=resume_epoch,
                      tensorboard=settings.tcfg.get("tensorboard", "auto"))


def _attach_last_checkpoint(trainer: Any, settings: RunSettings, last_ckpt: Any) -> None:
    """Write the resume checkpoint every ``trainer#checkpoint_every`` epochs and at the end."""
    from ignite.engine import Events

    every = int(settings.tcfg.get("checkpoint_every", 1))
    trainer.add_event_handler(Events.EPOCH_COMPLETED(every=every), last_ckpt)
    if settings.max_epochs % every:
        trainer.add_event_handler(Events.COMPLETED, last_ckpt)


def run_training(parser: Any, output_dir: str | Path | None = None, device: str | None = None,
                 resume: Any = None, overwrite: bool = False,
                 progress: bool | None = None) -> dict[str, Any]:
    """Train the configured network; return the run summary (also written to ``summary.json``).

    Args:
        parser: a :class:`monai.bundle.ConfigParser` from
            :func:`medfuse.engines.recipes.load_config`.
        output_dir: run folder (default: the config's ``output_dir``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: the config's
            ``device``.
        resume: ``None``; ``"auto"`` (the newest ``last_checkpoint_*.pt`` of the run folder); or
            a path.
        overwrite: replace a previous run in the folder instead of refusing.
        progress: progress bar; ``None``: when stderr is a terminal.

    Returns:
        The summary on rank 0; ``{}`` on the other processes.

    Raises:
        InputError, OutputError: bad data/config/output (one-line messages).
    """
    from medfuse.engines.build import attach_validation, build_trainer, resume_checkpointer
    from medfuse.engines.run_summary import RunTimes, export_best_model, run_summary, write_summary
    from medfuse.engines.stops import StopControl

    t_start = time.time()
    settings = RunSettings.from_parser(parser)
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    place = _place_run(parser, settings, output_dir, device, resume, overwrite)
    comp = _components(parser, settings, place)
    trainer = build_trainer(settings, place, comp, progress)
    validation = attach_validation(trainer, settings, place, comp)
    # the resume checkpoint is written after validation and the log, so it holds the best state
    last_ckpt, objects, start = resume_checkpointer(trainer, settings, place, comp,
                                                    validation.best_ckpt)
    mlog = _metrics_log(settings, place, comp, validation.columns,
                        start.epoch if start.path is not None else None)
    log = EpochLog(mlog, comp.optimizer, comp.term_weights, validation.columns,
                   validation.evaluator, settings.max_epochs, place.world_size, place.device)
    log.attach(trainer)
    _attach_last_checkpoint(trainer, settings, last_ckpt)
    stops = StopControl(place.out, objects, place.rank, settings.every_iters, settings.stop_after,
                        start.iteration, settings.max_epochs)
    stops.attach(trainer)
    t_train = time.time()
    with stops.on_sigterm():
        if start.epoch < settings.max_epochs:
            trainer.run()
    times = RunTimes(t_start, time.time() - t_train)
    if place.rank == 0:
        log.log_last_terms()
    if mlog is not None:
        mlog.close()
    if place.rank != 0:
        return {}
    rows = mlog.rows if mlog is not None else []
    best = export_best_model(settings, place, comp, validation, rows, int(trainer.state.epoch))
    summary = run_summary(settings, place, comp, trainer, validation, log, start, best,
                          stops.requested, times)
    write_summary(place.out, summary)
    return summary
