"""Which frames a sample uses: 0-based indices into a video of `num_frames` frames.

Pure functions of (num_frames, settings, rng) so they are easy to test and reproduce.
"""
import numpy as np


def segment_indices(num_frames, num_segments, new_length=1, train=True, rng=None):
    """TSN sampling: split the video into equal segments, take `new_length` consecutive
    frames from each, at a random offset in training and at the segment centre otherwise.

    Returns an int array of shape [num_segments * new_length].
    """
    usable = max(num_frames - new_length + 1, 1)
    edges = np.linspace(0, usable, num_segments + 1)
    starts = edges[:-1]
    lengths = edges[1:] - edges[:-1]
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        offsets = np.floor(starts + rng.random(num_segments) * lengths).astype(np.int64)
    else:
        offsets = np.floor(starts + lengths / 2.0).astype(np.int64)
    offsets = np.clip(offsets, 0, usable - 1)
    indices = offsets[:, None] + np.arange(new_length)[None, :]
    return np.clip(indices.reshape(-1), 0, num_frames - 1)


def dense_indices(num_frames, clip_len, frame_interval, num_clips=1, train=True, rng=None):
    """Dense sampling for 3D models: `clip_len` frames `frame_interval` apart.

    Training picks one random start; testing spreads `num_clips` clips evenly over the video.
    Frames past the end loop back to the start (short videos). Returns [num_clips * clip_len].
    """
    span = clip_len * frame_interval
    max_start = max(num_frames - span, 0)
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        starts = rng.integers(0, max_start + 1, size=num_clips)
    elif num_clips == 1:
        starts = np.array([max_start // 2])
    else:
        starts = np.round(np.linspace(0, max_start, num_clips)).astype(np.int64)
    indices = starts[:, None] + np.arange(clip_len)[None, :] * frame_interval
    return (indices % max(num_frames, 1)).reshape(-1)
