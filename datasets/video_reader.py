"""Frames of a video file, decoded only as far as needed.

Sequential decoding reads every frame up to the last one asked for. When the frames asked for
are far apart (TSN's segments over a long video), jumping to the keyframe before a wanted frame
is cheaper than decoding the gap. The reader demuxes the file once (packets only, no decoding)
to learn each frame's timestamp and where the keyframes are, and seeks only when a keyframe
lies past the frame it would otherwise decode next. Frames are identified by their timestamps,
so a seek can never hand back a wrong frame; a file without usable timestamps is decoded
sequentially. The keyframe index is cached per process for recently read files.
"""
import bisect
import io
import os
from collections import OrderedDict
from fractions import Fraction

import av
import numpy as np

INDEX_CACHE_SIZE = 512
SEEK_MIN_GAP = 4            # seek only when it skips at least this many frames


class DecodeError(RuntimeError):
    """A frame or video that cannot be read; the message names the file."""


class FrameIndex:
    """Presentation timestamps of a stream's frames, in display order, and keyframe positions."""

    def __init__(self, timestamps, keyframe_positions):
        self.timestamps = timestamps
        self.position = {pts: i for i, pts in enumerate(timestamps)}
        self.keyframes = keyframe_positions

    @classmethod
    def scan(cls, container, stream):
        """From the packets (no decoding); None when a packet has no timestamp."""
        timestamps, keyframes = [], []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                return None
            timestamps.append(packet.pts)
            if packet.is_keyframe:
                keyframes.append(packet.pts)
        timestamps.sort()
        if len(set(timestamps)) != len(timestamps):
            return None
        position = {pts: i for i, pts in enumerate(timestamps)}
        return cls(timestamps, sorted(position[pts] for pts in keyframes))

    def keyframe_at_or_before(self, position):
        slot = bisect.bisect_right(self.keyframes, position) - 1
        return self.keyframes[slot] if slot >= 0 else 0


_index_cache = OrderedDict()


def _cached_index(path, container, stream):
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key in _index_cache:
        _index_cache.move_to_end(key)
        return _index_cache[key]
    index = FrameIndex.scan(container, stream)
    _index_cache[key] = index
    if len(_index_cache) > INDEX_CACHE_SIZE:
        _index_cache.popitem(last=False)
    return index


class _LostTrack(Exception):
    """A decoded frame's timestamp is not in the index: fall back to sequential decoding."""


def _to_rgb(frame, min_side):
    """RGB array; converted straight to a smaller size (short side `min_side`, area filter)
    when the frame is larger, which costs less than converting then resizing."""
    short = min(frame.width, frame.height)
    if not min_side or short <= min_side:
        return frame.to_ndarray(format='rgb24')
    scale = min_side / short
    width = max(min_side, round(frame.width * scale))
    height = max(min_side, round(frame.height * scale))
    return frame.reformat(width=width, height=height, format='rgb24',
                          interpolation='AREA').to_ndarray()


def _decode_sequential(container, stream, wanted, min_side):
    found = {}
    for position, frame in enumerate(container.decode(stream)):
        if position in wanted:
            found[position] = _to_rgb(frame, min_side)
        if position >= wanted[-1]:
            break
    return found


def _decode_seeking(container, stream, wanted, index, min_side):
    found = {}
    decoded_up_to = -1
    frames = None
    for target in wanted:
        if target <= decoded_up_to:
            continue
        keyframe = index.keyframe_at_or_before(target)
        if frames is None or keyframe - decoded_up_to > SEEK_MIN_GAP:
            container.seek(index.timestamps[keyframe], stream=stream, backward=True)
            frames = container.decode(stream)
        for frame in frames:
            position = index.position.get(frame.pts)
            if position is None:
                raise _LostTrack
            decoded_up_to = position
            if position in wanted and position not in found:
                found[position] = _to_rgb(frame, min_side)
            if position >= target:
                break
    return found


def load_video(path, indices, min_side=0):
    """Frames `indices` (0-based) of a video file as uint8 RGB [T, H, W, 3]."""
    wanted = sorted(set(int(i) for i in indices))
    if not os.path.isfile(path):
        raise DecodeError(f'video not found: {path}')
    found = {}
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = 'AUTO'
            index = _cached_index(path, container, stream)
            if index is not None and len(index.keyframes) > 1 and wanted[-1] < len(index.timestamps):
                try:
                    found = _decode_seeking(container, stream, wanted, index, min_side)
                except _LostTrack:
                    found = {}
        if len(found) < len(wanted):
            found = _decode_in_order(path, wanted, min_side)
    except (av.error.FFmpegError, IndexError) as err:
        raise DecodeError(f'cannot decode video {path}: {err}') from err
    return _clip(found, wanted, indices, f'{path}: has fewer frames than the metafile says')


def _decode_in_order(source, wanted, min_side):
    """{position: frame} of the `wanted` frames of a video (a path or a file object),
    decoded from its start."""
    with av.open(source) as container:
        stream = container.streams.video[0]
        stream.thread_type = 'AUTO'
        return _decode_sequential(container, stream, wanted, min_side)


def _clip(found, wanted, indices, shortfall):
    """The decoded frames in `indices` order, or DecodeError(shortfall ...) when some of the
    `wanted` ones were not in the video."""
    missing = [i for i in wanted if i not in found]
    if missing:
        raise DecodeError(f'{shortfall} (frame {missing[0] + 1} requested, {len(found)} found)')
    return np.stack([found[int(i)] for i in indices])


def load_video_bytes(data, indices, name, min_side=0):
    """load_video for a video already in memory (a packed shard's member), decoded in order."""
    wanted = sorted(set(int(i) for i in indices))
    try:
        found = _decode_in_order(io.BytesIO(data), wanted, min_side)
    except (av.error.FFmpegError, IndexError) as err:
        raise DecodeError(f'cannot decode video {name}: {err}') from err
    return _clip(found, wanted, indices, f'{name}: has fewer frames than packed with it')


def count_video_frames(path):
    """Number of decodable frames (decodes the whole file: exact, unlike container metadata)."""
    try:
        with av.open(path) as container:
            return sum(1 for _ in container.decode(video=0))
    except (av.error.FFmpegError, IndexError) as err:
        raise DecodeError(f'cannot decode video {path}: {err}') from err


def decode_frames(path, start=None, end=None, fmt='rgb24'):
    """Yield every frame of a video file as a uint8 array (RGB by default), in order;
    start/end (seconds): only the frames shown in [start, end), reached by a seek.
    A missing or undecodable file raises DecodeError naming it."""
    if not os.path.isfile(path):
        raise DecodeError(f'video not found: {path}')
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = 'AUTO'
            if start:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is not None:
                    if start is not None and frame.time < start:
                        continue
                    if end is not None and frame.time >= end:
                        break
                yield frame.to_ndarray(format=fmt)
    except (av.error.FFmpegError, IndexError) as err:
        raise DecodeError(f'cannot decode video {path}: {err}') from err


def video_properties(path):
    """(frame rate as a Fraction, width, height) of a video file's first video stream."""
    if not os.path.isfile(path):
        raise DecodeError(f'video not found: {path}')
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            return Fraction(rate), stream.codec_context.width, stream.codec_context.height
    except (av.error.FFmpegError, IndexError) as err:
        raise DecodeError(f'cannot read video {path}: {err}') from err
