"""Loaders: DataLoaderX (torch DataLoader with a background prefetch thread), SuperLoader
(super_loader.py) and the epoch-seeded shuffling sampler they share, one shard per process
under DDP."""
import gc

import torch
from prefetch_generator import BackgroundGenerator
from torch.utils.data import DataLoader, Sampler

from .super_loader import SuperLoader


def share_with_workers():
    """Call before loader workers fork: collect garbage, then move every live object to the
    collector's permanent generation, so a worker's gc.collect() does not write into (and
    un-share) the pages of the parent's objects (model, records, imported modules)."""
    gc.collect()
    gc.freeze()


class DataLoaderX(DataLoader):
    """DataLoader whose batches are fetched by a background thread, so the next batch is
    collated and ready while the model runs on the current one."""

    def __init__(self, *args, max_prefetch=2, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_prefetch = max_prefetch

    def __iter__(self):
        return BackgroundGenerator(super().__iter__(), max_prefetch=self.max_prefetch)


class ShardLoader(DataLoaderX):
    """DataLoaderX over a ShardDataset: its length is the dataset's batch count (each worker
    batches its own share, so the last batch of each may be short)."""

    def __len__(self):
        return self.dataset.num_batches()


class EpochShuffleSampler(Sampler):
    """A permutation that depends only on (seed, epoch): a resumed run sees the same order.

    With `num_replicas` > 1 (DDP) every process draws the same permutation and takes every
    num_replicas-th index from its `rank`. `pad` (training) repeats the first indices so that
    each process gets the same number and takes the same number of steps; without it
    (validation) each index is seen by exactly one process, counts may differ by one.
    `skip(n)` leaves out this process's first n indices of the current epoch only (resuming
    mid-epoch).
    """

    def __init__(self, num_samples, seed=0, shuffle=True, num_replicas=1, rank=0, pad=True):
        if not 0 <= rank < num_replicas:
            raise ValueError(f'rank {rank} outside 0..{num_replicas - 1}')
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.pad = pad
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch):
        self.epoch = epoch
        self.start = 0

    def skip(self, count):
        self.start = count

    def _own_indices(self):
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            order = list(range(self.num_samples))
        if self.pad and self.num_samples % self.num_replicas:
            missing = self.num_replicas - self.num_samples % self.num_replicas
            order += (order * (missing // max(len(order), 1) + 1))[:missing]
        return order[self.rank::self.num_replicas]

    def __iter__(self):
        return iter(self._own_indices()[self.start:])

    def __len__(self):
        """Counted, not drawn: DataLoader asks for the length often."""
        if self.pad:
            own = -(-self.num_samples // self.num_replicas)
        else:
            own = len(range(self.rank, self.num_samples, self.num_replicas))
        return max(own - self.start, 0)


LOADERS = {'SuperLoader': SuperLoader, 'DataLoaderX': DataLoaderX, 'DataLoader': DataLoader}
