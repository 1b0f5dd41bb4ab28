"""Data pipeline: metafile -> records -> sampled frames -> transforms -> batches.

`build_dataset(cfg, split)` and `build_loader(cfg, dataset, split)` are what the entry points use.
"""
import logging
import os
import os.path as osp

import numpy as np
import torch

from .clip_spec import ClipSpec
from .decoding import DecodeError
from .loaders import LOADERS, DataLoaderX, EpochShuffleSampler, ShardLoader
from .super_loader import DataLoadingError, SuperLoader, prepare_worker_process
from .shards import ShardDataset, ShardError, missing_shards, shard_list
from .records import (MetafileError, VideoRecord, check_metafile, parse_metafile, problem_report,
                      read_class_names)
from .transforms import ClipNormalizer, build_normalizer, build_transform
from .video_dataset import VideoDataset
from .video_probe import LONG_KEYFRAME_INTERVAL, survey_packets
from .worker_start import worker_context


class DatasetConfigError(ValueError):
    """A dataset setting that cannot work (unknown loader, ...)."""


def check_data(cfg, splits=('train', 'val')):
    """Everything about the data that can be checked before training starts, reported at once:
    the video folder, and every line of the metafiles (format, frame counts, labels against
    DATASET.CLASS_NUM, duplicates), or for splits read from packed shards their index and
    that their local shard files exist. Raises one MetafileError naming file:line for each."""
    problems = []
    paths = {'train': cfg.DATASET.TRAIN_META_PATH, 'val': cfg.DATASET.VAL_META_PATH}
    from_metafiles = [split for split in splits if not shard_spec(cfg, split)]
    root = cfg.DATASET.VIDEO_SEQ_PATH
    if from_metafiles and not osp.isdir(root):
        problems.append(f'DATASET.VIDEO_SEQ_PATH {root} is not a folder' + _dataset_hint(cfg))
    for split in splits:
        if split in from_metafiles:
            problems += check_metafile(paths[split], cfg.DATASET.CLASS_NUM, labelled=is_labelled(cfg))[1]
            continue
        spec = shard_spec(cfg, split)
        try:
            urls = shard_list(spec, cfg.DATASET.SHARD_INDEX)[0]
        except ShardError as err:
            problems.append(str(err))
            continue
        missing = missing_shards(urls)
        if missing:
            more = f' and {len(missing) - 5} more' if len(missing) > 5 else ''
            problems.append(f'{spec}: {len(missing)} of the {len(urls)} shard files it lists are '
                            f'missing: {", ".join(missing[:5])}{more}')
    if problems:
        raise MetafileError(problem_report(problems, 'the dataset settings and metafiles'))


def is_labelled(cfg):
    """Whether the task reads labels: pre-training (TRAIN.TASK 'pretrain') takes unlabelled
    metafiles, and ignores the labels of labelled ones."""
    return cfg.TRAIN.TASK != 'pretrain'


def shard_spec(cfg, split):
    """The shards `split` reads ('' = its metafile): DATASET.SHARDS for training and
    DATASET.VAL_SHARDS for validation, with DATASET.INPUT_TYPE 'shards'."""
    if cfg.DATASET.INPUT_TYPE != 'shards':
        return ''
    return cfg.DATASET.SHARDS if split == 'train' else cfg.DATASET.VAL_SHARDS


def _dataset_hint(cfg):
    """When DATASET.NAME names no folder under ROOT_PATH: the names that do."""
    root = cfg.DATASET.ROOT_PATH
    if osp.isdir(osp.join(root, cfg.DATASET.NAME)) or not osp.isdir(root):
        return ''
    names = sorted(name for name in os.listdir(root) if osp.isdir(osp.join(root, name)))
    return (f"; DATASET.NAME {cfg.DATASET.NAME!r} is not a dataset folder of {root} "
            f"(found: {', '.join(names) or 'none'})")


