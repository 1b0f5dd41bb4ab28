"""Group transforms: the same spatial operation on every frame of a clip.

Clips stay uint8 numpy arrays [T, H, W, C] through the group transforms; multi-view
transforms (three/ten crop) return [V, T, h, w, C]. `ToClipTensor` ends the dataset's part:
a uint8 tensor [..., C, T, H, W], four times smaller than float to pass between processes and
to copy to a GPU. `ClipNormalizer` makes the float input on the model's device, in the
training and evaluation loops. Random transforms take an explicit numpy Generator so a sample
is reproducible from the seed.
"""
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .rand_augment import ClipRandAugment, ClipRandomErasing


def _resize_frames(frames, width, height):
    """Bilinear (half-pixel centres), as TSN and mmaction2 resize; area averaging only when
    shrinking at least 2x, where bilinear would alias.

    Bilinear runs as one torch call over the whole clip, on a zero-copy channels-last view.
    At one thread, over the crop sizes of TSN's multi-scale crop, torch's uint8 kernel takes
    about 20% less time than cv2.resize frame by frame (3x less where one side keeps its
    length), and agrees with it to within 1 grey level.
    """
    if frames.shape[2] == width and frames.shape[1] == height:
        return frames
    if min(frames.shape[2] / width, frames.shape[1] / height) >= 2:
        out = np.empty((len(frames), height, width, frames.shape[3]), dtype=frames.dtype)
        for frame, target in zip(frames, out):
            cv2.resize(frame, (width, height), dst=target, interpolation=cv2.INTER_AREA)
        return out
    if any(stride < 0 for stride in frames.strides):             # torch takes no mirrored views
        frames = np.ascontiguousarray(frames)
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2)          # [T, C, H, W], channels-last
    resized = F.interpolate(clip, size=(height, width), mode='bilinear', align_corners=False)
    return np.ascontiguousarray(resized.permute(0, 2, 3, 1).numpy())


def _flip_frames(frames, out, flow=False):
    """Mirror every frame left-right into `out` (which may be `frames` itself). Flow fields
    (flow=True, channel 0 = x) also change sign in x: 255 - x, as TSN does."""
    for frame, target in zip(frames, out):
        cv2.flip(frame, 1, dst=target)
    if flow:
        np.subtract(255, out[..., 0], out=out[..., 0])
    return out


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, frames, rng=None):
        for transform in self.transforms:
            frames = transform(frames, rng)
        return frames

    def region_plan(self, height, width, rng):
        """For frames of height x width: (box, finish) when these transforms begin by keeping
        one region of every frame (resizes that keep the size, then a crop), so a decoder
        need only decode box = (x, y, w, h) and finish(regions) gives what __call__ gives,
        drawing from `rng` in the same order. None, with nothing drawn, otherwise."""
        steps = list(self.transforms)
        while steps and isinstance(steps[0], GroupResize) and steps[0].keeps(height, width):
            steps.pop(0)
        if not steps or not hasattr(steps[0], 'crop_region'):
            return None
        planned = steps[0].crop_region(height, width, rng)
        if planned is None:
            return None
        box, after_crop = planned
        rest = Compose(steps[1:])
        return box, lambda regions: rest(after_crop(regions), rng)


class GroupResize:
    """Resize so the short side equals `size`, keeping the aspect ratio."""

    def __init__(self, size):
        self.size = int(size)

    def _new_size(self, height, width):
        if height <= width:
            return self.size, max(1, round(width * self.size / height))
        return max(1, round(height * self.size / width)), self.size

    def keeps(self, height, width):
        """Whether frames of this size come out unchanged."""
        return self._new_size(height, width) == (height, width)

    def __call__(self, frames, rng=None):
        new_h, new_w = self._new_size(*frames.shape[1:3])
        return _resize_frames(frames, new_w, new_h)


