"""Data order and augmentation seeds that make a run resumable at any iteration.

- :class:`SeededItems` seeds every item's random transforms from ``(seed, epoch, index)``, so an
  item's augmentation does not depend on the order, the worker that loads it, or the items before
  it (and ``trainer#num_workers`` no longer changes the results);
- :class:`ResumableSampler` is a :class:`~torch.utils.data.DistributedSampler` (order: a pure
  function of ``(seed, epoch)``) that can skip the batches a resumed epoch already trained on.

Together with the checkpointed model, optimiser, trainer counters and global random generators,
a run resumed from a mid-epoch checkpoint repeats the uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import Dataset, DistributedSampler

__all__ = ["ResumableSampler", "SeededItems", "epoch_seed", "item_seed"]


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The data seed of ``epoch`` (1-based) on process ``rank`` in a run seeded with ``seed``."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + int(rank) * 104_729) % (2**31 - 1)


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of item ``index`` in ``epoch`` of a run seeded with ``seed``."""
    mixed = int(seed) * 1_000_003 + int(epoch) * 7_919 * 104_729 + int(index) * 2_654_435_761
    return mixed % (2**31 - 1)


class SeededItems(Dataset):
    """Wraps a dataset; item ``i`` reseeds the random transforms inside it from :func:`item_seed`.

    MONAI's ``set_rnd`` reaches every ``Randomizable`` in the wrapped dataset (its transforms, a
    :class:`~medfuse.engines.data.PatchGridDataset`'s mask, ...). Call :meth:`set_epoch` at the
    start of each epoch (before the loader's workers start).

    Args:
        dataset: a map-style dataset.
        seed: the run's seed.
    """

    def __init__(self, dataset: Any, seed: int) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the seeds of ``epoch`` (1-based, as the trainer counts)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        from monai.data.utils import set_rnd

        set_rnd(self.dataset, item_seed(self.seed, self.epoch, index))
        return self.dataset[index]


class ResumableSampler(DistributedSampler):
    """A :class:`~torch.utils.data.DistributedSampler` whose next pass can skip its first items.

    Set :attr:`skip` (items, e.g. ``batches done * batch_size``) before the loader's iterator is
    made; it applies to that one pass and is then reset to 0. ``len`` stays the full epoch.
    """

    skip: int = 0

    def __iter__(self) -> Iterator[int]:
        order = list(super().__iter__())
        skip, self.skip = self.skip, 0
        return iter(order[skip:])
