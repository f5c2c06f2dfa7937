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
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from medfuse.errors import InputError, MedfuseError, OutputError

__all__ = ["epoch_seed", "resolve_device", "resolve_threads", "run_training", "terms_summary"]

logger = logging.getLogger("medfuse.train")

_RESERVED = {"_target_", "_requires_", "_disabled_", "_desc_", "_mode_"}
_ARTEFACTS = ("last_checkpoint_*.pt", "mid_checkpoint_*.pt", "best_checkpoint_*.pt", "metrics.csv", "summary.json",
              "config.json",
              "split.json", "model_card.md", "*.safetensors")


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The data seed of ``epoch`` (1-based) on process ``rank`` in a run seeded with ``seed``."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + int(rank) * 104_729) % (2**31 - 1)


def resolve_threads(setting: Any) -> int | None:
    """The torch thread count for ``trainer#threads``: ``None`` (leave torch's), an int, or ``"auto"``.

    ``"auto"``: the cores not busy right now, ``cpu_count - round(1-minute load average)``, at
    least 1 (on a shared machine, more threads than free cores make every thread wait).
    """
    if setting in (None, "", "default"):
        return None
    if setting == "auto":
        cores = os.cpu_count() or 1
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return max(1, min(cores, cores - round(load)))
    return max(1, int(setting))


def terms_summary(values: dict[str, float], weights: dict[str, float]) -> dict[str, Any]:
    """The loss terms, their weighted values and shares of the total, and a one-line text.

    Args:
        values: unweighted term values (e.g. epoch means).
        weights: each term's weight in the total (the loss's ``term_weights``).
    """
    weighted = {k: w * values[k] for k, w in weights.items() if k in values}
    total = sum(weighted.values())
    shares = {k: (v / total if total else float("nan")) for k, v in weighted.items()}
    text = ", ".join(f"{k} {values[k]:.4g} (x {weights[k]:g} = {weighted[k]:.4g}, {shares[k]:.1%})"
                     for k in weighted)
    return {"values": {k: values[k] for k in weighted}, "weighted": weighted, "shares": shares, "text": text}


def resolve_device(setting: str | None) -> torch.device:
    """``"auto"``/``None``: the local rank's GPU when CUDA is available, else the CPU."""
    if setting in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    dev = torch.device(setting)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {setting!r} requested but CUDA is not available")
    return dev


def _reason(exc: BaseException) -> str:
    """One line naming the innermost cause of a config failure (MONAI wraps it in RuntimeErrors)."""
    parts = []
    while exc is not None:
        text = " ".join(str(exc).split())
        parts.append(f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__)
        exc = exc.__cause__ or exc.__context__
    return parts[-1] if len(parts) == 1 else f"{parts[0][:160]} <- {parts[-1][:300]}"


