"""Group transforms: the same spatial operation on every frame of a clip.

Clips stay uint8 numpy arrays [T, H, W, C] until the final `ToNormalizedTensor`; multi-view
transforms (three/ten crop) return [V, T, h, w, C]. Random transforms take an explicit
numpy Generator so a sample is reproducible from the seed.
"""
import cv2
import numpy as np
import torch


def _resize_frames(frames, width, height):
    if frames.shape[2] == width and frames.shape[1] == height:
        return frames
    interpolation = cv2.INTER_AREA if width < frames.shape[2] else cv2.INTER_LINEAR
    return np.stack([cv2.resize(frame, (width, height), interpolation=interpolation)
                     for frame in frames])


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, frames, rng=None):
        for transform in self.transforms:
            frames = transform(frames, rng)
        return frames


class GroupResize:
    """Resize so the short side equals `size`, keeping the aspect ratio."""

    def __init__(self, size):
        self.size = int(size)

    def __call__(self, frames, rng=None):
        height, width = frames.shape[1:3]
        if height <= width:
            new_h, new_w = self.size, max(1, round(width * self.size / height))
        else:
            new_h, new_w = max(1, round(height * self.size / width)), self.size
        return _resize_frames(frames, new_w, new_h)


class GroupMultiScaleCrop:
    """TSN's corner/centre cropping with random scale and aspect jitter, then resize.

    Crop sides are drawn from `scales` x short side (width and height at most `max_distort`
    scale steps apart); the crop sits at one of 5 fixed positions (13 with more_fix_crop).
    """

    def __init__(self, size, scales=(1.0, 0.875, 0.75, 0.66), max_distort=1, more_fix_crop=True):
        self.size = int(size)
        self.scales = list(scales)
        self.max_distort = max_distort
        self.more_fix_crop = more_fix_crop

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

    def __call__(self, frames, rng=None):
        rng = rng if rng is not None else np.random.default_rng()
        height, width = frames.shape[1:3]
        x, y, crop_w, crop_h = self._crop_box(height, width, rng)
        cropped = frames[:, y:y + crop_h, x:x + crop_w]
        return _resize_frames(cropped, self.size, self.size)


class GroupRandomHorizontalFlip:
    """Flip the whole clip left-right with probability 0.5; `enabled=False` turns it off
    (datasets with left/right classes, e.g. Something-Something)."""

    def __init__(self, enabled=True):
        self.enabled = enabled

    def __call__(self, frames, rng=None):
        rng = rng if rng is not None else np.random.default_rng()
        if self.enabled and rng.random() < 0.5:
            return np.ascontiguousarray(frames[:, :, ::-1])
        return frames


def _crop(frames, x, y, size):
    return frames[..., y:y + size, x:x + size, :]


class GroupCenterCrop:
    def __init__(self, size):
        self.size = int(size)

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
    """Four corners and the centre, plus their horizontal flips."""

    def __init__(self, size):
        self.size = int(size)

    def __call__(self, frames, rng=None):
        height, width = frames.shape[1:3]
        right, bottom = width - self.size, height - self.size
        boxes = [(0, 0), (right, 0), (0, bottom), (right, bottom), (right // 2, bottom // 2)]
        crops = [_crop(frames, x, y, self.size) for x, y in boxes]
        crops += [crop[:, :, ::-1] for crop in crops]
        return np.stack(crops)


class ToNormalizedTensor:
    """uint8 [..., T, H, W, C] -> float tensor [..., C, T, H, W], (x / 255 - mean) / std."""

    def __init__(self, mean, std):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1, 1)

    def __call__(self, frames, rng=None):
        tensor = torch.from_numpy(np.ascontiguousarray(frames))
        tensor = tensor.movedim(-1, -4).float().div_(255.0)
        return tensor.sub_(self.mean).div_(self.std)


def build_transform(cfg, mode):
    """Training: multi-scale crop + flip; validation: resize + centre crop;
    test: resize + VAL.NUM_CROPS crops (1, 3 or 10)."""
    data = cfg.DATASET
    normalize = ToNormalizedTensor(data.MEAN, data.STD)
    if mode == 'train':
        return Compose([GroupResize(data.SCALE_SIZE),
                        GroupMultiScaleCrop(data.CROP_SIZE, data.MULTI_SCALES),
                        GroupRandomHorizontalFlip(data.FLIP), normalize])
    if mode == 'val':
        return Compose([GroupResize(data.SCALE_SIZE), GroupCenterCrop(data.CROP_SIZE), normalize])
    if mode == 'test':
        crops = {1: GroupCenterCrop, 3: GroupThreeCrop, 10: GroupTenCrop}[cfg.VAL.NUM_CROPS]
        return Compose([GroupResize(data.SCALE_SIZE), crops(data.CROP_SIZE), normalize])
    raise ValueError(f"unknown transform mode {mode!r}: 'train', 'val' or 'test'")
