"""Frames as uint8 RGB arrays [T, H, W, 3], from a frame folder or a video file.

JPEG frames are decoded by libjpeg-turbo through simplejpeg, straight to RGB, and at a reduced
size (DCT scaling, 1/2 ... 1/8) when the stored frame is much larger than `min_side`, the short
side the transforms resize to anyway. Other image formats go through OpenCV.

When the clip's transforms begin with a crop (training's multi-scale crop, validation's centre
crop), `decode_clip_regions` decodes only that region of each JPEG (jpeg_region.py), into one
clip buffer, and finishes the transforms on it: the same clip, less decoding.
"""
import os.path as osp

import cv2
import numpy as np
import simplejpeg

from . import jpeg_region
from .video_reader import DecodeError, count_video_frames, load_video

JPEG_SUFFIXES = ('.jpg', '.jpeg')


def _read_bytes(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except OSError as err:
        raise DecodeError(f'cannot read image: {path} ({err.strerror})') from err


def read_image(path, min_side=0, out=None):
    """One RGB frame. With `min_side` > 0 a JPEG may come back smaller than stored, by the
    largest DCT scale that keeps both sides >= min_side (never below min_side). `out`: an
    array to decode a JPEG into (saves an allocation and a copy); the result must fill it."""
    if not path.lower().endswith(JPEG_SUFFIXES):
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise DecodeError(f'cannot read image: {path}')
        return _fill(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), out, path)
    return decode_image_bytes(_read_bytes(path), path, min_side, out)


def decode_image_bytes(data, name, min_side=0, out=None):
    """read_image for an image already in memory (a packed shard's member); `name` (its file
    or member name) says JPEG or not and goes into error messages."""
    if not name.lower().endswith(JPEG_SUFFIXES):
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise DecodeError(f'cannot read image: {name}')
        return _fill(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), out, name)
    try:
        image = simplejpeg.decode_jpeg(data, colorspace='RGB', min_height=min_side,
                                       min_width=min_side, buffer=out)
    except ValueError as err:
        if out is not None and 'buffer' in str(err):
            err = f'larger than the earlier frames ({out.shape[1]}x{out.shape[0]})'
        raise DecodeError(f'cannot decode JPEG {name}: {err}') from None
    if out is not None and image.shape != out.shape:
        raise DecodeError(f'{name}: size {image.shape[1]}x{image.shape[0]} differs from '
                          f'the earlier frames ({out.shape[1]}x{out.shape[0]})')
    return image


def _fill(image, out, name):
    if out is not None:
        if image.shape != out.shape:
            raise DecodeError(f'{name}: size {image.shape[1]}x{image.shape[0]} differs from '
                              f'the earlier frames ({out.shape[1]}x{out.shape[0]})')
        out[...] = image
    return image


def gather_frames(indices, read, what):
    """Frames `indices` (0-based) as one uint8 array [T, H, W, 3]; read(index, out) decodes
    frame `index` (into `out` when given). A frame asked for twice is decoded once."""
    indices = [int(i) for i in indices]
    if not indices:
        raise DecodeError(f'{what}: no frame indices requested')
    first = read(indices[0], None)
    frames = np.empty((len(indices),) + first.shape, dtype=np.uint8)
    frames[0] = first
    done = {indices[0]: 0}
    for position, index in enumerate(indices[1:], start=1):
        if index in done:
            frames[position] = frames[done[index]]
            continue
        read(index, frames[position])
        done[index] = position
    return frames