class GroupMultiScaleCrop:
    """TSN's corner/centre cropping with random scale and aspect jitter, then resize.

    Crop sides are drawn from `scales` x short side (width and height at most `max_distort`
    scale steps apart); the crop sits at one of 5 fixed positions (13 with more_fix_crop).
    `flip=True` then mirrors the clip with probability 0.5, the same draw as
    GroupRandomHorizontalFlip after this transform, done in place on the resized frames
    (one pass less over the clip).
    """

    def __init__(self, size, scales=(1.0, 0.875, 0.75, 0.66), max_distort=1, more_fix_crop=True,
                 flip=False, flow=False):
        self.size = int(size)
        self.scales = list(scales)
        self.max_distort = max_distort
        self.more_fix_crop = more_fix_crop
        self.flip = flip
        self.flow = flow

    def _crop_box(self, height, width, rng):
        base = min(height, width)
        sides = [int(base * scale) for scale in self.scales]
        sides = [self.size if abs(side - self.size) < 3 else side for side in sides]
        pairs = [(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides)
                 if abs(i - j) <= self.max_distort]
        crop_w, crop_h = pairs[rng.integers(len(pairs))]
        step_w, step_h = (width - crop_w) // 4, (height - crop_h) // 4
        offsets = [(0, 0), (4 * step_w, 0), (0, 4 * step_h), (4 * step_w, 4 * step_h),
                   (2 * step_w, 2 * step_h)]
        if self.more_fix_crop:
            offsets += [(0, 2 * step_h), (4 * step_w, 2 * step_h), (2 * step_w, 4 * step_h),
                        (2 * step_w, 0), (step_w, step_h), (3 * step_w, step_h),
                        (step_w, 3 * step_h), (3 * step_w, 3 * step_h)]
        x, y = offsets[rng.integers(len(offsets))]
        return x, y, crop_w, crop_h

    def crop_region(self, height, width, rng):
        """(box, finish): the crop box drawn for frames of this size, and what follows the
        crop (resize to `size`, the flip draw)."""
        box = self._crop_box(height, width, rng)
        return box, lambda cropped: self._resize_and_flip(cropped, rng)

    def _resize_and_flip(self, cropped, rng):
        resized = _resize_frames(cropped, self.size, self.size)
        if not (self.flip and rng.random() < 0.5):
            return resized
        if resized is cropped:                   # no resize happened: the frames are the input's
            return _flip_frames(resized, np.empty_like(resized), self.flow)
        return _flip_frames(resized, resized, self.flow)

    def __call__(self, frames, rng=None):
        rng = rng if rng is not None else np.random.default_rng()
        (x, y, crop_w, crop_h), finish = self.crop_region(*frames.shape[1:3], rng)
        return finish(frames[:, y:y + crop_h, x:x + crop_w])


class GroupRandomHorizontalFlip:
    """Flip the whole clip left-right with probability 0.5; `enabled=False` turns it off
    (datasets with left/right classes, e.g. Something-Something)."""

    def __init__(self, enabled=True, flow=False):
        self.enabled = enabled
        self.flow = flow

    def __call__(self, frames, rng=None):
        rng = rng if rng is not None else np.random.default_rng()
        if self.enabled and rng.random() < 0.5:
            return _flip_frames(frames, np.empty_like(frames), self.flow)
        return frames


def _crop(frames, x, y, size):
    return frames[..., y:y + size, x:x + size, :]


