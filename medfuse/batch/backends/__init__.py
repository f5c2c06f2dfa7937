"""Where batch studies run: a local process pool (default) or a Ray cluster.

A backend has ``start()``, ``run(studies, on_result, stop)`` and ``close()``: ``run`` calls
``on_result(result)`` in the calling thread as each study ends (in any order) and, once ``stop``
is set, stops the studies in progress, starts no new one and reports those as ``interrupted``.
"""

from __future__ import annotations

from typing import Any

from medfuse.batch.backends.results import not_started, skipped

__all__ = ["get_backend", "BACKENDS", "not_started", "skipped"]

#: backend names (``medfuse batch --backend``).
BACKENDS = ("local", "ray")


def get_backend(name: str, **kwargs: Any) -> Any:
    """A backend by name (``local`` or ``ray``); ``kwargs`` go to its constructor."""
    if name == "local":
        from medfuse.batch.backends.local import LocalBackend

        return LocalBackend(**kwargs)
    if name == "ray":
        from medfuse.batch.backends.ray_tasks import RayBackend

        return RayBackend(**kwargs)
    raise ValueError(f"unknown batch backend '{name}' (known: {', '.join(BACKENDS)})")
