"""Mid-epoch checkpoints, and the stops that leave one: ``trainer#stop_after_iterations``, SIGTERM.

A ``mid_checkpoint_<iteration>.pt`` holds what the epoch-end ``last_checkpoint_<epoch>.pt``
holds (:func:`medfuse.engines.checkpoint.resume_objects`), written atomically; the epoch's own
checkpoint replaces it. A stop requested during an iteration takes effect at its end: a
mid-epoch checkpoint, or (at an epoch's end) the epoch's checkpoint, then the trainer ends.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Events

__all__ = ["StopControl"]

logger = logging.getLogger("medfuse.train")


class StopControl:
    """Writes mid-epoch checkpoints and ends training early when asked to.

    Args:
        out: the run folder.
        objects: the checkpointed objects by key (the resume objects and ``"checkpointer"``).
        rank: this process's rank (only rank 0 writes).
        every_iters: write a mid-epoch checkpoint every this many iterations (0: never).
        stop_after: stop after this many iterations of this run (0: never).
        start_iteration: the iteration the run (re)started from.
        max_epochs: the run's last epoch (a stop there is no stop).

    Attributes:
        requested: whether a stop was asked for (by ``stop_after`` or SIGTERM).
    """

    def __init__(self, out: Path, objects: dict[str, Any], rank: int, every_iters: int,
                 stop_after: int, start_iteration: int, max_epochs: int) -> None:
        self.out, self.objects, self.rank = out, objects, rank
        self.every_iters, self.stop_after = every_iters, stop_after
        self.start_iteration, self.max_epochs = start_iteration, max_epochs
        self.requested = False

    def attach(self, trainer: Any) -> None:
        """Check after each of ``trainer``'s iterations and at each epoch's end."""
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self.after_iteration)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self.after_epoch)

    def _remove_mid(self, keep: Path | None = None) -> None:
        for old in self.out.glob("mid_checkpoint_*.pt"):
            if old != keep:
                old.unlink()

    def write_mid(self, engine: Any) -> None:
        """Write ``mid_checkpoint_<iteration>.pt`` (rank 0) and delete older ones."""
        if self.rank != 0:
            return
        state = {k: o.state_dict() for k, o in self.objects.items()}
        path = self.out / f"mid_checkpoint_{engine.state.iteration}.pt"
        tmp = self.out / f".{path.name}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic: a kill leaves the previous file or this one, never half
        self._remove_mid(keep=path)

    def after_iteration(self, engine: Any) -> None:
        """Inside an epoch: checkpoint when due or stopping, then stop if asked to."""
        it, length = engine.state.iteration, engine.state.epoch_length or 0
        if self.stop_after and it - self.start_iteration >= self.stop_after:
            self.requested = True
        if length and it % length == 0:
            return  # the epoch-end checkpoint follows (then after_epoch)
        if self.requested or (self.every_iters and it % self.every_iters == 0):
            self.write_mid(engine)
        if self.requested:
            logger.info("stopped at iteration %d (epoch %d); resume with --resume", it,
                        engine.state.epoch)
            engine.terminate(skip_completed=True)

    def after_epoch(self, engine: Any) -> None:
        """After the epoch's checkpoint: drop the mid-epoch ones, stop if asked to."""
        if self.rank == 0:
            self._remove_mid()  # the epoch checkpoint is newer
        if self.requested and engine.state.epoch < self.max_epochs:
            logger.info("stopped after epoch %d; resume with --resume", engine.state.epoch)
            engine.terminate(skip_completed=True)

    @contextmanager
    def on_sigterm(self) -> Iterator[None]:
        """Within the block, SIGTERM asks for a stop (main thread only; restored afterwards)."""

        def request(signum: int, frame: Any) -> None:
            self.requested = True  # acted on at the end of the current iteration

        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, request)
        try:
            yield
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
