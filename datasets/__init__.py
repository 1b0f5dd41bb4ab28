"""Data pipeline: metafile -> records -> sampled frames -> transforms -> batches.

`build_dataset(cfg, split)` and `build_loader(cfg, dataset, split)` are what the entry points use.
"""
import torch

from .decoding import DecodeError
from .loaders import LOADERS, DataLoaderX, EpochShuffleSampler
from .super_loader import DataLoadingError, SuperLoader, prepare_worker_process
from .records import MetafileError, VideoRecord, parse_metafile, read_class_names
from .transforms import ClipNormalizer, build_normalizer, build_transform
from .video_dataset import VideoDataset


class DatasetConfigError(ValueError):
    """A dataset setting that cannot work (unknown loader, ...)."""


def build_dataset(cfg, split):
    """split 'train' (training metafile, augmentation), 'val' (validation metafile, one
    centre view) or 'test' (validation metafile, all VAL views)."""
    meta_path = cfg.DATASET.TRAIN_META_PATH if split == 'train' else cfg.DATASET.VAL_META_PATH
    records = parse_metafile(meta_path, cfg.DATASET.CLASS_NUM)
    num_segments = cfg.VAL.NUM_SEGMENTS if split == 'test' else cfg.DATA.NUM_SEGMENTS
    return VideoDataset(records, cfg.DATASET.VIDEO_SEQ_PATH, split, build_transform(cfg, split),
                        sampling=cfg.DATASET.SAMPLING, num_segments=num_segments,
                        new_length=cfg.DATA.NEW_LENGTH, clip_len=cfg.DATA.CLIP_LEN,
                        frame_interval=cfg.DATA.FRAME_INTERVAL, num_clips=cfg.VAL.NUM_CLIPS,
                        img_format=cfg.DATASET.IMG_FORMAT, seed=cfg.SEED,
                        min_side=cfg.DATASET.SCALE_SIZE)


def build_loader(cfg, dataset, split, batch_size=None, sampler=None, num_replicas=1, rank=0):
    """A loader of the type DATASET.LOADER names; training shuffles with an epoch-seeded
    sampler and drops the last incomplete batch. Under DDP (`num_replicas` processes) each
    process loads its own shard: padded to equal size for training, exactly once each for
    validation and testing (so no video is counted twice in the metrics)."""
    loader_cls = LOADERS.get(cfg.DATASET.LOADER)
    if loader_cls is None:
        raise DatasetConfigError(f"unknown DATASET.LOADER {cfg.DATASET.LOADER!r}; "
                                 f"choose one of {sorted(LOADERS)}")
    train = split == 'train'
    if batch_size is None:
        batch_size = cfg.TRAIN.BASE_BATCH_SIZE if train else cfg.VAL.BATCH_SIZE
    if sampler is None:
        sampler = EpochShuffleSampler(len(dataset), cfg.SEED, shuffle=train,
                                      num_replicas=num_replicas, rank=rank, pad=train)
    workers = cfg.DATASET.NUM_WORKERS
    drop_last = train and len(sampler) >= batch_size
    common = dict(batch_size=batch_size, sampler=sampler, num_workers=workers,
                  pin_memory=torch.cuda.is_available(), drop_last=drop_last,
                  prefetch_factor=cfg.DATASET.PREFETCH if workers > 0 else None)
    if loader_cls is SuperLoader:
        return SuperLoader(dataset, timeout=cfg.DATASET.LOADER_TIMEOUT, **common)
    return loader_cls(dataset, timeout=cfg.DATASET.LOADER_TIMEOUT if workers > 0 else 0,
                      persistent_workers=False, worker_init_fn=prepare_worker_process, **common)


__all__ = ['build_dataset', 'build_loader', 'build_normalizer', 'ClipNormalizer', 'DataLoaderX', 'EpochShuffleSampler', 'VideoDataset',
           'VideoRecord', 'parse_metafile', 'read_class_names', 'MetafileError', 'DecodeError',
           'DatasetConfigError', 'SuperLoader', 'DataLoadingError']
