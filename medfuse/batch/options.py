"""The ``medfuse fuse`` options a batch may set, checked with the fuse command's own click types.

A manifest row, the ``defaults`` section of a JSON manifest and the ``batch`` command line may set
any option of ``medfuse fuse`` but the inputs, the output and its overwrite/quiet/demo switches.
Keys are the option's flag without dashes, with ``-`` or ``_`` (``window-a``, ``window_a``,
``format``, ``batch-size``); values are converted and checked by the same click types ``fuse`` uses,
so a bad value fails before any study runs. Torch-free: only click is imported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

__all__ = ["fuse_options", "option_keys", "convert_option", "absolute_paths", "NOT_BATCH_OPTIONS"]

#: ``medfuse fuse`` parameters a batch does not take per study (batch has --force and -q; sending
#: to a PACS is a separate step: ``medfuse send OUT`` per finished study; the workers size their
#: own thread pools).
NOT_BATCH_OPTIONS = (
    "a",
    "b",
    "out_dir",
    "demo",
    "overwrite",
    "quiet",
    "send_pacs",
    "send_dicomweb",
    "called_aet",
    "calling_aet",
    "threads",
)


def fuse_options() -> list[click.Option]:
    """The ``medfuse fuse`` options a batch study may set (click objects, in the fuse order)."""
    from medfuse.fusion.flags import study_options

    return [p for p in study_options() if p.name not in NOT_BATCH_OPTIONS]


def option_keys() -> dict[str, click.Option]:
    """Every accepted spelling (``window-a``, ``window_a``, ``format``, ``formats``) -> option."""
    keys: dict[str, click.Option] = {}
    for p in fuse_options():
        assert p.name is not None
        keys[p.name] = p
        keys[p.name.replace("_", "-")] = p
        for flag in p.opts:
            if flag.startswith("--"):
                keys[flag[2:]] = p
                keys[flag[2:].replace("-", "_")] = p
    return keys


def convert_option(key: str, value: Any) -> tuple[str, Any]:
    """``(parameter name, converted value)`` for one manifest/defaults entry.

    An empty string or None means "not set" (the value is None). Switches (``skip-unreadable``,
    ``allow-different-patients``) take true/false, yes/no or 1/0 (JSON: a boolean).

    Raises:
        KeyError: ``key`` is not a batch option (message lists the known ones).
        click.BadParameter: the value is invalid for that option.
    """
    keys = option_keys()
    k = str(key).strip().lower().lstrip("-")
    if k not in keys:
        known = ", ".join(
            sorted({f[2:] for p in fuse_options() for f in p.opts if f.startswith("--")})
        )
        raise KeyError(f"unknown option '{key}' (known: {known})")
    p = keys[k]
    assert p.name is not None
    if value is None or (isinstance(value, str) and not value.strip()):
        return p.name, None
    if isinstance(value, bool) and p.is_flag:  # JSON true/false for a switch
        return p.name, value
    if isinstance(value, (list, tuple)) and p.name == "formats":
        value = ",".join(str(v) for v in value)
    if isinstance(value, (bool, list, tuple, dict)):
        raise click.BadParameter(f"expects a single value, got {value!r}")
    return p.name, p.type.convert(str(value).strip(), p, None)


def absolute_paths(flags: dict[str, Any], base: str | os.PathLike) -> dict[str, Any]:
    """``flags`` with the path options (``weights``, ``transform``) made absolute from ``base``."""
    paths = {p.name for p in fuse_options() if isinstance(p.type, click.Path)}
    out = dict(flags)
    for k, v in flags.items():
        if k in paths and v:
            out[k] = os.path.abspath(Path(base) / Path(str(v)).expanduser())
    return out