def build_dataset(cfg, split):
    """split 'train' (training metafile, augmentation), 'val' (validation metafile, one
    centre view) or 'test' (validation metafile, all VAL views)."""
    spec = shard_spec(cfg, split) if split != 'test' else ''
    if spec:
        return ShardDataset(spec, video_dataset(cfg, [], split), shuffle_buffer=cfg.DATASET.SHUFFLE_BUFFER,
                            index_url=cfg.DATASET.SHARD_INDEX,
                            class_num=cfg.DATASET.CLASS_NUM if is_labelled(cfg) else None)
    meta_path = cfg.DATASET.TRAIN_META_PATH if split == 'train' else cfg.DATASET.VAL_META_PATH
    records = parse_metafile(meta_path, cfg.DATASET.CLASS_NUM, labelled=is_labelled(cfg))
    warn_short_samples(records, ClipSpec.from_config(cfg).min_frames, meta_path)
    if split == 'train':
        warn_slow_seeking(records, cfg.DATASET.VIDEO_SEQ_PATH, meta_path)
    return video_dataset(cfg, records, split)


def warn_short_samples(records, needed, meta_path):
    """One warning when samples have fewer frames than the clip spans (their frames are
    repeated to fill it): how many, and the first one's file:line."""
    counts = getattr(records, 'num_frames', None)
    if counts is None:
        counts = np.array([record.num_frames for record in records], dtype=np.int64)
    short = np.flatnonzero(np.asarray(counts) < needed)
    if len(short):
        first = records[int(short[0])]
        logging.getLogger('dlac.data').warning(
            '%s: %d of %d samples have fewer frames than the %d the clip spans, e.g. %s with %d '
            '(%s); their frames are repeated to fill the clip', meta_path, len(short),
            len(records), needed, first.path, first.num_frames, first.where)


def warn_slow_seeking(records, root, meta_path, probe=3):
    """One warning when the first `probe` videos (their packets only: a few ms) have keyframes
    far apart, which makes every sampled frame cost many decoded ones: say so and point to the
    transcoder. Quiet for frame folders and for anything it cannot read (the loader names that)."""
    intervals = []
    for index in range(min(len(records), 10 * probe)):
        record = records[index]
        path = osp.join(root, record.path)
        if not record.is_video or not osp.isfile(path):
            continue
        try:
            intervals.append(survey_packets(path).keyframe_interval)
        except DecodeError:
            continue
        if len(intervals) == probe:
            break
    if intervals and min(intervals) > LONG_KEYFRAME_INTERVAL:
        logging.getLogger('dlac.data').warning(
            '%s: its videos have keyframes up to %d frames apart (the first %d looked at): each '
            'sampled frame costs up to that many decoded frames, so loading may starve the '
            'model. Re-encode them once with a keyframe every 8 frames: python -m '
            'DataTool.transcode --meta %s --root %s --out <new folder> (docs/data.md, '
            '"Decoding speed")', meta_path, max(intervals), len(intervals), meta_path, root)


def video_dataset(cfg, records, split, root=None, **options):
    """A VideoDataset of `records` (paths under `root`, DATASET.VIDEO_SEQ_PATH by default) set
    up from the config for `split`, as build_dataset and predict.py use it."""
    num_segments = cfg.VAL.NUM_SEGMENTS if split == 'test' else cfg.DATA.NUM_SEGMENTS
    return VideoDataset(records, root or cfg.DATASET.VIDEO_SEQ_PATH, split, build_transform(cfg, split),
                        sampling=cfg.DATASET.SAMPLING, num_segments=num_segments,
                        new_length=cfg.DATA.NEW_LENGTH, clip_len=cfg.DATA.CLIP_LEN,
                        frame_interval=cfg.DATA.FRAME_INTERVAL, num_clips=cfg.VAL.NUM_CLIPS,
                        img_format=cfg.DATASET.IMG_FORMAT, seed=cfg.SEED,
                        min_side=cfg.DATASET.SCALE_SIZE, modality=cfg.MODALITY,
                        flow_format=cfg.DATASET.FLOW_FORMAT, frame_start=cfg.DATASET.FRAME_START,
                        **options)


