"""From ``medfuse fuse`` flags to a finished output: one entry point for ``fuse`` and ``batch``.

* :func:`options_from_flags` turns the command-line values of ``medfuse fuse`` (click's parameter
  names: ``axis="1"``, ``formats="nifti,png"``, ``quiet=True``, ...) into :class:`FuseOptions`;
* :func:`fuse_pair` fuses two inputs: two folders of 2D images pair by pair
  (:func:`~medfuse.fusion.folders.fuse_folders`), anything else as volumes
  (:func:`~medfuse.fusion.pipeline.fuse_volumes`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .options import FuseOptions

__all__ = ["options_from_flags", "fuse_pair"]


def options_from_flags(**flags: Any) -> FuseOptions:
    """:class:`~medfuse.fusion.options.FuseOptions` from ``medfuse fuse`` flag values.

    The flags are the options' own fields under click's names; ``quiet`` is ``not progress`` and
    a flag left out or None takes the option's default. :class:`FuseOptions` normalises the
    values (``axis="1"`` -> 1, ``formats="nifti,png"`` -> a tuple, the palette upper-cased).

    Args:
        flags: click parameter names of ``medfuse fuse`` (``method``, ``task``, ``weights``,
            ``reference``, ``register``, ``transform``, ``axis``, ``device``, ``batch_size``,
            ``window_a``, ``window_b``, ``functional``, ``palette``, ``formats`` (comma list),
            ``series_a``, ``series_b``, ``overwrite``, ``quiet``).
    """
    f = {k: v for k, v in flags.items() if v is not None}
    quiet = bool(f.pop("quiet", False))
    return FuseOptions(**f, progress=not quiet)


def fuse_pair(
    a: str | os.PathLike,
    b: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: Any = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fuse A with B into ``out_dir`` as ``medfuse fuse`` does; returns the run.json record.

    Two folders of 2D images go to :func:`~medfuse.fusion.folders.fuse_folders`, anything else
    to :func:`~medfuse.fusion.pipeline.fuse_volumes` (same arguments and errors).
    """
    from medfuse.fusion.folders import is_image_folder

    if is_image_folder(a) and is_image_folder(b):
        from medfuse.fusion.folders import fuse_folders

        return fuse_folders(a, b, out_dir, options, log=log)
    from medfuse.fusion.pipeline import fuse_volumes

    return fuse_volumes(os.fspath(a), os.fspath(b), os.fspath(out_dir), options, log=log).run