class GroupCenterCrop:
    def __init__(self, size):
        self.size = int(size)

    def crop_region(self, height, width, rng=None):
        """(box, finish) for frames of this size; None when the crop does not fit inside."""
        if min(height, width) < self.size:
            return None
        return ((width - self.size) // 2, (height - self.size) // 2, self.size, self.size), (
            lambda cropped: cropped)

    def __call__(self, frames, rng=None):
        height, width = frames.shape[-3:-1]
        return _crop(frames, (width - self.size) // 2, (height - self.size) // 2, self.size)


class GroupThreeCrop:
    """Three square crops along the long side (left/centre/right or top/middle/bottom)."""

    def __init__(self, size):
        self.size = int(size)

    def __call__(self, frames, rng=None):
        height, width = frames.shape[1:3]
        if width >= height:
            y = (height - self.size) // 2
            boxes = [(0, y), ((width - self.size) // 2, y), (width - self.size, y)]
        else:
            x = (width - self.size) // 2
            boxes = [(x, 0), (x, (height - self.size) // 2), (x, height - self.size)]
        return np.stack([_crop(frames, x, y, self.size) for x, y in boxes])


class GroupTenCrop:
    """Four corners and the centre, plus their horizontal flips (flow: x negated)."""

    def __init__(self, size, flow=False):
        self.size = int(size)
        self.flow = flow

    def __call__(self, frames, rng=None):
        height, width = frames.shape[1:3]
        right, bottom = width - self.size, height - self.size
        boxes = [(0, 0), (right, 0), (0, bottom), (right, bottom), (right // 2, bottom // 2)]
        crops = [_crop(frames, x, y, self.size) for x, y in boxes]
        mirrored = [crop[:, :, ::-1] for crop in crops]
        if self.flow:                            # a mirrored flow field moves the other way in x
            mirrored = [np.concatenate([255 - m[..., :1], m[..., 1:]], axis=-1) for m in mirrored]
        crops += mirrored
        return np.stack(crops)


class ToClipTensor:
    """uint8 [..., T, H, W, C] array -> uint8 tensor [..., C, T, H, W] (a view: the copy
    into the batch does the reordering)."""

    def __call__(self, frames, rng=None):
        return torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -4)


class ClipNormalizer:
    """uint8 RGB clips [..., C, T, H, W] -> float32 on `device`, in the input convention of
    the weights: (x / 255 * value_range - mean) / std, channels in `channel_order`.

    This is the one place the convention is applied (evaluation, training; the exported
    model's meta.json carries the same numbers). The uint8 batch crosses to the device first,
    so a GPU receives a quarter of the bytes and does the arithmetic. `memory_format`
    (torch.channels_last_3d) lays the result out for channels-last models.
    """

    def __init__(self, mean, std, device='cpu', memory_format=torch.contiguous_format,
                 value_range=1.0, channel_order='RGB'):
        if channel_order not in ('RGB', 'BGR'):
            raise ValueError(f"channel order must be 'RGB' or 'BGR', got {channel_order!r}")
        self.device = torch.device(device)
        std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1, 1)
        mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1, 1)
        self.scale = (float(value_range) / (255.0 * std)).to(self.device)
        self.shift = (mean / std).to(self.device)
        self.memory_format = memory_format
        self.reverse_channels = channel_order == 'BGR'

    def __call__(self, clips):
        clips = clips.to(self.device, non_blocking=True)
        if clips.dtype != torch.uint8:
            raise TypeError(f'ClipNormalizer expects uint8 clips, got {clips.dtype}')
        if self.reverse_channels:
            clips = clips.flip(-4)
        memory_format = self.memory_format if clips.dim() == 5 else torch.contiguous_format
        out = torch.empty(clips.shape, dtype=torch.float32, device=self.device,
                          memory_format=memory_format)
        out.copy_(clips)
        return out.mul_(self.scale).sub_(self.shift)


def build_normalizer(cfg, device='cpu'):
    """DATASET.MEAN/STD for RGB and RGBDiff (differences are taken after it), FLOW_MEAN/STD
    for flow fields."""
    memory_format = torch.channels_last_3d if cfg.TRAIN.CHANNELS_LAST else torch.contiguous_format
    if cfg.MODALITY == 'Flow':
        return ClipNormalizer(cfg.DATASET.FLOW_MEAN, cfg.DATASET.FLOW_STD, device, memory_format)
    return ClipNormalizer(cfg.DATASET.MEAN, cfg.DATASET.STD, device, memory_format,
                          cfg.DATASET.VALUE_RANGE, cfg.DATASET.CHANNEL_ORDER)


def build_transform(cfg, mode):
    """Training: multi-scale crop + flip (+ AUG.RAND_AUGMENT, AUG.RE_PROB, the same on every
    frame); validation: resize + centre crop;
    test: resize + VAL.NUM_CROPS crops (1, 3 or 10). All end in uint8 clip tensors."""
    data = cfg.DATASET
    to_tensor = ToClipTensor()
    if mode == 'train':
        augment = [GroupResize(data.SCALE_SIZE),
                   GroupMultiScaleCrop(data.CROP_SIZE, data.MULTI_SCALES, flip=data.FLIP,
                                       flow=cfg.MODALITY == 'Flow')]
        if cfg.AUG.RAND_AUGMENT:
            augment.append(ClipRandAugment(cfg.AUG.RAND_AUGMENT))
        if cfg.AUG.RE_PROB > 0:
            augment.append(ClipRandomErasing(cfg.AUG.RE_PROB))
        return Compose(augment + [to_tensor])
    if mode == 'val':
        return Compose([GroupResize(data.SCALE_SIZE), GroupCenterCrop(data.CROP_SIZE), to_tensor])
    if mode == 'test':
        crops = {1: GroupCenterCrop(data.CROP_SIZE), 3: GroupThreeCrop(data.CROP_SIZE),
                 10: GroupTenCrop(data.CROP_SIZE, flow=cfg.MODALITY == 'Flow')}[cfg.VAL.NUM_CROPS]
        return Compose([GroupResize(data.SCALE_SIZE), crops, to_tensor])
    raise ValueError(f"unknown transform mode {mode!r}: 'train', 'val' or 'test'")
