"""Checkpoints for resuming training: model, optimiser, trainer state, AMP scaler and RNG states.

Files are written by ignite's :class:`~ignite.handlers.Checkpoint` (atomic, rank 0 only) and hold
only tensors and plain Python containers, so they load with ``torch.load(weights_only=True)``:

- ``last_checkpoint_<epoch>.pt`` (kept: the latest one): everything :func:`resume_objects`
  lists (model, optimiser, trainer state, global RNGs, the loss's private generators, AMP
  scaler, the best-model checkpointer's record), enough to continue a run exactly;
- ``mid_checkpoint_<iteration>.pt``: the same inside an epoch
  (``trainer#checkpoint_every_n_iterations``,
  or a stop), deleted when the epoch's ``last_checkpoint`` is written;
- ``best_model_<epoch>_<metric>=<value>.pt`` (kept: the best one): the model alone plus
  ``network``/``kwargs``/``task``, which :func:`medfuse.nets.load_weights` reads directly.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "GeneratorStates",
    "RNGState",
    "Record",
    "find_last_checkpoint",
    "load_checkpoint",
    "resume_objects",
]


class RNGState:
    """The global random generators (Python, NumPy, torch CPU and CUDA) as a checkpointable object.

    ``state_dict()`` holds tensors and ints only (NumPy's MT19937 key as an int64 tensor), so the
    file stays loadable with ``weights_only=True``.
    """

    def state_dict(self) -> dict[str, Any]:
        """Current states of all global generators."""
        py_version, py_state, py_gauss = random.getstate()
        np_name, np_key, np_pos, np_has_gauss, np_gauss = np.random.get_state()
        out: dict[str, Any] = {
            "python": {
                "version": py_version,
                "state": torch.tensor(py_state, dtype=torch.int64),
                "gauss": py_gauss,
            },
            "numpy": {
                "name": np_name,
                "key": torch.from_numpy(np_key.astype(np.int64)),
                "pos": int(np_pos),
                "has_gauss": int(np_has_gauss),
                "gauss": float(np_gauss),
            },
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out["cuda"] = torch.cuda.get_rng_state_all()
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the generators saved by :meth:`state_dict`."""
        py = state["python"]
        random.setstate(
            (int(py["version"]), tuple(int(v) for v in py["state"].tolist()), py["gauss"])
        )
        n = state["numpy"]
        np.random.set_state(
            (
                n["name"],
                n["key"].numpy().astype(np.uint32),
                int(n["pos"]),
                int(n["has_gauss"]),
                float(n["gauss"]),
            )
        )
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            cuda = list(state["cuda"])[: torch.cuda.device_count()]
            torch.cuda.set_rng_state_all(cuda)


class GeneratorStates:
    """The private ``torch.Generator`` objects of a module tree (e.g. a seeded loss's permutations).

    Every attribute of ``module`` or its submodules that is a :class:`torch.Generator` is saved
    and restored by its dotted name, so a loss drawing from its own generator resumes exactly too.
    """

    def __init__(self, module: Any) -> None:
        self.module = module

    def _generators(self) -> dict[str, torch.Generator]:
        found: dict[str, torch.Generator] = {}
        if isinstance(self.module, torch.nn.Module):
            for prefix, sub in self.module.named_modules():
                for attr, value in vars(sub).items():
                    if isinstance(value, torch.Generator):
                        found[f"{prefix}.{attr}" if prefix else attr] = value
        return found

    def state_dict(self) -> dict[str, torch.Tensor]:
        """``{dotted attribute name: generator state}``."""
        return {k: g.get_state() for k, g in self._generators().items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore the generators saved by :meth:`state_dict` (by name)."""
        gens = self._generators()
        for k, v in state.items():
            if k in gens:
                gens[k].set_state(v)


class Record:
    """A constant stored in a checkpoint under its own key (e.g. ``network``), ignored on load."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def state_dict(self) -> Any:
        """The recorded value."""
        return self.value

    def load_state_dict(self, state: Any) -> None:  # noqa: D102 - constants are not restored
        pass


def resume_objects(
    trainer: Any,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The objects a resume checkpoint saves and restores.

    Args:
        trainer: the :class:`~medfuse.engines.trainer.FusionTrainer` (epoch, iteration, ...).
        model: the bare network (not the DDP wrapper).
        optimizer: its optimiser.
        loss: the loss; its private generators (if any) are saved as ``loss_rng``.
        extra: more stateful objects (AMP scaler, LR scheduler, the best-model checkpointer).

    Returns:
        ``{"model", "optimizer", "trainer", "rng", "loss_rng", ...}``.
    """
    objs: dict[str, Any] = {
        "model": model,
        "optimizer": optimizer,
        "trainer": trainer,
        "rng": RNGState(),
        "loss_rng": GeneratorStates(loss),
    }
    objs.update({k: v for k, v in (extra or {}).items() if v is not None})
    return objs


_LAST = re.compile(r"last_checkpoint_(\d+)\.pt$")
_MID = re.compile(r"mid_checkpoint_(\d+)\.pt$")


def find_last_checkpoint(folder: str | Path) -> Path | None:
    """The newest resume checkpoint in ``folder`` (``None`` when there is none).

    Candidates: the newest ``last_checkpoint_<epoch>.pt`` (epoch end) and the newest
    ``mid_checkpoint_<iteration>.pt`` (inside an epoch); the one with the higher trainer iteration
    wins (a mid-epoch file is normally deleted once its epoch's checkpoint is written).
    """
    folder = Path(folder)
    found = [
        (int(m.group(1)), p)
        for p in folder.glob("last_checkpoint_*.pt")
        if (m := _LAST.search(p.name))
    ]
    mids = [
        (int(m.group(1)), p)
        for p in folder.glob("mid_checkpoint_*.pt")
        if (m := _MID.search(p.name))
    ]
    last = max(found)[1] if found else None
    if not mids:
        return last
    mid_iteration, mid = max(mids)
    if last is None or mid_iteration > int(load_checkpoint(last)["trainer"]["iteration"]):
        return mid
    return last


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by the engine (``weights_only=True``: nothing is unpickled)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)
