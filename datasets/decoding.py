"""Frames as uint8 RGB arrays [T, H, W, 3], from a frame folder or a video file."""
import os.path as osp

import av
import cv2
import numpy as np


class DecodeError(RuntimeError):
    """A frame or video that cannot be read; the message names the file."""


def read_image(path):
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise DecodeError(f'cannot read image: {path}')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_frame_folder(folder, indices, img_format='img_{:05d}.jpg'):
    """Frames `indices` (0-based) of a folder holding img_00001.jpg ... (1-based names)."""
    cache = {}
    frames = []
    for index in indices:
        index = int(index)
        if index not in cache:
            cache[index] = read_image(osp.join(folder, img_format.format(index + 1)))
        frames.append(cache[index])
    return np.stack(frames)


def load_video(path, indices):
    """Frames `indices` (0-based) of a video file, decoding sequentially up to the last one."""
    wanted = sorted(set(int(i) for i in indices))
    if not osp.isfile(path):
        raise DecodeError(f'video not found: {path}')
    found = {}
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = 'AUTO'
            for position, frame in enumerate(container.decode(stream)):
                if position in wanted:
                    found[position] = frame.to_ndarray(format='rgb24')
                if position >= wanted[-1]:
                    break
    except (av.error.FFmpegError, IndexError) as err:
        raise DecodeError(f'cannot decode video {path}: {err}') from err
    missing = [i for i in wanted if i not in found]
    if missing:
        raise DecodeError(f'{path}: has fewer frames than the metafile says '
                          f'(frame {missing[0] + 1} requested, {len(found)} found)')
    return np.stack([found[int(i)] for i in indices])


def count_video_frames(path):
    """Number of decodable frames (decodes the whole file: exact, unlike container metadata)."""
    try:
        with av.open(path) as container:
            return sum(1 for _ in container.decode(video=0))
    except (av.error.FFmpegError, IndexError) as err:
        raise DecodeError(f'cannot decode video {path}: {err}') from err


def load_frames(root, record, indices, img_format='img_{:05d}.jpg'):
    """Dispatch on the record: video file or frame folder under `root`."""
    path = osp.join(root, record.path)
    if record.is_video:
        return load_video(path, indices)
    return load_frame_folder(path, indices, img_format)
