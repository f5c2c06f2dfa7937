"""The trainer's per-iteration and per-epoch bookkeeping (ignite event handlers).

- :func:`attach_data_seeding`: each epoch's data order and augmentation seeds (and the batches a
  mid-epoch resume skips);
- :func:`attach_term_sums`: the epoch's running sums of the loss, its terms and the background
  level, kept in ``trainer.state`` (so they travel in the checkpoints);
- :class:`EpochLog`: one ``metrics.csv`` row and one log line per epoch;
- :func:`terms_summary`: the loss terms, their weighted values and shares, as a line of text.

ignite and MONAI are imported when a handler is attached, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from medfuse.engines.metrics_log import MetricsLog
from medfuse.engines.sampling import ResumableSampler, SeededItems, epoch_seed

__all__ = ["EpochLog", "attach_data_seeding", "attach_term_sums", "terms_summary"]

logger = logging.getLogger("medfuse.train")


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
    return {"values": {k: values[k] for k in weighted}, "weighted": weighted, "shares": shares,
            "text": text}


def attach_data_seeding(trainer: Any, sampler: ResumableSampler, items: SeededItems,
                        generator: torch.Generator, seed: int, rank: int, batch_size: int) -> None:
    """At each epoch's start: the sampler's order, the items' seeds, the loader's generator.

    A mid-epoch resume skips the batches the epoch already trained on; a new epoch clears the
    running sums of :func:`attach_term_sums`.

    Args:
        trainer: the :class:`~medfuse.engines.trainer.FusionTrainer`.
        sampler, items, generator: the training loader's sampler, dataset and generator.
        seed, rank: the run's seed and this process's rank.
        batch_size: items per batch (to skip whole batches).
    """
    from ignite.engine import Events

    def reseed(engine: Any) -> None:
        sampler.set_epoch(engine.state.epoch)  # MONAI's Workflow does it too; explicit is clearer
        items.set_epoch(engine.state.epoch)
        generator.manual_seed(epoch_seed(seed, engine.state.epoch, rank))
        length = engine.state.epoch_length
        done = engine.state.iteration % length if length else 0
        sampler.skip = done * batch_size  # a mid-epoch resume continues with the next batch
        if done == 0:
            engine.state.epoch_sums = {}

    trainer.add_event_handler(Events.EPOCH_STARTED, reseed)


def attach_term_sums(trainer: Any, rank: int, term_weights: dict[str, float]) -> None:
    """Sum each iteration's loss, terms and background into ``trainer.state.epoch_sums``.

    The first iteration's terms go to ``trainer.state.first_terms`` (and the log, on rank 0).
    Both are user keys of the trainer's state dict, so checkpoints keep them.

    Args:
        trainer: the :class:`~medfuse.engines.trainer.FusionTrainer`.
        rank: this process's rank.
        term_weights: the loss's term weights (for the first iteration's log line).
    """
    from ignite.engine import Events
    from monai.utils.enums import CommonKeys as Keys

    from medfuse.engines.trainer import background_sums

    trainer.state.epoch_sums, trainer.state.first_terms = {}, {}
    trainer.state_dict_user_keys.extend(["epoch_sums", "first_terms"])

    def accumulate(engine: Any) -> None:
        out, sums = engine.state.output, engine.state.epoch_sums
        bg_sum, bg_n = background_sums(out[Keys.PRED], out["a"], out["b"])
        new = {"n": 1.0, "loss": float(out[Keys.LOSS].detach()), "bg_sum": bg_sum,
               "bg_n": float(bg_n), **out.get("terms", {})}
        for k, v in new.items():
            sums[k] = sums.get(k, 0.0) + v
        if not engine.state.first_terms and rank == 0:
            background = bg_sum / bg_n if bg_n else float("nan")
            engine.state.first_terms = {"iteration": engine.state.iteration,
                                        **out.get("terms", {}), "train_background": background}
            if term_weights:
                logger.info("loss terms at iteration %d: %s; background %.2f grey levels",
                            engine.state.iteration,
                            terms_summary(engine.state.first_terms, term_weights)["text"],
                            engine.state.first_terms["train_background"])

    trainer.add_event_handler(Events.ITERATION_COMPLETED, accumulate)


def _epoch_sums(engine: Any, world_size: int, device: torch.device) -> dict[str, float]:
    """The epoch's running sums, added up over all processes."""
    import ignite.distributed as idist

    keys = sorted(engine.state.epoch_sums)
    sums = dict(zip(keys, [float(engine.state.epoch_sums[k]) for k in keys]))
    if world_size > 1:
        values = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=device)
        sums = dict(zip(keys, torch.as_tensor(idist.all_reduce(values)).tolist()))
    return sums


