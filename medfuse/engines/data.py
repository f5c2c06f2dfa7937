"""Training data: the Harvard AANLIB pairs, a fixed validation split, and the papers' transforms.

A *pair* is a dict ``{"a": path, "b": path, "name": stem}`` (``a`` = CT, PET or SPECT; ``b`` = MRI;
PNG file names match across the two folders of a task). The training transforms of both papers are
MONAI dictionary transforms working on the keys ``"a"`` and ``"b"``:

- :class:`ToLumad` - RGB pseudo-colour (PET, SPECT) to its BT.601 full-range luma ``Y``
  (``0.299 R + 0.587 G + 0.114 B``, the ``Y`` of JPEG YCbCr), grey images unchanged;
- :class:`PatchGridDataset` and :class:`PatchCropd` - ECFusion's grid patches: one dataset item
  per (pair, patch), so an epoch visits every patch of every image exactly once, while the loaded
  pairs are cached once (not once per patch);
- :class:`RandSquareMaskd` - ECFusion's random 64x64 white or black square, seeded through MONAI's
  ``set_random_state``.

:func:`harvard_pairs`, :func:`validation_split` and :func:`harvard_datalist` build the data lists;
:func:`load_transforms` (cached) and :func:`patch_transforms` the papers' chains (the configs in
``pipelines/`` spell the same chains out as ``_target_`` lists).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    RandomizableTransform,
    Resized,
    ScaleIntensityRanged,
    apply_transform,
)
from monai.transforms.transform import TransformBackends
from torch.utils.data import Dataset as TorchDataset

from medfuse.errors import InputError

__all__ = [
    "TASK_FOLDERS",
    "PatchCropd",
    "PatchGridDataset",
    "RandSquareMaskd",
    "ToLumad",
    "grid_starts",
    "harvard_datalist",
    "harvard_pairs",
    "load_split",
    "load_transforms",
    "patch_transforms",
    "validation_split",
    "write_split",
]

#: task -> (task folder, source A folder, source B folder) under the Harvard root.
TASK_FOLDERS: dict[str, tuple[str, str, str]] = {
    "ct-mri": ("CT-MRI", "CT", "MRI"),
    "pet-mri": ("PET-MRI", "PET", "MRI"),
    "spect-mri": ("SPECT-MRI", "SPECT", "MRI"),
}

#: BT.601 luma weights (full range), as in :func:`medfuse.metrics.to_luma`.
_LUMA = (0.299, 0.587, 0.114)


def _task(task: str) -> str:
    key = task.lower()
    if key not in TASK_FOLDERS:
        raise InputError(f"unknown task {task!r}; use one of {', '.join(TASK_FOLDERS)}")
    return key


def harvard_pairs(root: str | Path, task: str) -> list[dict[str, str]]:
    """The training pairs of one task, sorted by file name.

    Args:
        root: the Harvard folder (``../shared/data/harvard``) holding ``CT-MRI/``, ``PET-MRI/``...
        task: ``"ct-mri"``, ``"pet-mri"`` or ``"spect-mri"``.

    Returns:
        ``[{"a": str, "b": str, "name": str}, ...]``; ``a`` is CT/PET/SPECT, ``b`` MRI.

    Raises:
        InputError: the folders are missing, empty, or their file names do not match.
    """
    folder, fa, fb = TASK_FOLDERS[_task(task)]
    da, db = Path(root) / folder / fa, Path(root) / folder / fb
    for d in (da, db):
        if not d.is_dir():
            raise InputError(f"{d}: data folder not found (set data_root to the Harvard folder)")
    names_a = {p.name for p in da.glob("*.png")}
    names_b = {p.name for p in db.glob("*.png")}
    if not names_a:
        raise InputError(f"{da}: no PNG images")
    if names_a != names_b:
        odd = sorted(names_a ^ names_b)[:3]
        raise InputError(
            f"{da.parent}: {fa}/ and {fb}/ hold different file names (e.g. {', '.join(odd)})"
        )
    return [{"a": str(da / n), "b": str(db / n), "name": Path(n).stem} for n in sorted(names_a)]


def validation_split(names: Sequence[str], fraction: float = 0.1, seed: int = 0) -> list[str]:
    """A fixed validation subset of ``names``, chosen by file name alone.

    Each name is ranked by ``sha256(f"{seed}:{name}")``; the ``round(fraction * n)`` lowest (at
    least one) are held out. The choice does not depend on listing order or platform, so the same
    names come out everywhere; ``pipelines/splits/harvard_val10.json`` records them.

    Args:
        names: file stems of one task's pairs.
        fraction: share held out for validation, in ``[0, 1)``.
        seed: changes the choice.

    Returns:
        the held-out names, sorted.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0 or not names:
        return []
    k = max(1, math.floor(fraction * len(names) + 0.5))
    ranked = sorted(names, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
    return sorted(ranked[:k])


def write_split(
    root: str | Path, path: str | Path, fraction: float = 0.1, seed: int = 0
) -> dict[str, Any]:
    """Compute the validation split of every task and write it as JSON (the file cards cite)."""
    split: dict[str, Any] = {
        "fraction": fraction,
        "seed": seed,
        "rule": "sha256(f'{seed}:{name}') ascending, round(fraction * n) held out",
    }
    for task in TASK_FOLDERS:
        names = [p["name"] for p in harvard_pairs(root, task)]
        val = validation_split(names, fraction, seed)
        split[task] = {"n_pairs": len(names), "n_train": len(names) - len(val), "validation": val}
    Path(path).write_text(json.dumps(split, indent=1) + "\n")
    return split


def load_split(path: str | Path, task: str) -> list[str]:
    """The validation names of ``task`` recorded in a split file written by :func:`write_split`."""
    path = Path(path)
    try:
        split = json.loads(path.read_text())
        return list(split[_task(task)]["validation"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path}: not a readable split file for {task} ({exc.__class__.__name__}: {exc})"
        ) from None


def grid_starts(
    image_size: int = 256, patch_size: int = 128, stride: int = 64
) -> list[tuple[int, int]]:
    """Top-left corners of the overlapping patch grid, row-major (ECFusion: 3x3 = 9 patches)."""
    if patch_size > image_size or stride <= 0:
        raise ValueError(f"bad patch grid: image {image_size}, patch {patch_size}, stride {stride}")
    ticks = list(range(0, image_size - patch_size + 1, stride))
    return [(y, x) for y in ticks for x in ticks]


def harvard_datalist(root: str | Path, task: str, subset: str = "train", val_fraction: float = 0.1,
                     split_seed: int = 0, split_file: str | Path | None = None,
                     limit: int | None = None) -> list[dict[str, Any]]:
    """The data list of one task and subset, ready for a MONAI dataset.

    Args:
        root: the Harvard folder.
        task: ``"ct-mri"``, ``"pet-mri"`` or ``"spect-mri"``.
        subset: ``"train"``, ``"val"`` or ``"all"``.
        val_fraction, split_seed: the split rule (:func:`validation_split`), used when
            ``split_file`` is ``None``.
        split_file: a JSON written by :func:`write_split`; its names are held out instead.
        limit: keep only the first ``limit`` pairs (for quick runs and tests).

    Returns:
        list of ``{"a", "b", "name"}`` dicts, sorted by name.
    """
    if subset not in ("train", "val", "all"):
        raise ValueError(f"subset must be 'train', 'val' or 'all', not {subset!r}")
    pairs = harvard_pairs(root, task)
    if split_file is not None:
        held = set(load_split(split_file, task))
        unknown = held - {p["name"] for p in pairs}
        if unknown:
            raise InputError(
                f"{split_file}: validation names not in the data: {', '.join(sorted(unknown)[:3])}"
            )
    else:
        held = set(validation_split([p["name"] for p in pairs], val_fraction, split_seed))
    if subset == "train":
        pairs = [p for p in pairs if p["name"] not in held]
    elif subset == "val":
        pairs = [p for p in pairs if p["name"] in held]
    if limit is not None:
        pairs = pairs[: int(limit)]
    return pairs


class ToLumad(MapTransform):
    """RGB to BT.601 full-range luma ``Y = 0.299 R + 0.587 G + 0.114 B``; 1-channel images pass.

    Works on channel-first images ``(C, H, W)``: ``C = 3`` (or 4: alpha is dropped) becomes
    ``(1, H, W)`` in the same value range (not rounded). Both papers fuse the ``Y`` channel of
    PET/SPECT with the MRI.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if img.shape[0] in (3, 4):
                w = torch.as_tensor(
                    _LUMA, dtype=img.dtype if img.is_floating_point() else torch.float32
                )
                d[key] = (img[:3].float() * w.view(3, 1, 1)).sum(0, keepdim=True)
            elif img.shape[0] != 1:
                raise ValueError(
                    f"{key}: expected 1, 3 or 4 channels, got shape {tuple(img.shape)}"
                )
        return d


class PatchCropd(MapTransform):
    """Crop a ``patch_size`` square whose top-left corner ``[y, x]`` is stored under ``start_key``.

    With :class:`PatchGridDataset` (which sets ``start_key``), this is ECFusion's split of each
    256x256 image into 9 overlapping 128x128 patches (stride 64). The crop is a view: nothing is
    copied or modified in place.
    """

    def __init__(
        self,
        keys: KeysCollection,
        patch_size: int | Sequence[int] = 128,
        start_key: str = "start",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        size = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
        self.patch_size = (int(size[0]), int(size[1]))
        self.start_key = start_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        y, x = (int(v) for v in d[self.start_key])
        h, w = self.patch_size
        for key in self.key_iterator(d):
            img = d[key]
            if y < 0 or x < 0 or y + h > img.shape[-2] or x + w > img.shape[-1]:
                raise ValueError(
                    f"{key}: patch at {(y, x)} of size {(h, w)} exceeds image {tuple(img.shape)}"
                )
            d[key] = img[..., y:y + h, x:x + w]
        return d


class PatchGridDataset(TorchDataset):
    """Every grid patch of every pair as its own item (ECFusion: 9 per pair).

    Item ``i`` is pair ``i // n`` of ``data`` (a dataset of whole, already loaded pairs, e.g. a
    :class:`monai.data.CacheDataset`) with ``"start"`` set to the corner of patch ``i % n`` of
    :func:`grid_starts`, passed through ``transform`` (which begins with :class:`PatchCropd`).
    ``len`` is ``n * len(data)``: 1440/2205/2997 for the paper's 160/245/333 CT/PET/SPECT pairs.
    MONAI's ``set_rnd`` and worker seeding reach ``transform``.

    Args:
        data: dataset of ``{"a", "b", ...}`` pairs, images ``(1, image_size, image_size)``.
        transform: applied to each ``{..., "start": [y, x]}`` item.
        image_size, patch_size, stride: the grid (:func:`grid_starts`).
    """

    def __init__(
        self,
        data: Sequence[Mapping[str, Any]],
        transform: Any = None,
        image_size: int = 256,
        patch_size: int = 128,
        stride: int = 64,
    ) -> None:
        self.data = data
        self.transform = transform
        self.starts = grid_starts(image_size, patch_size, stride)

    def __len__(self) -> int:
        return len(self.data) * len(self.starts)

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} patches")
        index %= len(self)
        n = len(self.starts)
        item = dict(self.data[index // n])
        item["start"] = list(self.starts[index % n])
        return apply_transform(self.transform, item) if self.transform is not None else item


class RandSquareMaskd(RandomizableTransform, MapTransform):
    """ECFusion's augmentation: with probability ``prob`` paint a square of ``size`` white or black.

    The square lies wholly inside the image at a uniformly random position; its value is drawn
    from ``values`` (white or black: ``(-1.0, 1.0)`` after scaling to ``[-1, 1]``).

    ``independent=True`` (the default, see docs/training.md) decides, places and colours the
    square separately for every key: one source then carries a flat region that the other does
    not, so the fused image must take that region from the other source, which is what the
    unsupervised max-intensity/max-gradient losses reward. ``independent=False`` paints the same
    square on all keys.

    Seeded through :meth:`set_random_state` (MONAI's data loaders do this per worker).

    Args:
        keys: the sources, e.g. ``("a", "b")``; images ``(C, H, W)``.
        prob: chance that a key (or, when not independent, the sample) is masked.
        size: square side in pixels (ECFusion: 64 on a 128x128 patch).
        values: the possible fill values (drawn uniformly).
        independent: one decision per key (True) or one shared by all keys (False).
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, keys: KeysCollection, prob: float = 0.5, size: int = 64,
                 values: Sequence[float] = (-1.0, 1.0), independent: bool = True,
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        if size <= 0:
            raise ValueError(f"mask size must be positive, got {size}")
        if not values:
            raise ValueError("values must hold at least one fill value")
        self.size = int(size)
        self.values = tuple(float(v) for v in values)
        self.independent = bool(independent)

    def _draw(self, shape: Sequence[int]) -> tuple[int, int, float] | None:
        h, w = int(shape[-2]), int(shape[-1])
        if self.size > h or self.size > w:
            raise ValueError(f"mask of size {self.size} does not fit an image of {h}x{w}")
        masked = self.R.rand() < self.prob
        y = int(self.R.randint(0, h - self.size + 1))
        x = int(self.R.randint(0, w - self.size + 1))
        v = self.values[int(self.R.randint(0, len(self.values)))]
        return (y, x, v) if masked else None

    def randomize(self, data: Any = None) -> None:  # noqa: D102 - draws happen per key in __call__
        pass

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        shared = None if self.independent else self._draw(d[keys[0]].shape)
        for key in keys:
            square = self._draw(d[key].shape) if self.independent else shared
            if square is None:
                continue
            y, x, v = square
            img = d[key].clone()
            img[..., y:y + self.size, x:x + self.size] = v
            d[key] = img
        return d


def load_transforms(input_size: int | None = None, mode: str = "area") -> Compose:
    """The deterministic (cacheable) chain: load the PNG pair, luma, scale 0..255 to ``[-1, 1]``.

    Args:
        input_size: when given, resize the whole pair to ``input_size`` squared with ``mode``
            (S3IMFusion trains on whole 256x256 pairs, so the paper recipe does not resize).

    Returns:
        a Compose giving plain float32 tensors ``(1, H, W)`` under ``"a"`` and ``"b"``.
    """
    keys = ("a", "b")
    chain = [
        LoadImaged(keys, reader="PILReader", reverse_indexing=False, image_only=True),
        EnsureChannelFirstd(keys),
        ToLumad(keys),
        ScaleIntensityRanged(keys, a_min=0.0, a_max=255.0, b_min=-1.0, b_max=1.0, clip=True),
    ]
    if input_size is not None:
        chain.append(Resized(keys, spatial_size=(input_size, input_size), mode=mode))
    chain.append(EnsureTyped(keys, dtype=torch.float32, track_meta=False))
    return Compose(chain)


def patch_transforms(
    patch_size: int = 128,
    input_size: int = 256,
    mask_prob: float = 0.5,
    mask_size: int = 64,
    independent: bool = True,
) -> Compose:
    """ECFusion's per-patch chain for :class:`PatchGridDataset` items of loaded pairs.

    :class:`PatchCropd`, :class:`RandSquareMaskd`, nearest-neighbour resize to ``input_size``
    (the paper: 128 -> 256; ``input_size=128`` skips the upsampling).

    Returns:
        a Compose giving float32 tensors ``(1, input_size, input_size)`` under ``"a"`` and ``"b"``.
    """
    keys = ("a", "b")
    return Compose([
        PatchCropd(keys, patch_size=patch_size),
        RandSquareMaskd(keys, prob=mask_prob, size=mask_size, independent=independent),
        Resized(keys, spatial_size=(input_size, input_size), mode="nearest"),
        EnsureTyped(keys, dtype=torch.float32, track_meta=False),
    ])
