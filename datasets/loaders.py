"""Loaders: DataLoaderX (torch DataLoader with a background prefetch thread), SuperLoader
(super_loader.py) and the epoch-seeded shuffling sampler they share, one shard per process
under DDP."""
import functools
import itertools
import queue
import threading
import weakref

import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler

from utils.stopping import StoppedWhileWaiting, check_stop_while_waiting

from .stuck_workers import WorkerWatch, watch_worker
from .super_loader import POLL_S, DataLoadingError, SuperLoader, samples_text
from .worker_start import worker_context


def _start_worker(dump_dir, init_fn, worker_id):
    """DataLoaderX's worker_init_fn: stacks on request (stuck_workers), then the caller's."""
    watch_worker(dump_dir, worker_id)
    if init_fn is not None:
        init_fn(worker_id)


class DataLoaderX(DataLoader):
    """DataLoader whose batches are fetched by a background thread, so the next batch is
    collated and ready while the model runs on the current one.

    As SuperLoader: workers start from a clean process (worker_start.py) unless
    `multiprocessing_context` says otherwise; a batch that does not come within `timeout`
    seconds raises a DataLoadingError naming the worker and the samples, with every worker's
    stack written to `report_dir` (stuck_workers.py); a stop signal ends the wait.
    """

    def __init__(self, *args, max_prefetch=2, report_dir=None, **kwargs):
        watch = None
        if kwargs.get('num_workers', 0) > 0:
            if kwargs.get('multiprocessing_context') is None:
                kwargs['multiprocessing_context'] = worker_context()
            watch = WorkerWatch(report_dir)
            kwargs['worker_init_fn'] = functools.partial(_start_worker, watch.dump_dir,
                                                         kwargs.get('worker_init_fn'))
        super().__init__(*args, **kwargs)
        self.max_prefetch = max_prefetch
        self._watch = watch
        self._running = None           # the torch iterator in use, for stopping its workers
        if watch is not None:
            weakref.finalize(self, watch.close)

    def __iter__(self):
        return _Prefetched(self._batches(), self.max_prefetch, self._stop_workers)

    def _batches(self):
        iterator = super().__iter__()
        self._running = iterator
        for number in itertools.count():
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except RuntimeError as err:
                if 'timed out' not in str(err) or self._watch is None:
                    raise
                raise self._stuck(iterator, number) from None
            yield batch

    def _stuck(self, iterator, number):
        """The DataLoadingError for batch `number` not coming within the timeout, after the
        report of every worker's stack is written."""
        workers = getattr(iterator, '_workers', [])
        task = getattr(iterator, '_task_info', {}).get(getattr(iterator, '_rcvd_idx', None))
        who = (f'worker {task[0]} (pid {workers[task[0]].pid})' if task and task[0] < len(workers)
               else 'a worker')
        if isinstance(self.dataset, IterableDataset):         # it draws its own samples
            samples = 'samples chosen by the dataset'
        else:
            indices = next(itertools.islice(iter(self._index_sampler), number, None))
            samples = samples_text(self.dataset, indices if isinstance(indices, list) else [indices])
        message = self._watch.stuck_message(type(self).__name__, self.timeout, number, samples,
                                            who, [(w, p.pid) for w, p in enumerate(workers)])
        self._stop_workers()
        return DataLoadingError(message)

    def _stop_workers(self):
        """End the running iterator's workers now (they may be stuck): its own shutdown then
        finds them gone instead of waiting for each."""
        for process in getattr(self._running, '_workers', []):
            if process.is_alive():
                process.terminate()


class _Prefetched:
    """Iterate `batches` in a background thread, `depth` batches ahead. The waiting side polls,
    so that a stop signal (utils.stopping) ends a wait for a batch that does not come:
    `on_stop` is called, then StoppedWhileWaiting is raised."""

    _DONE = object()

    def __init__(self, batches, depth, on_stop):
        self._queue = queue.Queue(max(depth, 1))
        self._on_stop = on_stop
        self._count = 0
        self._finished = False
        thread = threading.Thread(target=self._fill, args=(batches,), daemon=True,
                                  name='DataLoaderX-prefetch')
        thread.start()

    def _fill(self, batches):
        try:
            for batch in batches:
                self._queue.put((True, batch))
        except Exception as err:       # raised again on the consuming side
            self._queue.put((False, err))
        self._queue.put((True, self._DONE))

    def __iter__(self):
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        while True:
            try:
                ok, item = self._queue.get(timeout=POLL_S)
                break
            except queue.Empty:
                try:
                    check_stop_while_waiting(f'batch {self._count}')
                except StoppedWhileWaiting:
                    self._finished = True
                    self._on_stop()
                    raise
        if not ok:
            self._finished = True
            raise item
        if item is self._DONE:
            self._finished = True
            raise StopIteration
        self._count += 1
        return item


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