class EpochLog:
    """At each epoch's end: one ``metrics.csv`` row (train means, terms, validation) and a log line.

    Args:
        mlog: the run's :class:`~medfuse.engines.metrics_log.MetricsLog` (``None`` off rank 0:
            those processes only take part in the sums' reduction).
        optimizer: the optimiser (its learning rate is logged).
        term_weights: the loss's term weights (columns ``train_<term>``, ``train_share_<term>``).
        columns: the validation columns; ``evaluator`` the evaluator (``None``: no validation).
        max_epochs: for the log line.
        world_size, device: to add up the sums over processes.

    Attributes:
        epoch_times: each logged epoch's training time in seconds.
        last_terms: the last epoch's mean terms and background (empty without terms).
    """

    def __init__(self, mlog: MetricsLog | None, optimizer: torch.optim.Optimizer,
                 term_weights: dict[str, float], columns: list[str], evaluator: Any,
                 max_epochs: int, world_size: int, device: torch.device) -> None:
        self.mlog, self.optimizer, self.term_weights = mlog, optimizer, term_weights
        self.columns, self.evaluator, self.max_epochs = columns, evaluator, max_epochs
        self.world_size, self.device = world_size, device
        self.epoch_times: list[float] = []
        self.last_terms: dict[str, Any] = {}

    def attach(self, trainer: Any) -> None:
        """Log at the end of each of ``trainer``'s epochs."""
        from ignite.engine import Events

        trainer.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _train_row(self, engine: Any, dt: float) -> dict[str, Any]:
        """The epoch's training columns (and :attr:`last_terms`)."""
        sums = _epoch_sums(engine, self.world_size, self.device)
        n = max(sums.get("n", 0.0), 1.0)
        background = sums["bg_sum"] / sums["bg_n"] if sums.get("bg_n") else math.nan
        row: dict[str, Any] = {"epoch": engine.state.epoch, "iteration": engine.state.iteration,
                               "train_loss": sums.get("loss", 0.0) / n,
                               "lr": float(self.optimizer.param_groups[0]["lr"]),
                               "epoch_time_s": round(dt, 3), "train_background": background}
        if self.term_weights:
            means = {k: sums[k] / n for k in self.term_weights if k in sums}
            terms = terms_summary(means, self.term_weights)
            row.update({f"train_{k}": v for k, v in terms["values"].items()})
            row.update({f"train_share_{k}": v for k, v in terms["shares"].items()})
            self.last_terms.clear()
            self.last_terms.update({"epoch": engine.state.epoch, **terms["values"],
                                    "train_background": background})
        return row

    def __call__(self, engine: Any) -> None:
        """Write the row of the epoch ``engine`` just finished."""
        dt = float(engine.state.times.get("EPOCH_COMPLETED") or 0.0)  # the epoch's iterations only
        self.epoch_times.append(dt)
        row = self._train_row(engine, dt)
        ev = self.evaluator
        if ev is not None and ev.state.epoch == engine.state.epoch:
            metrics = ev.state.metrics
            row.update({k: float(metrics[k]) for k in self.columns if k in metrics})
            row["val_time_s"] = round(float(ev.state.times.get("COMPLETED") or 0.0), 3)
        if self.mlog is not None:
            self.mlog.log(row)
            shown = ", ".join(f"{k} {row[k]:.4g}" for k in ["train_loss", "train_background",
                                                            *self.columns]
                              if isinstance(row.get(k), float))
            logger.info("epoch %d/%d: %s (%.1f s)", engine.state.epoch, self.max_epochs, shown, dt)

    def log_last_terms(self) -> None:
        """Log the last epoch's mean loss terms (when the loss has terms)."""
        if self.last_terms:
            logger.info("loss terms, epoch %d means: %s; background %.2f grey levels",
                        self.last_terms["epoch"],
                        terms_summary(self.last_terms, self.term_weights)["text"],
                        self.last_terms["train_background"])
