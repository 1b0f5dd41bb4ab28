"""Unreadable samples met during training: each logged with its path, counted per epoch, and
training stopped (exit 2, with the list) once they exceed DATASET.MAX_BAD_FRACTION."""
import os
import os.path as osp

from datasets import DataLoadingError


class TooManyBadSamples(DataLoadingError):
    """More unreadable samples in an epoch than DATASET.MAX_BAD_FRACTION allows."""


class BadSampleTracker:
    """This process's unreadable samples of the current epoch, and all processes' count."""

    def __init__(self, dataset, max_fraction, logger, report_path):
        self.dataset = dataset
        self.max_fraction = max_fraction
        self.limit = max_fraction * len(dataset)
        self.logger = logger
        self.report_path = report_path
        self.start_epoch(0)

    def start_epoch(self, epoch):
        self.epoch = epoch
        self.local = {}            # index -> description, in the order met
        self.total = 0             # over all processes

    def new_in_batch(self, bad):
        """Log the samples of a batch's `bad` field (>= 0) not met before this epoch; returns
        how many were new."""
        new = [int(i) for i in bad[bad >= 0].tolist() if int(i) not in self.local]
        for index in new:
            self.local[index] = self.dataset.describe(index)
            self.logger.warning('epoch %d: unreadable sample %s replaced by another',
                                self.epoch + 1, self.local[index])
        return len(new)

    def add_count(self, count):
        """Add the step's new unreadable samples over all processes; raise TooManyBadSamples
        once they exceed the allowed fraction of the training set."""
        self.total += int(count)
        if self.total > self.limit:
            self._write_report()
            listed = list(self.local.values())
            shown = '\n  '.join(listed[:20]) + (f'\n  ... and {len(listed) - 20} more'
                                                if len(listed) > 20 else '')
            raise TooManyBadSamples(
                f'{self.total} unreadable training samples in epoch {self.epoch + 1}: more than '
                f'DATASET.MAX_BAD_FRACTION={self.max_fraction:g} of {len(self.dataset)}. Fix or '
                f'remove them (all listed in {self.report_path}), or raise the fraction:\n  {shown}')

    def _write_report(self):
        os.makedirs(osp.dirname(self.report_path), exist_ok=True)
        with open(self.report_path, 'a', encoding='utf-8') as handle:
            for description in self.local.values():
                handle.write(f'epoch {self.epoch + 1}\t{description}\n')
