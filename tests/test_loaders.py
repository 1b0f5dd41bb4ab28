"""SuperLoader and DataLoaderX: every sample once, reproducible order, failures surface with
the sample named, and no worker process outlives its loader."""
import gc
import os
import os.path as osp
import signal
import time

import numpy as np
import pytest
import torch

from datasets import (DataLoaderX, DataLoadingError, EpochShuffleSampler, SuperLoader,
                      VideoDataset, build_transform, parse_metafile)


class IndexDataset(torch.utils.data.Dataset):
    """Sample i is (a [2, 3] tensor filled with i, i, i); optional per-index faults."""

    def __init__(self, size, fail_at=None, kill_at=None, slow_at=None, jitter=False):
        self.size, self.fail_at, self.kill_at, self.slow_at = size, fail_at, kill_at, slow_at
        self.jitter = jitter
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.size

    def describe(self, index):
        return f'item-{index}.mp4 (meta.txt:{index + 1})'

    def __getitem__(self, index):
        if index == self.fail_at:
            raise ValueError(f'cannot decode item {index}')
        if index == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if index == self.slow_at:
            time.sleep(30)
        if self.jitter:
            time.sleep((index * 7919 % 5) * 0.002)
        return torch.full((2, 3), index + 1000 * self.epoch, dtype=torch.int16), index, index


def _is_helper(pid):
    """multiprocessing's resource tracker and forkserver, each started once per interpreter
    and alive until it exits: not loader workers (the workers are the forkserver's children,
    with its command line)."""
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as handle:
            command = handle.read()
    except OSError:
        return True
    return b'resource_tracker' in command or b'forkserver' in command


def child_pids():
    """Live processes started by this one, directly or through the forkserver (zombies and
    multiprocessing's helpers excluded), from /proc."""
    parents = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as handle:
                fields = handle.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ('Z', 'X'):
            parents[int(entry)] = int(fields[1])
    helpers = {pid for pid, parent in parents.items() if parent == os.getpid() and _is_helper(pid)}
    descendants, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - descendants
        descendants |= frontier
    return sorted(descendants - helpers)


def epoch_indices(loader):
    return [int(i) for _, _, indices in loader for i in indices]


def test_every_sample_once_per_epoch_in_sampler_order():
    dataset = IndexDataset(37, jitter=True)
    sampler = EpochShuffleSampler(len(dataset), seed=3)
    with SuperLoader(dataset, batch_size=4, sampler=sampler, num_workers=2) as loader:
        assert len(loader) == 10
        orders = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            dataset.set_epoch(epoch)
            batches = list(loader)
            assert [len(b[0]) for b in batches] == [4] * 9 + [1]
            clips = torch.cat([b[0] for b in batches])
            indices = torch.cat([b[2] for b in batches]).tolist()
            assert sorted(indices) == list(range(37))
            assert indices == list(sampler)
            # the clip really is the sample's, and the workers saw the epoch
            assert torch.equal(clips[:, 0, 0], torch.tensor(indices, dtype=torch.int16) + 1000 * epoch)
            orders.append(indices)
        assert orders[0] != orders[1]
    in_process = SuperLoader(dataset, batch_size=4, sampler=sampler, num_workers=0)
    assert epoch_indices(in_process) == orders[1]


def test_drop_last_and_same_order_with_any_worker_count():
    dataset = IndexDataset(23, jitter=True)
    orders = []
    for workers in (1, 2, 3):
        sampler = EpochShuffleSampler(len(dataset), seed=5)
        with SuperLoader(dataset, batch_size=5, sampler=sampler, num_workers=workers,
                         drop_last=True, prefetch_factor=1) as loader:
            orders.append(epoch_indices(loader))
    assert len(orders[0]) == 20 and len(set(orders[0])) == 20
    assert orders[0] == orders[1] == orders[2]


def test_epoch_left_early_then_a_full_epoch():
    dataset = IndexDataset(30, jitter=True)
    sampler = EpochShuffleSampler(len(dataset), seed=1, shuffle=False)
    with SuperLoader(dataset, batch_size=3, sampler=sampler, num_workers=2) as loader:
        for step, _ in enumerate(loader):
            if step == 2:
                break
        assert epoch_indices(loader) == list(range(30))
        assert epoch_indices(loader) == list(range(30))


def test_worker_exception_names_the_sample():
    dataset = IndexDataset(20, fail_at=13)
    before = set(child_pids())
    with SuperLoader(dataset, batch_size=4, num_workers=2) as loader:
        delivered = []
        with pytest.raises(DataLoadingError, match=r'sample 13 \(item-13.mp4 \(meta.txt:14\)\)'
                                                   r'.*ValueError: cannot decode item 13'):
            for _, _, indices in loader:
                delivered += indices.tolist()
        assert delivered == list(range(12))
        # the workers live on: the next epoch gets as far again and names the same sample
        with pytest.raises(DataLoadingError, match='sample 13 '):
            list(loader)
        assert set(child_pids()) - before == set(loader.worker_pids)
    with pytest.raises(DataLoadingError, match='sample 13 .*cannot decode item 13'):
        list(SuperLoader(dataset, batch_size=4, num_workers=0))


