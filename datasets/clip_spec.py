"""What one model input is: which frames of a stretch of video, at what size, normalised how.

Evaluation gets this from the config; an exported model carries it in meta.json, so the demo
prepares a window of any video exactly as evaluation prepares a test view (centre crop,
segment centres or a dense clip), with or without the config and torch.
"""
from dataclasses import asdict, dataclass

import numpy as np

from .sampling import dense_indices, segment_indices
from .transforms import GroupCenterCrop, GroupResize


@dataclass(frozen=True)
class ClipSpec:
    sampling: str          # 'segment' (TSN, TSM) or 'dense' (3D models)
    frames: int            # T of the model input [N, 3, T, H, W]
    frame_interval: int    # dense: stride between frames
    new_length: int        # segment: consecutive frames loaded per segment
    scale_size: int        # short side before the centre crop
    crop_size: int
    mean: tuple
    std: tuple
    modality: str = 'RGB'  # RGBDiff: new_length + 1 frames a segment, differenced by the model
    channels: int = 3      # 2 for flow (x, y)
    value_range: float = 1.0      # the weights' input convention: (x / 255 * value_range -
    channel_order: str = 'RGB'    # mean) / std, channels in channel_order (see ClipNormalizer)

    @classmethod
    def from_config(cls, cfg, num_segments=None):
        """One test view: VAL.NUM_SEGMENTS segments (or `num_segments`: DATA.NUM_SEGMENTS for a
        training or validation clip), or one DATA.CLIP_LEN clip."""
        flow = cfg.MODALITY == 'Flow'
        per_segment = cfg.DATA.NEW_LENGTH + (1 if cfg.MODALITY == 'RGBDiff' else 0)
        if cfg.DATASET.SAMPLING == 'segment':
            frames = (num_segments or cfg.VAL.NUM_SEGMENTS) * per_segment
        else:
            frames = cfg.DATA.CLIP_LEN
        return cls(cfg.DATASET.SAMPLING, int(frames), int(cfg.DATA.FRAME_INTERVAL),
                   int(per_segment), int(cfg.DATASET.SCALE_SIZE), int(cfg.DATASET.CROP_SIZE),
                   tuple(cfg.DATASET.FLOW_MEAN if flow else cfg.DATASET.MEAN),
                   tuple(cfg.DATASET.FLOW_STD if flow else cfg.DATASET.STD), cfg.MODALITY,
                   2 if flow else 3, 1.0 if flow else float(cfg.DATASET.VALUE_RANGE),
                   'RGB' if flow else cfg.DATASET.CHANNEL_ORDER)

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        values['mean'], values['std'] = tuple(values['mean']), tuple(values['std'])
        return cls(**values)

    def to_dict(self):
        values = asdict(self)
        values['mean'], values['std'] = list(self.mean), list(self.std)
        return values

    @property
    def input_shape(self):
        return [self.channels, self.frames, self.crop_size, self.crop_size]

    @property
    def default_window(self):
        """Frames a window spans by default: a dense clip's span; for segments, 2 frames per
        segment (or at least 16)."""
        if self.sampling == 'dense':
            return self.frames * self.frame_interval
        return max(16, 2 * self.frames)

    @property
    def min_frames(self):
        """Frames a video needs so no frame of a view is repeated: a dense clip's span, or one
        frame per sampled frame of the segments."""
        return self.frames * self.frame_interval if self.sampling == 'dense' else self.frames

    def window_indices(self, start, length):
        """Frame indices of the view taken from frames [start, start + length)."""
        if self.sampling == 'segment':
            segments = self.frames // self.new_length
            local = segment_indices(length, segments, self.new_length, train=False)
        else:
            local = dense_indices(length, self.frames, self.frame_interval, 1, train=False)
        return start + local

    def resize(self, frames):
        """uint8 RGB [T, H, W, 3] -> short side scale_size (what the demo keeps in memory)."""
        return GroupResize(self.scale_size)(frames)

    def to_input(self, frames):
        """Resized uint8 RGB frames [T, H, W, 3] -> float32 model input [3, T, crop, crop]."""
        crop = GroupCenterCrop(self.crop_size)(frames).astype(np.float32)
        if self.channel_order == 'BGR':
            crop = crop[..., ::-1]
        crop = ((crop * (self.value_range / 255.0) - np.asarray(self.mean, np.float32))
                / np.asarray(self.std, np.float32))
        return np.ascontiguousarray(crop.transpose(3, 0, 1, 2), dtype=np.float32)