def build_loader(cfg, dataset, split, batch_size=None, sampler=None, num_replicas=1, rank=0,
                 report_dir=None):
    """A loader of the type DATASET.LOADER names; training shuffles with an epoch-seeded
    sampler and drops the last incomplete batch. Under DDP (`num_replicas` processes) each
    process loads its own shard: padded to equal size for training, exactly once each for
    validation and testing (so no video is counted twice in the metrics). Workers start from
    a clean process (worker_start.py); a stuck loader writes its workers' stacks into
    `report_dir` (the run's log folder)."""
    loader_cls = LOADERS.get(cfg.DATASET.LOADER)
    if loader_cls is None:
        raise DatasetConfigError(f"unknown DATASET.LOADER {cfg.DATASET.LOADER!r}; "
                                 f"choose one of {sorted(LOADERS)}")
    train = split == 'train'
    if batch_size is None:
        batch_size = cfg.TRAIN.BASE_BATCH_SIZE if train else cfg.VAL.BATCH_SIZE
    if isinstance(dataset, ShardDataset):
        return _shard_loader(cfg, dataset, batch_size, num_replicas, rank, report_dir)
    if sampler is None:
        sampler = EpochShuffleSampler(len(dataset), cfg.SEED, shuffle=train,
                                      num_replicas=num_replicas, rank=rank, pad=train)
    workers = cfg.DATASET.NUM_WORKERS
    drop_last = train and len(sampler) >= batch_size
    common = dict(batch_size=batch_size, sampler=sampler, num_workers=workers,
                  pin_memory=torch.cuda.is_available(), drop_last=drop_last,
                  prefetch_factor=cfg.DATASET.PREFETCH if workers > 0 else None,
                  multiprocessing_context=worker_context() if workers > 0 else None)
    if loader_cls is SuperLoader:
        return SuperLoader(dataset, timeout=cfg.DATASET.LOADER_TIMEOUT, report_dir=report_dir,
                           **common)
    extra = {'report_dir': report_dir} if issubclass(loader_cls, DataLoaderX) else {}
    return loader_cls(dataset, timeout=cfg.DATASET.LOADER_TIMEOUT if workers > 0 else 0,
                      persistent_workers=False, worker_init_fn=prepare_worker_process,
                      **common, **extra)


def begin_epoch(loader, epoch, skip_samples=0):
    """Before iterating `loader` for `epoch`: the dataset's and sampler's epoch (the seeds of
    order and augmentation), leaving out this process's first `skip_samples` (a resumed
    epoch)."""
    loader.dataset.set_epoch(epoch)
    order = loader.sampler if hasattr(loader.sampler, 'skip') else loader.dataset
    if order is not loader.dataset:
        order.set_epoch(epoch)
    order.skip(skip_samples)


def _shard_loader(cfg, dataset, batch_size, num_replicas, rank, report_dir):
    """A ShardLoader (DataLoaderX) over packed shards, whatever DATASET.LOADER says: the
    dataset splits the shards over processes and workers itself."""
    workers = cfg.DATASET.NUM_WORKERS
    dataset.num_replicas, dataset.rank = num_replicas, rank
    dataset.batch_size, dataset.workers = batch_size, max(workers, 1)
    return ShardLoader(dataset, batch_size=batch_size, num_workers=workers,
                       pin_memory=torch.cuda.is_available(),
                       timeout=cfg.DATASET.LOADER_TIMEOUT if workers > 0 else 0,
                       prefetch_factor=cfg.DATASET.PREFETCH if workers > 0 else None,
                       worker_init_fn=prepare_worker_process, report_dir=report_dir)


__all__ = ['begin_epoch', 'check_data', 'build_dataset', 'video_dataset', 'build_loader', 'build_normalizer', 'ClipNormalizer', 'DataLoaderX', 'EpochShuffleSampler', 'VideoDataset',
           'VideoRecord', 'parse_metafile', 'read_class_names', 'MetafileError', 'DecodeError',
           'DatasetConfigError', 'SuperLoader', 'DataLoadingError', 'ShardDataset', 'ShardError']