def test_worker_exception_from_a_real_metafile(tiny_root, tmp_path, cfg):
    """With replacement off (it is on in training and evaluation), a sample that cannot be
    read fails the loader with its path and metafile line."""
    root = osp.join(tiny_root, 'synthetic')
    good = open(osp.join(root, 'MetafileSeq', 'val_split1.txt')).read().splitlines()[:3]
    meta = tmp_path / 'val.txt'
    meta.write_text('\n'.join([good[0], 'no_such_video 20 1', good[1]]) + '\n')
    records = parse_metafile(str(meta))
    dataset = VideoDataset(records, osp.join(root, 'VideoSeq'), 'val',
                           build_transform(cfg, 'val'), num_segments=2, replace_bad=False)
    with SuperLoader(dataset, batch_size=1, num_workers=2) as loader:
        with pytest.raises(DataLoadingError, match=rf'sample 1 \(no_such_video \({meta}:2\)\).*'
                                                   r'DecodeError: cannot read image'):
            list(loader)


def test_dead_worker_is_reported_at_once():
    """Seen through the worker's process sentinel, not after the (here 600 s) timeout."""
    dataset = IndexDataset(40, kill_at=9)
    before = set(child_pids())
    loader = SuperLoader(dataset, batch_size=4, num_workers=2, timeout=600)
    with pytest.raises(DataLoadingError, match=r'died \(killed by SIGKILL\) while building '
                                               r'batch 2 \(samples \[8, 9, 10, 11\]\)'):
        list(loader)
    assert set(child_pids()) - before == set()
    with pytest.raises(DataLoadingError, match='closed'):
        iter(loader)


@pytest.mark.slow
def test_stuck_batch_raises_after_the_timeout():
    before = set(child_pids())
    loader = SuperLoader(IndexDataset(8, slow_at=5), batch_size=2, num_workers=2, timeout=1)
    with pytest.raises(DataLoadingError, match=r'no batch for 1s .*batch 2 \(samples \[4, 5\]: '):
        list(loader)
    assert set(child_pids()) - before == set()


def test_no_child_processes_after_close_or_garbage_collection():
    """Compared with the processes alive before, so that one an earlier test left still
    exiting (a subprocess, a DDP group) does not count: it made the test flaky."""
    before = set(child_pids())
    loader = SuperLoader(IndexDataset(16), batch_size=2, num_workers=2)
    next(iter(loader))
    pids = loader.worker_pids
    assert len(pids) == 2 and set(child_pids()) - before == set(pids)
    loader.close()
    assert set(child_pids()) - before == set()
    loader.close()

    def half_epoch():
        abandoned = SuperLoader(IndexDataset(16), batch_size=2, num_workers=2)
        iterator = iter(abandoned)
        next(iterator)
        return abandoned.worker_pids

    pids = half_epoch()
    gc.collect()
    assert len(pids) == 2 and set(child_pids()) - before == set()


class Ragged(IndexDataset):
    """Samples of two shapes (module level: workers receive their dataset pickled)."""

    def __getitem__(self, index):
        return torch.zeros(index % 2 + 1), index


def test_unequal_sample_shapes_are_refused():
    with SuperLoader(Ragged(4), batch_size=2, num_workers=1) as loader:
        with pytest.raises(DataLoadingError, match='sample 1 .*differ from the first'):
            list(loader)


def test_dataloaderx_matches_superloader_on_video_dataset(tiny_root, cfg):
    root = osp.join(tiny_root, 'synthetic')
    records = parse_metafile(osp.join(root, 'MetafileSeq', 'train_split1.txt'))[:10]
    dataset = VideoDataset(records, osp.join(root, 'VideoSeq'), 'train',
                           build_transform(cfg, 'train'), num_segments=3, seed=4)
    sampler = EpochShuffleSampler(len(dataset), seed=4)
    with SuperLoader(dataset, batch_size=4, sampler=sampler, num_workers=2) as loader:
        ours = list(loader)
    theirs = list(DataLoaderX(dataset, batch_size=4, sampler=sampler, num_workers=2))
    assert len(ours) == len(theirs) == 3
    for (clips, labels, indices, _), (clips_x, labels_x, indices_x, _) in zip(ours, theirs):
        assert clips.dtype == torch.uint8 and clips.shape[1:] == (3, 3, 64, 64)
        assert torch.equal(clips, clips_x) and torch.equal(labels, labels_x)
        assert torch.equal(indices, indices_x)
    assert np.array_equal(np.sort(torch.cat([b[2] for b in ours]).numpy()), np.arange(10))


def test_workers_start_after_the_parent_used_opencv_threads():
    """Forked workers must not reconfigure OpenCV's thread pool (that deadlocks the child)."""
    import cv2
    image = np.zeros((1500, 1500, 3), np.uint8)
    for _ in range(3):
        cv2.resize(image, (700, 700))
    with SuperLoader(IndexDataset(8), batch_size=2, num_workers=2, timeout=20) as loader:
        assert epoch_indices(loader) == list(range(8))