def decode_clip_regions(indices, read, min_side, region_plan):
    """The finished clip of JPEG frames `indices`, decoding only the region its transforms
    keep. read(index) -> [(bytes, name)]: the frame's one RGB JPEG, or its flow planes' grey
    JPEGs (x, y); region_plan(height, width) -> (box, finish) or None (Compose.region_plan
    with the clip's rng). None, before anything is drawn from the rng, when this path does
    not apply: the region decoder is not built, a frame is not a JPEG (by its name), or the
    transforms do not begin with a crop of frames this size."""
    indices = [int(i) for i in indices]
    if not indices or jpeg_region.library() is None:
        return None
    first = read(indices[0])
    if not all(name.lower().endswith(JPEG_SUFFIXES) for _, name in first):
        return None
    width, height, num = jpeg_region.scaled_size(first[0][0], first[0][1], min_side)
    plan = region_plan(height, width)
    if plan is None:
        return None
    (x, y, w, h), finish = plan
    regions = np.empty((len(indices), h, w, 3 if len(first) == 1 else len(first)), dtype=np.uint8)
    done = {}
    for position, index in enumerate(indices):
        if index in done:
            regions[position] = regions[done[index]]
            continue
        files = first if position == 0 else read(index)
        targets = [regions[position]] if len(files) == 1 else [
            regions[position, :, :, plane] for plane in range(len(files))]
        for (data, name), target in zip(files, targets):
            jpeg_region.decode_region(data, name, num, (width, height), (x, y, w, h), target)
        done[index] = position
    return finish(regions)


def folder_reader(folder, img_format='img_{:05d}.jpg', frame_start=1):
    """read(index) -> [(bytes, path)] for frame `index` (0-based) of a frame folder."""
    def read(index):
        path = osp.join(folder, img_format.format(index + frame_start))
        return [(_read_bytes(path), path)]
    return read


def flow_reader(folder, flow_format='flow_{}_{:05d}.jpg', frame_start=1):
    """read(index) -> [(x bytes, path), (y bytes, path)] for flow field `index` of a folder."""
    def read(index):
        paths = [osp.join(folder, flow_format.format(axis, index + frame_start)) for axis in 'xy']
        return [(_read_bytes(path), path) for path in paths]
    return read


def load_frame_folder(folder, indices, img_format='img_{:05d}.jpg', min_side=0, frame_start=1):
    """Frames `indices` (0-based) of a folder holding img_00001.jpg ... (names counted from
    `frame_start`: 1, or 0 in DLAC's folders), decoded straight into the clip array."""
    return gather_frames(indices, lambda index, out: read_image(
        osp.join(folder, img_format.format(index + frame_start)), min_side, out=out), folder)


def load_flow_folder(folder, indices, flow_format='flow_{}_{:05d}.jpg', min_side=0, frame_start=1):
    """Flow fields `indices` (0-based) of a folder holding flow_x_00001.jpg / flow_y_00001.jpg
    ... (grayscale, 128 = no motion) as uint8 [T, H, W, 2]: x then y."""
    indices = [int(i) for i in indices]
    if not indices:
        raise DecodeError(f'{folder}: no flow indices requested')
    frames = None
    for position, index in enumerate(indices):
        for plane, axis in enumerate('xy'):
            path = osp.join(folder, flow_format.format(axis, index + frame_start))
            try:
                image = simplejpeg.decode_jpeg(_read_bytes(path), colorspace='GRAY',
                                               min_height=min_side, min_width=min_side)
            except ValueError as err:
                raise DecodeError(f'cannot decode JPEG {path}: {err}') from None
            if frames is None:
                frames = np.empty((len(indices),) + image.shape[:2] + (2,), dtype=np.uint8)
            if image.shape[:2] != frames.shape[1:3]:
                raise DecodeError(f'{path}: size {image.shape[1]}x{image.shape[0]} differs from '
                                  f'the earlier flow fields ({frames.shape[2]}x{frames.shape[1]})')
            frames[position, :, :, plane] = image[:, :, 0]
    return frames


def is_video_file(record, path):
    """Whether record's `path` is read as a video: its name says so, or it is a file (a file
    whose name does not say video is still decoded as one: FFmpeg goes by content)."""
    return record.is_video or osp.isfile(path)


def load_frames(root, record, indices, img_format='img_{:05d}.jpg', min_side=0, frame_start=1):
    """Dispatch on the record: video file or frame folder under `root` (is_video_file)."""
    path = osp.join(root, record.path)
    if is_video_file(record, path):
        return load_video(path, indices, min_side)
    return load_frame_folder(path, indices, img_format, min_side, frame_start)


__all__ = ['DecodeError', 'read_image', 'decode_image_bytes', 'gather_frames', 'decode_clip_regions',
           'folder_reader', 'flow_reader', 'is_video_file', 'load_frame_folder', 'load_flow_folder', 'load_video', 'load_frames',
           'count_video_frames']