def _medfuse_cause(exc: BaseException | None) -> MedfuseError | None:
    """The first MedfuseError in an exception's cause chain (MONAI wraps component errors)."""
    while exc is not None:
        if isinstance(exc, MedfuseError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _get(parser: Any, key: str, default: Any = None) -> Any:
    try:
        return parser.get_parsed_content(key)
    except KeyError:
        return default


def _network_record(parser: Any, model: torch.nn.Module) -> tuple[str, dict[str, Any]]:
    """Registry name and constructor kwargs of the configured network (for save_weights)."""
    from medfuse.nets import NETWORKS

    cls = type(model)
    where = f"{cls.__module__}:{cls.__name__}"
    names = [n for n, target in NETWORKS.items() if target == where]
    raw = parser["network_def"]
    kwargs = {k: _get(parser, f"network_def#{k}") for k in raw if k not in _RESERVED and k != "name"}
    name = names[0] if names else str(raw.get("name", cls.__name__.lower()))
    json.dumps(kwargs)  # must be JSON to go into the weights file's metadata
    return name, kwargs


def _hardware(device: torch.device, world_size: int) -> dict[str, Any]:
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


def _prepare_output(out: Path, resume: Any, overwrite: bool) -> Path | None:
    """Create the run folder; return the checkpoint to resume from (if any)."""
    from medfuse.engines.checkpoint import find_last_checkpoint
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
        if resume in (True, "auto", "last"):
            last = find_last_checkpoint(out)
            if last is None:
                raise InputError(f"{out}: no last_checkpoint_*.pt to resume from")
            return last
        path = Path(resume)
        if not path.is_file():
            raise InputError(f"{path}: checkpoint not found")
        return path
    existing = [p for pat in _ARTEFACTS for p in out.glob(pat)]
    if existing and not overwrite:
        raise OutputError(f"{out}: holds a previous run ({existing[0].name}); use --resume, --overwrite "
                          "or another --output")
    for p in existing:
        p.unlink()
    return None


def run_training(parser: Any, output_dir: str | Path | None = None, device: str | None = None,
                 resume: Any = None, overwrite: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Train the configured network; return the run summary (also written to ``summary.json``).

    Args:
        parser: a :class:`monai.bundle.ConfigParser` from :func:`medfuse.engines.recipes.load_config`.
        output_dir: run folder (default: the config's ``output_dir``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: the config's ``device``.
        resume: ``None``; ``"auto"`` (the newest ``last_checkpoint_*.pt`` of the run folder); or a path.
        overwrite: replace a previous run in the folder instead of refusing.
        progress: progress bar; ``None``: when stderr is a terminal.

    Raises:
        InputError, OutputError: bad data/config/output (one-line messages).
    """
    import ignite.distributed as idist
    from ignite.engine import Events
    from ignite.handlers import Checkpoint, DiskSaver, TerminateOnNan, global_step_from_engine
    from monai.data import DataLoader
    from monai.handlers import ValidationHandler
    from monai.utils import set_determinism
    from monai.utils.enums import CommonKeys as Keys

    from medfuse.engines.card import render_model_card
    from medfuse.engines.checkpoint import Record, resume_objects
    from medfuse.engines.metrics_log import MetricsLog
    from medfuse.engines.sampling import ResumableSampler, SeededItems
    from medfuse.engines.trainer import (
        FusionEvaluator,
        FusionQuality,
        FusionTrainer,
        amp_dtype,
        background_sums,
        baseline_means,
    )
    from medfuse.nets import save_weights
    from medfuse.nets.pretrained import sha256

    t_start = time.time()
    tcfg: dict[str, Any] = dict(_get(parser, "trainer", {}) or {})
    vcfg: dict[str, Any] = dict(_get(parser, "validation", {}) or {})
    name = str(_get(parser, "name", "run"))
    task = str(_get(parser, "task", ""))
    seed = int(_get(parser, "seed", 0))
    max_epochs = int(tcfg.get("max_epochs", 1))
    batch_size = int(tcfg.get("batch_size", 1))
    num_workers = int(tcfg.get("num_workers", 0))
    threads = resolve_threads(tcfg.get("threads"))
    if threads is not None:
        torch.set_num_threads(threads)
    every_iters = int(tcfg.get("checkpoint_every_n_iterations") or 0)
    stop_after = int(tcfg.get("stop_after_iterations") or 0)
    world_size, rank = idist.get_world_size(), idist.get_rank()
    dev = resolve_device(device or _get(parser, "device", "auto"))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    amp = amp_dtype(tcfg.get("amp", "auto"), dev)
    out = Path(output_dir or _get(parser, "output_dir", f"runs/{name}"))
    resume_from = _prepare_output(out, resume, overwrite) if rank == 0 else None
    if world_size > 1:
        resume_from = idist.broadcast(str(resume_from or ""), src=0, safe_mode=True) or None

    # ---- components (seeded before the network's initialisation)
    set_determinism(seed=seed)
    try:
        model = parser.get_parsed_content("network_def").to(dev)
        loss_fn = parser.get_parsed_content("loss")
        if isinstance(loss_fn, torch.nn.Module):
            loss_fn = loss_fn.to(dev)
        optimizer = parser.get_parsed_content("optimizer")
        train_ds = parser.get_parsed_content("train_dataset")
        val_ds = _get(parser, "val_dataset") if vcfg.get("enabled", True) else None
    except MedfuseError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to build a component is a config problem
        inner = _medfuse_cause(exc)  # e.g. WeightsError: the perceptual loss's VGG weights are missing
        if inner is not None:
            raise inner from None
        raise InputError(f"config: cannot build the training components ({_reason(exc)})") from None
    if len(train_ds) == 0:
        raise InputError("config: the training data list is empty")
    net_name, net_kwargs = _network_record(parser, model)
    if rank == 0:  # written once the components are built, so a failed start leaves no run behind
        from medfuse.io.guard import MARKER, write_marker

        if not (out / MARKER).exists():
            write_marker(out, "train")
        (out / "config.json").write_text(json.dumps(parser.get(), indent=1, default=str) + "\n")
        split = {"task": task, "validation": [d["name"] for d in (getattr(val_ds, "data", None) or [])],
                 "n_train_items": len(train_ds)}
        (out / "split.json").write_text(json.dumps(split, indent=1) + "\n")

    # ---- data loaders
    generator = torch.Generator()
    generator.manual_seed(epoch_seed(seed, 0))
    # A DistributedSampler also for one process: its order is a pure function of (seed, epoch) (MONAI's
    # Workflow calls set_epoch), unlike RandomSampler, whose shared generator a resumed run would
    # advance differently (an uninterrupted run draws a last permutation when the old iterator ends).
    # It skips the batches a mid-epoch resume has done; each item's augmentation is seeded by index.
    train_items = SeededItems(train_ds, seed)
    sampler = ResumableSampler(train_items, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    train_loader = DataLoader(train_items, batch_size=batch_size, shuffle=False, sampler=sampler,
                              num_workers=num_workers, generator=generator, drop_last=bool(tcfg.get("drop_last", False)),
                              pin_memory=dev.type == "cuda", persistent_workers=False)
    network = model
    if world_size > 1:
        network = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None)

    trainer = FusionTrainer(device=dev, max_epochs=max_epochs, train_data_loader=train_loader, network=network,
                            optimizer=optimizer, loss_function=loss_fn, amp=amp,
                            non_blocking=dev.type == "cuda")
    trainer.logger.setLevel(logging.WARNING)
    term_weights: dict[str, float] = dict(getattr(loss_fn, "term_weights", {}) or {})
    # the epoch's running sums and the first iteration's terms travel in the trainer's checkpoint
    trainer.state.epoch_sums, trainer.state.first_terms = {}, {}
    trainer.state_dict_user_keys.extend(["epoch_sums", "first_terms"])

    @trainer.on(Events.EPOCH_STARTED)
    def _reseed_data(engine: Any) -> None:
        sampler.set_epoch(engine.state.epoch)  # MONAI's Workflow does it too; explicit is clearer
        train_items.set_epoch(engine.state.epoch)
        generator.manual_seed(epoch_seed(seed, engine.state.epoch, rank))
        done = engine.state.iteration % engine.state.epoch_length if engine.state.epoch_length else 0
        sampler.skip = done * batch_size  # a mid-epoch resume continues with the next batch
        if done == 0:
            engine.state.epoch_sums = {}

    @trainer.on(Events.ITERATION_COMPLETED)
    def _accumulate(engine: Any) -> None:
        out, sums = engine.state.output, engine.state.epoch_sums
        bg_sum, bg_n = background_sums(out[Keys.PRED], out["a"], out["b"])
        new = {"n": 1.0, "loss": float(out[Keys.LOSS].detach()), "bg_sum": bg_sum, "bg_n": float(bg_n),
               **out.get("terms", {})}
        for k, v in new.items():
            sums[k] = sums.get(k, 0.0) + v
        if not engine.state.first_terms and rank == 0:
            engine.state.first_terms = {"iteration": engine.state.iteration, **out.get("terms", {}),
                                        "train_background": bg_sum / bg_n if bg_n else float("nan")}
            if term_weights:
                logger.info("loss terms at iteration %d: %s; background %.2f grey levels", engine.state.iteration,
                            terms_summary(engine.state.first_terms, term_weights)["text"],
                            engine.state.first_terms["train_background"])

    trainer.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan(output_transform=lambda o: o[Keys.LOSS]))
    show_progress = sys.stderr.isatty() if progress is None else progress
    if show_progress and rank == 0:
        from ignite.handlers import ProgressBar

        ProgressBar(persist=False).attach(trainer, output_transform=lambda o: {"loss": float(o[Keys.LOSS])})

    # ---- validation and best model (rank 0)
    key_metric = str(vcfg.get("key_metric", "Qabf"))
    evaluator = best_ckpt = None
    columns: list[str] = []
    baselines: dict[str, dict[str, float]] = {}
    if rank == 0 and val_ds is not None and len(val_ds) > 0:
        from medfuse.metrics import higher_is_better

        val_loader = DataLoader(val_ds, batch_size=int(vcfg.get("batch_size", tcfg.get("val_batch_size", 4))),
                                shuffle=False, num_workers=0)
        profile = str(vcfg.get("profile", "vifb"))
        base_names = list(vcfg.get("baselines") or [])
        if base_names:  # the classical methods on the same pairs, once per run
            baselines = baseline_means(val_loader, base_names, profile, vcfg.get("metrics"))
        quality = FusionQuality(profile=profile, metrics=vcfg.get("metrics"), baselines=baselines)
        columns = ((["val_loss"] if vcfg.get("loss", True) else []) + list(quality.scorer.metrics)
                   + ["val_background"] + (["baseline_score"] if base_names else []))
        if key_metric not in columns or key_metric == "val_background":
            raise InputError(f"config: validation#key_metric {key_metric!r} is not among the computed "
                             f"{', '.join(c for c in columns if c != 'val_background')}")
        if key_metric == "baseline_score":
            sign = 1.0
        else:
            sign = -1.0 if key_metric == "val_loss" or not higher_is_better(key_metric) else 1.0
        evaluator = FusionEvaluator(device=dev, val_data_loader=val_loader, network=model,
                                    loss_function=loss_fn if vcfg.get("loss", True) else None, amp=amp)
        evaluator.logger.setLevel(logging.WARNING)
        quality.attach(evaluator, "val")  # the best model is kept by the Checkpoint below
        best_ckpt = Checkpoint(
            {"model": model, "network": Record(net_name), "kwargs": Record(net_kwargs), "task": Record(task)},
            DiskSaver(str(out), require_empty=False, atomic=True), filename_prefix="best",
            score_function=lambda e: sign * float(e.state.metrics[key_metric]), score_name=key_metric,
            n_saved=1, global_step_transform=global_step_from_engine(trainer))
        evaluator.add_event_handler(Events.COMPLETED, best_ckpt)
        ValidationHandler(interval=int(vcfg.get("every_n_epochs", 1)), validator=evaluator).attach(trainer)

    # ---- per-epoch log, then the resume checkpoint (after validation, so it holds the best state)
    extra = {"scaler": trainer.scaler, "best_checkpointer": best_ckpt}
    to_save = resume_objects(trainer, model, optimizer, loss_fn, extra)
    last_ckpt = Checkpoint(to_save, DiskSaver(str(out), require_empty=False, atomic=True), filename_prefix="last",
                           n_saved=1, include_self=True, global_step_transform=lambda e, _: e.state.epoch)
    start_epoch = start_iteration = 0
    if resume_from is not None:
        from medfuse.engines.checkpoint import load_checkpoint

        ckpt = load_checkpoint(resume_from)
        missing = [k for k in to_save if k not in ckpt]
        if missing:
            raise InputError(f"{resume_from}: not a resume checkpoint of this config (lacks {', '.join(missing)})")
        for key in ("epoch_sums", "first_terms"):  # checkpoints written before these were kept
            ckpt["trainer"].setdefault(key, {})
        Checkpoint.load_objects({**to_save, "checkpointer": last_ckpt}, ckpt)
        start_epoch, start_iteration = int(trainer.state.epoch), int(trainer.state.iteration)
        trainer.state.max_epochs = max_epochs
        logger.info("resumed from %s at epoch %d, iteration %d", resume_from, start_epoch, start_iteration)
    train_columns = ([f"train_{k}" for k in term_weights] + [f"train_share_{k}" for k in term_weights]
                     + ["train_background"])
    mlog = None
    if rank == 0:
        mlog = MetricsLog(out, [*train_columns, *columns, *(["val_time_s"] if columns else [])],
                          resume_epoch=start_epoch if resume_from is not None else None,
                          tensorboard=tcfg.get("tensorboard", "auto"))
    epoch_times: list[float] = []
    last_terms: dict[str, Any] = {}

    @trainer.on(Events.EPOCH_COMPLETED)
    def _log_epoch(engine: Any) -> None:
        keys = sorted(engine.state.epoch_sums)
        sums = dict(zip(keys, [float(engine.state.epoch_sums[k]) for k in keys]))
        if world_size > 1:
            reduced = idist.all_reduce(torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=dev))
            sums = dict(zip(keys, torch.as_tensor(reduced).tolist()))
        n = max(sums.get("n", 0.0), 1.0)
        dt = float(engine.state.times.get("EPOCH_COMPLETED") or 0.0)  # the epoch's iterations only
        epoch_times.append(dt)
        row: dict[str, Any] = {"epoch": engine.state.epoch, "iteration": engine.state.iteration,
                               "train_loss": sums.get("loss", 0.0) / n,
                               "lr": float(optimizer.param_groups[0]["lr"]), "epoch_time_s": round(dt, 3),
                               "train_background": sums["bg_sum"] / sums["bg_n"] if sums.get("bg_n") else math.nan}
        if term_weights:
            terms = terms_summary({k: sums[k] / n for k in term_weights if k in sums}, term_weights)
            row.update({f"train_{k}": v for k, v in terms["values"].items()})
            row.update({f"train_share_{k}": v for k, v in terms["shares"].items()})
            last_terms.clear()
            last_terms.update({"epoch": engine.state.epoch, **terms["values"],
                               "train_background": row["train_background"]})
        if evaluator is not None and evaluator.state.epoch == engine.state.epoch:
            row.update({k: float(evaluator.state.metrics[k]) for k in columns if k in evaluator.state.metrics})
            row["val_time_s"] = round(float(evaluator.state.times.get("COMPLETED") or 0.0), 3)
        if mlog is not None:
            mlog.log(row)
            shown = ", ".join(f"{k} {row[k]:.4g}" for k in ["train_loss", "train_background", *columns]
                              if isinstance(row.get(k), float))
            logger.info("epoch %d/%d: %s (%.1f s)", engine.state.epoch, max_epochs, shown, dt)

    trainer.add_event_handler(Events.EPOCH_COMPLETED(every=int(tcfg.get("checkpoint_every", 1))), last_ckpt)
    if max_epochs % int(tcfg.get("checkpoint_every", 1)):
        trainer.add_event_handler(Events.COMPLETED, last_ckpt)

    # ---- mid-epoch checkpoints, and stops that leave one (stop_after_iterations, SIGTERM)
    stop = {"requested": False}

    def _write_mid(engine: Any) -> None:
        if rank != 0:
            return
        state = {k: o.state_dict() for k, o in {**to_save, "checkpointer": last_ckpt}.items()}
        path = out / f"mid_checkpoint_{engine.state.iteration}.pt"
        tmp = out / f".{path.name}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic: a kill leaves the previous file or this one, never half of one
        for old in out.glob("mid_checkpoint_*.pt"):
            if old != path:
                old.unlink()

    @trainer.on(Events.ITERATION_COMPLETED)
    def _mid_epoch(engine: Any) -> None:
        it, length = engine.state.iteration, engine.state.epoch_length or 0
        if stop_after and it - start_iteration >= stop_after:
            stop["requested"] = True
        if length and it % length == 0:
            return  # the epoch-end checkpoint follows (then _stop_at_epoch_end)
        if stop["requested"] or (every_iters and it % every_iters == 0):
            _write_mid(engine)
        if stop["requested"]:
            logger.info("stopped at iteration %d (epoch %d); resume with --resume", it, engine.state.epoch)
            engine.terminate(skip_completed=True)

    @trainer.on(Events.EPOCH_COMPLETED)
    def _stop_at_epoch_end(engine: Any) -> None:
        if rank == 0:
            for old in out.glob("mid_checkpoint_*.pt"):  # the epoch checkpoint is newer
                old.unlink()
        if stop["requested"] and engine.state.epoch < max_epochs:
            logger.info("stopped after epoch %d; resume with --resume", engine.state.epoch)
            engine.terminate(skip_completed=True)

    def _on_sigterm(signum: int, frame: Any) -> None:
        stop["requested"] = True  # acted on at the end of the current iteration

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    t_train = time.time()
    try:
        if start_epoch < max_epochs:
            trainer.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    train_wall = time.time() - t_train
    if last_terms and rank == 0:
        logger.info("loss terms, epoch %d means: %s; background %.2f grey levels", last_terms["epoch"],
                    terms_summary(last_terms, term_weights)["text"], last_terms["train_background"])
    if mlog is not None:
        mlog.close()
    if rank != 0:
        return {}

    # ---- export the best model (or the last one when nothing was validated)
    best_path = (out / Path(best_ckpt.last_checkpoint).name
                 if best_ckpt is not None and best_ckpt.last_checkpoint else None)
    best_metrics: dict[str, float] = {}
    best_epoch = int(trainer.state.epoch)
    if best_path is not None:
        from medfuse.engines.checkpoint import load_checkpoint

        model.load_state_dict(load_checkpoint(best_path)["model"])
        best_epoch = int(best_path.stem.split("_")[2])
        for row in (mlog.rows if mlog is not None else []):
            if int(row["epoch"]) == best_epoch:
                best_metrics = {k: float(row[k]) for k in columns if row.get(k) not in (None, "")}
    weights = out / f"{net_name}-{task or 'model'}.safetensors"
    save_weights(model, weights, net_name, net_kwargs, task or None,
                 extra={"config": name, "epoch": str(best_epoch), "seed": str(seed),
                        "key_metric": key_metric, "val_metrics": json.dumps(best_metrics)})
    iters = int(trainer.state.iteration)
    summary: dict[str, Any] = {
        "name": name, "network": net_name, "network_kwargs": net_kwargs, "task": task, "seed": seed,
        "epochs": int(trainer.state.epoch), "max_epochs": max_epochs, "iterations": iters,
        "completed": int(trainer.state.epoch) >= max_epochs,
        "resumed_from_epoch": start_epoch if resume_from is not None else None,
        "resumed_from_iteration": start_iteration if resume_from is not None else None,
        "stopped_early": bool(stop["requested"]) and int(trainer.state.iteration) < max_epochs * len(train_loader),
        "batch_size": batch_size, "world_size": world_size, "train_items": len(train_ds),
        "validation_items": len(val_ds) if val_ds is not None else 0,
        "amp": str(amp).replace("torch.", "") if amp is not None else None,
        "wall_time_s": round(time.time() - t_start, 2), "train_time_s": round(train_wall, 2),
        "mean_epoch_time_s": round(sum(epoch_times) / len(epoch_times), 3) if epoch_times else None,
        "seconds_per_iteration": round(sum(epoch_times) / max(iters - start_iteration, 1), 4)
        if epoch_times else None,
        "run_dir": str(out), "hardware": _hardware(dev, world_size),
        "validation": {"profile": vcfg.get("profile", "vifb"), "key_metric": key_metric,
                       "metrics": columns, "best_epoch": best_epoch if best_path is not None else None,
                       "best": best_metrics, "baselines": baselines},
        "loss_terms": {"weights": term_weights,
                       "first_iteration": dict(trainer.state.first_terms or {}),
                       "last_epoch": dict(last_terms)},
        "final_train_loss": float(mlog.rows[-1]["train_loss"]) if mlog is not None and mlog.rows else None,
        "files": {"weights": weights.name, "weights_sha256": sha256(weights),
                  "best_checkpoint": best_path.name if best_path is not None else None,
                  "metrics_csv": "metrics.csv", "split": "split.json", "config": "config.json"},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "model_card.md").write_text(render_model_card(summary))
    return summary

