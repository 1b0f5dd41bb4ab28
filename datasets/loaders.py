"""Loaders: DataLoaderX (torch DataLoader with a background prefetch thread) and the
epoch-seeded shuffling sampler they share."""
import torch
from prefetch_generator import BackgroundGenerator
from torch.utils.data import DataLoader, Sampler


class DataLoaderX(DataLoader):
    """DataLoader whose batches are fetched by a background thread, so the next batch is
    collated and ready while the model runs on the current one."""

    def __init__(self, *args, max_prefetch=2, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_prefetch = max_prefetch

    def __iter__(self):
        return BackgroundGenerator(super().__iter__(), max_prefetch=self.max_prefetch)


class EpochShuffleSampler(Sampler):
    """A permutation that depends only on (seed, epoch): a resumed run sees the same order."""

    def __init__(self, num_samples, seed=0, shuffle=True):
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.num_samples))
        generator = torch.Generator()
        generator.manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self):
        return self.num_samples


LOADERS = {'DataLoaderX': DataLoaderX, 'DataLoader': DataLoader}
