"""medfuse.engines: unsupervised training of the fusion networks (see docs/training.md).

- :mod:`~medfuse.engines.data` - Harvard data lists, the fixed validation split, the papers'
  transforms (luma, grid patches, random square masks);
- :mod:`~medfuse.engines.trainer` - :class:`FusionTrainer` / :class:`FusionEvaluator` (MONAI
  workflows on ignite) and the :class:`FusionQuality` validation metric;
- :mod:`~medfuse.engines.checkpoint` - resume checkpoints (model, optimiser, epoch, RNG);
- :mod:`~medfuse.engines.metrics_log` - per-epoch CSV (and TensorBoard) log;
- :mod:`~medfuse.engines.recipes` - the papers' recipes and config loading with overrides;
- :mod:`~medfuse.engines.workflow` - :func:`run_training`, what ``medfuse train`` runs, in steps:
  :mod:`~medfuse.engines.run_config` (settings, components), :mod:`~medfuse.engines.run_folder`,
  :mod:`~medfuse.engines.build` (trainer, evaluator, checkpointers),
  :mod:`~medfuse.engines.handlers` (seeds, sums, epoch log), :mod:`~medfuse.engines.stops`
  (mid-epoch checkpoints, stops) and :mod:`~medfuse.engines.run_summary`;
- :mod:`~medfuse.engines.sampling` - resumable data order and per-item augmentation seeds;
- :mod:`~medfuse.engines.card` - model cards from a run's summary.

Names are imported lazily, so ``import medfuse.engines`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FusionTrainer": "trainer", "FusionEvaluator": "trainer", "FusionQuality": "trainer",
    "prepare_fusion_batch": "trainer", "amp_dtype": "trainer",
    "RNGState": "checkpoint", "find_last_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "MetricsLog": "metrics_log",
    "PAPER_RECIPES": "recipes", "load_config": "recipes", "parse_override": "recipes",
    "default_data_root": "recipes",
    "run_training": "workflow",
    "render_model_card": "card",
    "harvard_pairs": "data", "harvard_datalist": "data", "validation_split": "data",
    "ToLumad": "data", "PatchCropd": "data", "RandSquareMaskd": "data",
}

_SUBMODULES = {"card", "checkpoint", "data", "metrics_log", "recipes", "trainer", "workflow"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"medfuse.engines.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"medfuse.engines.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'medfuse.engines' has no attribute {name!r}")
