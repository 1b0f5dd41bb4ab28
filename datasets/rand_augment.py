"""RandAugment and random erasing for clips: one draw of ops and magnitudes per clip, applied
identically to every frame, as PySlowFast's AUG.* and mmaction2's RandAugment wrapper do (a
per-frame draw would make a static clip flicker, and motion out of nothing).

AUG.RAND_AUGMENT 'rand-m9-n2' picks n=2 of the ops below at magnitude m=9 (of 10), each
applied with probability 0.5 (timm's RandAugment); '-mstd0.5' draws the magnitude around m
with that standard deviation. AUG.RE_PROB erases one box of 2% to 1/3 of the area, the same
in every frame, with random pixels. Both work on the uint8 clip [T, H, W, 3] after the crop.
"""
import re

import cv2
import numpy as np

MAX_LEVEL = 10.0


def _signed(value, rng):
    return value if rng.random() < 0.5 else -value


def _affine(clip, matrix):
    height, width = clip.shape[1:3]
    return np.stack([cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                    borderValue=(128, 128, 128)) for frame in clip])


def _blend(clip, other, factor):
    """PIL ImageEnhance: other + factor * (clip - other), clipped."""
    return np.clip(other.astype(np.float32) + factor * (clip.astype(np.float32) - other), 0, 255).astype(np.uint8)


def _grey(clip):
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    return (clip.astype(np.float32) @ weights)[..., None].repeat(3, axis=-1)


def auto_contrast(clip, level, rng):
    low = clip.min(axis=(0, 1, 2), keepdims=True).astype(np.float32)
    high = clip.max(axis=(0, 1, 2), keepdims=True).astype(np.float32)
    scale = np.where(high > low, 255.0 / np.maximum(high - low, 1), 1.0)
    return np.clip((clip - low) * scale, 0, 255).astype(np.uint8)


def equalize(clip, level, rng):
    out = np.empty_like(clip)
    for channel in range(3):
        values = clip[..., channel]
        histogram = np.bincount(values.ravel(), minlength=256)
        cdf = histogram.cumsum()
        span = cdf[-1] - cdf[np.nonzero(histogram)[0][0]]
        lut = np.arange(256) if span == 0 else np.clip(
            np.round((cdf - cdf[np.nonzero(histogram)[0][0]]) * 255.0 / span), 0, 255)
        out[..., channel] = lut.astype(np.uint8)[values]
    return out


def invert(clip, level, rng):
    return 255 - clip


def rotate(clip, level, rng):
    height, width = clip.shape[1:3]
    angle = _signed(level / MAX_LEVEL * 30.0, rng)
    return _affine(clip, cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0))


def posterize(clip, level, rng):
    bits = max(1, 8 - int(level / MAX_LEVEL * 4))
    return clip & np.uint8((0xFF << (8 - bits)) & 0xFF)


def solarize(clip, level, rng):
    threshold = 256 - level / MAX_LEVEL * 256
    return np.where(clip >= threshold, 255 - clip, clip).astype(np.uint8)


def solarize_add(clip, level, rng):
    added = np.clip(clip.astype(np.int16) + int(level / MAX_LEVEL * 110), 0, 255).astype(np.uint8)
    return np.where(clip < 128, added, clip)


def _enhance(kind):
    def apply(clip, level, rng):
        factor = 1.0 + _signed(level / MAX_LEVEL * 0.9, rng)
        if kind == 'color':
            other = _grey(clip)
        elif kind == 'contrast':
            other = np.full_like(clip, _grey(clip).mean(), dtype=np.float32)
        elif kind == 'brightness':
            other = np.zeros_like(clip, dtype=np.float32)
        else:                                     # sharpness: against a smoothed copy
            kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13
            other = np.stack([cv2.filter2D(frame, -1, kernel) for frame in clip]).astype(np.float32)
        return _blend(clip, other, factor)
    apply.__name__ = kind
    return apply


def _shear(axis):
    def apply(clip, level, rng):
        shear = _signed(level / MAX_LEVEL * 0.3, rng)
        matrix = np.float32([[1, shear, 0], [0, 1, 0]] if axis == 'x' else [[1, 0, 0], [shear, 1, 0]])
        return _affine(clip, matrix)
    apply.__name__ = f'shear_{axis}'
    return apply


def _translate(axis):
    def apply(clip, level, rng):
        height, width = clip.shape[1:3]
        shift = _signed(level / MAX_LEVEL * 0.45, rng) * (width if axis == 'x' else height)
        matrix = np.float32([[1, 0, shift], [0, 1, 0]] if axis == 'x' else [[1, 0, 0], [0, 1, shift]])
        return _affine(clip, matrix)
    apply.__name__ = f'translate_{axis}'
    return apply


OPS = (auto_contrast, equalize, invert, rotate, posterize, solarize, solarize_add,
       _enhance('color'), _enhance('contrast'), _enhance('brightness'), _enhance('sharpness'),
       _shear('x'), _shear('y'), _translate('x'), _translate('y'))


def parse_rand_augment(text):
    """'rand-m9-n2[-mstd0.5]' -> (magnitude, ops, magnitude std); ValueError naming the form."""
    match = re.fullmatch(r'rand((?:-(?:m[\d.]+|n\d+|mstd[\d.]+|inc[01]))+)', text)
    if not match:
        raise ValueError(f"AUG.RAND_AUGMENT {text!r}: expected 'rand-m<magnitude>-n<ops>', "
                         "e.g. 'rand-m9-n2' or 'rand-m9-n2-mstd0.5'")
    values = dict(re.findall(r'-(mstd|inc|m|n)([\d.]+)', match.group(1)))
    return float(values.get('m', 9)), int(values.get('n', 2)), float(values.get('mstd', 0))


class ClipRandAugment:
    def __init__(self, text, op_prob=0.5):
        self.magnitude, self.num_ops, self.magnitude_std = parse_rand_augment(text)
        self.op_prob = op_prob

    def __call__(self, frames, rng=None):
        rng = rng if rng is not None else np.random.default_rng()
        clip = np.ascontiguousarray(frames)
        for index in rng.choice(len(OPS), self.num_ops, replace=True):
            if rng.random() >= self.op_prob:
                continue
            level = self.magnitude
            if self.magnitude_std > 0:
                level = float(np.clip(rng.normal(level, self.magnitude_std), 0, MAX_LEVEL))
            clip = OPS[index](clip, level, rng)
        return clip


class ClipRandomErasing:
    """With probability `prob`, one box (2% to 1/3 of the area, aspect 0.3 to 3.3) filled with
    random pixels, at the same place in every frame (timm's RandomErasing with cube=True)."""

    def __init__(self, prob):
        self.prob = prob

    def __call__(self, frames, rng=None):
        rng = rng if rng is not None else np.random.default_rng()
        if rng.random() >= self.prob:
            return frames
        height, width = frames.shape[1:3]
        for _ in range(10):
            area = rng.uniform(0.02, 1 / 3) * height * width
            aspect = np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3)))
            box_h, box_w = int(round((area * aspect) ** 0.5)), int(round((area / aspect) ** 0.5))
            if 0 < box_h < height and 0 < box_w < width:
                top, left = rng.integers(0, height - box_h + 1), rng.integers(0, width - box_w + 1)
                frames = np.array(frames)
                frames[:, top:top + box_h, left:left + box_w] = rng.integers(
                    0, 256, (frames.shape[0], box_h, box_w, frames.shape[3]), dtype=np.uint8)
                return frames
        return frames
