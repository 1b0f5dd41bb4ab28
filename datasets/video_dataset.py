"""VideoDataset: metafile records -> (uint8 clip tensor, label, index, bad sample index or -1)."""
import functools
import logging
import os.path as osp

import numpy as np
import torch
from torch.utils.data import Dataset

from .decoding import (DecodeError, decode_clip_regions, flow_reader, folder_reader,
                       is_video_file, load_flow_folder, load_frame_folder, load_video)
from .records import RecordTable
from .sampling import dense_indices, segment_indices


logger = logging.getLogger('dlac.data')
MAX_REPLACEMENTS = 10
REPLACEMENT_STREAM = 7919       # a seed stream of its own for choosing replacement samples


class VideoDataset(Dataset):
    """One sample per metafile record.

    mode 'train': random sampling and augmentation, returns [C, T, H, W].
    mode 'val':   centre sampling and centre crop, returns [C, T, H, W].
    mode 'test':  every view (clips x crops), returns [V, C, T, H, W].
    Clips are uint8 (see ClipNormalizer). Random choices depend only on (seed, epoch, index),
    so any worker layout and any resumed run produce the same samples. `min_side`: frames may
    be decoded smaller than stored, down to this short side (the transforms' resize target).
    """

    def __init__(self, records, root, mode, transform, sampling='segment', num_segments=3,
                 new_length=1, clip_len=8, frame_interval=2, num_clips=1,
                 img_format='img_{:05d}.jpg', seed=0, min_side=0, replace_bad=True,
                 modality='RGB', flow_format='flow_{}_{:05d}.jpg', frame_start=1):
        if mode not in ('train', 'val', 'test'):
            raise ValueError(f"mode must be 'train', 'val' or 'test', got {mode!r}")
        if sampling not in ('segment', 'dense'):
            raise ValueError(f"DATASET.SAMPLING must be 'segment' or 'dense', got {sampling!r}")
        self.records = RecordTable.from_records(records)    # compact: forked workers share it
        self.root = root
        self.mode = mode
        self.transform = transform
        self.sampling = sampling
        self.num_segments = num_segments
        self.new_length = new_length
        self.clip_len = clip_len
        self.frame_interval = frame_interval
        self.num_clips = num_clips if mode == 'test' else 1
        self.img_format = img_format
        self.seed = seed
        self.min_side = min_side
        self.replace_bad = replace_bad
        self.modality = modality
        self.flow_format = flow_format
        self.frame_start = frame_start      # number of a folder's first frame file (1, or 0: DLAC)
        # frames loaded per segment: RGBDiff needs one more than the differences it stacks
        self.segment_length = new_length + (1 if modality == 'RGBDiff' else 0)
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.records)

    def describe(self, index):
        """Where sample `index` comes from, for error messages."""
        path, where = self.records.path(index), self.records.where(index)
        return f'{path} ({where})' if where else path

    @property
    def labels(self):
        return self.records.labels.astype(np.int64)

    def frames_per_clip(self):
        if self.sampling == 'segment':
            return self.num_segments * self.segment_length
        return self.clip_len

    def sample_indices(self, num_frames, rng):
        train = self.mode == 'train'
        if self.sampling == 'segment':
            return segment_indices(num_frames, self.num_segments, self.segment_length, train, rng)
        return dense_indices(num_frames, self.clip_len, self.frame_interval, self.num_clips,
                             train, rng)

    def _load(self, index, rng):
        return self.load_record(self.records[index], rng)

    def load_record(self, record, rng):
        """The clip (or test views) of one VideoRecord, sampled and transformed with `rng`."""
        indices = self.sample_indices(record.num_frames, rng)
        path = osp.join(self.root, record.path)
        if self.modality == 'Flow':
            read = flow_reader(path, self.flow_format, self.frame_start)
            load = functools.partial(load_flow_folder, path, indices, self.flow_format,
                                     self.min_side, self.frame_start)
        elif is_video_file(record, path):
            return self.make_clip(load_video(path, indices, self.min_side), rng)
        else:
            read = folder_reader(path, self.img_format, self.frame_start)
            load = functools.partial(load_frame_folder, path, indices, self.img_format,
                                     self.min_side, self.frame_start)
        clip = self.clip_from_regions(indices, read, rng)
        return clip if clip is not None else self.make_clip(load(), rng)

    def clip_from_regions(self, indices, read, rng):
        """The clip decoded region by region (decoding.decode_clip_regions) when the transform
        allows it, else None. Test views (several crops of each frame) decode whole frames."""
        plan = getattr(self.transform, 'region_plan', None)
        if self.mode == 'test' or plan is None:
            return None
        return decode_clip_regions(indices, read, self.min_side,
                                   lambda height, width: plan(height, width, rng))

    def make_clip(self, frames, rng):
        """Decoded frames (sample_indices' order) -> the transformed clip, or the test views."""
        if self.mode != 'test':
            return self.transform(frames, rng)
        views = []
        per_clip = self.frames_per_clip()
        for start in range(0, len(frames), per_clip):
            clip_views = self.transform(frames[start:start + per_clip], rng)
            views.append(clip_views if clip_views.dim() == 5 else clip_views.unsqueeze(0))
        return torch.cat(views)

    def __getitem__(self, index):
        """(clip, label, index, bad): `bad` is -1, or the index of a sample that could not be
        read. Training then returns another sample in its place (index and label are that
        sample's); validation and testing return the bad sample's index and label with some
        other sample's clip, for the caller to leave out of the metrics."""
        try:
            return self._load(index, self._rng(index)), int(self.records.labels[index]), index, -1
        except DecodeError as err:
            if not self.replace_bad:
                raise
            logger.warning('cannot read %s: %s', self.describe(index), err)
            failure = err
        choices = np.random.default_rng((self.seed, self.epoch, index, REPLACEMENT_STREAM))
        for _ in range(MAX_REPLACEMENTS):
            other = int(choices.integers(len(self.records)))
            if other == index:
                continue
            try:
                clip = self._load(other, self._rng(other))
            except DecodeError:
                continue
            used = other if self.mode == 'train' else index
            return clip, int(self.records.labels[used]), used, index
        raise DecodeError(f'{self.describe(index)}: {failure}; and {MAX_REPLACEMENTS} samples '
                          f'drawn in its place could not be read either')

    def _rng(self, index):
        return np.random.default_rng((self.seed, self.epoch, index))
