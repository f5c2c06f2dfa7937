"""medfuse.batch: run ``medfuse fuse`` over a manifest of studies, in parallel, resumably.

* :func:`run_batch` - check a manifest, run each study on a backend, write the JSON report;
* :func:`load_manifest` / :class:`Study` - CSV/JSON manifests (:mod:`medfuse.batch.manifest`);
* :func:`run_study` - one study as a worker runs it: skip when complete, else fuse
  (:mod:`medfuse.batch.worker`);
* backends: a local process pool, or Ray tasks (:mod:`medfuse.batch.backends`).

See docs/batch.md. Importing this package is light (no torch, no ray).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["run_batch", "load_manifest", "Study", "run_study", "default_workers"]

_LAZY = {
    "run_batch": "medfuse.batch.runner",
    "default_workers": "medfuse.batch.runner",
    "load_manifest": "medfuse.batch.manifest",
    "Study": "medfuse.batch.manifest",
    "run_study": "medfuse.batch.worker",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
