"""Training recipes: the papers' hyper-parameters and MONAI-bundle-style config handling.

A training config (``pipelines/<net>_<task>.json``) is a MONAI bundle config: ``_target_``
components (``network_def``, ``loss``, ``optimizer``, ``train_transforms``, ``train_dataset``, ...)
and plain sections (``trainer``, ``validation``). :func:`load_config` merges one or more files
(later files override earlier keys; ``"trainer#max_epochs": 2`` in an overlay reaches into a
section) and then ``key=value`` overrides (:func:`parse_override`).

:data:`PAPER_RECIPES` records what the papers state, so tests can check the configs against it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medfuse.errors import InputError

__all__ = [
    "PAPER_RECIPES",
    "default_data_root",
    "load_config",
    "parse_override",
]

#: What the papers state (ECFusion, Luo et al. 2025, "Data preprocessing"/"Implementation
#: details"; S3IMFusion, Lv et al. 2025, "Datasets and training details").
PAPER_RECIPES: dict[str, dict[str, Any]] = {
    "ecfusion": {
        "optimizer": "Adam",
        "lr": 1e-3,
        "batch_size": 4,
        "max_epochs": 50,
        "lam": 0.02,
        "patch_size": 128,
        "stride": 64,
        "patches_per_image": 9,
        "mask_prob": 0.5,
        "mask_size": 64,
        "input_size": 256,
        "upsampling": "nearest",
        "value_range": (-1.0, 1.0),
        "patch_pairs": {"ct-mri": 1440, "pet-mri": 2205, "spect-mri": 2997},
    },
    "s3imfusion": {
        "optimizer": "Adam",
        "lr": 1e-3,
        "batch_size": 16,
        "max_epochs": 100,
        "gamma": (10.0, 5.0, 1.0),
        "input_size": 256,
        "value_range": (-1.0, 1.0),
    },
}


def default_data_root() -> str:
    """Where the Harvard training pairs are looked for.

    ``$MEDFUSE_HARVARD``, else ``$MEDFUSE_SHARED_DATA/harvard``, else ``../shared/data/harvard``
    beside the source checkout, else the same relative to the working directory.
    """
    if os.environ.get("MEDFUSE_HARVARD"):
        return os.environ["MEDFUSE_HARVARD"]
    if os.environ.get("MEDFUSE_SHARED_DATA"):
        return str(Path(os.environ["MEDFUSE_SHARED_DATA"]) / "harvard")
    beside = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "harvard"
    if beside.is_dir():
        return str(beside)
    return str(Path("..") / "shared" / "data" / "harvard")


def parse_override(text: str) -> tuple[str, Any]:
    """Split a ``key=value`` override.

    The key is a MONAI config id (``trainer#max_epochs``; ``::`` works too); a key without ``#``
    or ``::`` may use dots instead (``trainer.max_epochs``). The value is read as JSON when it
    parses (``2``, ``0.5``, ``true``, ``null``, ``[128, 128]``, ``"text"``), else taken as a string.

    Raises:
        ValueError: no ``=`` or an empty key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"override {text!r} is not key=value")
    if "#" not in key and "::" not in key:
        key = key.replace(".", "#")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def _exists(parser: Any, key: str) -> bool:
    try:
        parser[key]
    except (KeyError, IndexError, ValueError, TypeError):
        return False
    return True


def load_config(files: Sequence[str | Path], overrides: Sequence[str] = ()) -> Any:
    """Merge config files and apply overrides into a :class:`monai.bundle.ConfigParser`.

    Besides the files' own keys the parser gets ``config_dir`` (the folder of the first file),
    so a config can name files beside it (``"$@config_dir + '/splits/harvard_val10.json'"``).

    Args:
        files: JSON or YAML configs, merged in order.
        overrides: ``key=value`` strings (:func:`parse_override`), applied last. A key must name
            an existing entry or a new entry inside an existing section.

    Raises:
        InputError: a file is missing or unreadable.
        ValueError: a malformed override or one whose section does not exist.
    """
    from monai.bundle import ConfigParser
    from monai.bundle.utils import merge_kv

    if not files:
        raise InputError("no config file given")
    parser = ConfigParser(config={})
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise InputError(f"{path}: config file not found")
        try:
            content = ConfigParser.load_config_file(str(path))
        except Exception as exc:  # noqa: BLE001 - JSON/YAML decode errors of any kind
            raise InputError(
                f"{path}: not a readable config ({exc.__class__.__name__}: {exc})"
            ) from None
        if not isinstance(content, dict):
            raise InputError(f"{path}: a config must be a JSON/YAML mapping")
        for k, v in content.items():
            try:
                merge_kv(parser, k, v)
            except (KeyError, IndexError, ValueError, TypeError) as exc:
                raise InputError(f"{path}: cannot apply key {k!r} ({exc})") from None
    parser["config_dir"] = str(Path(files[0]).resolve().parent)
    for text in overrides:
        key, value = parse_override(text)
        parent = key.replace("::", "#").rsplit("#", 1)[0] if ("#" in key or "::" in key) else ""
        if parent and not _exists(parser, parent):
            raise ValueError(f"override {text!r}: the config has no section {parent!r}")
        try:
            parser[key] = value
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ValueError(f"override {text!r}: {exc}") from None
    _check_whole_numbers(parser)
    return parser


#: config entries that must be whole numbers (MONAI expressions "$..."/"@..." are not checked).
WHOLE_NUMBER_KEYS = (
    "trainer#max_epochs",
    "trainer#batch_size",
    "trainer#num_workers",
    "trainer#checkpoint_every",
    "trainer#val_batch_size",
    "validation#batch_size",
    "seed",
)


def _check_whole_numbers(parser: Any) -> None:
    """Fail in one line on a non-integer :data:`WHOLE_NUMBER_KEYS` entry (e.g. max_epochs=abc)."""
    for key in WHOLE_NUMBER_KEYS:
        if not _exists(parser, key):
            continue
        value = parser[key]
        if value is None or (isinstance(value, str) and value[:1] in ("$", "@", "%")):
            continue
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok or (isinstance(value, float) and value.is_integer())
        ok = ok or (isinstance(value, str) and value.strip().lstrip("-").isdigit())
        if not ok:
            raise InputError(f"config entry {key}: {value!r} is not a whole number")
