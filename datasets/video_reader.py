"""Frames of a video file, decoded only as far as needed.

Sequential decoding reads every frame up to the last one asked for. When the frames asked for
are far apart (TSN's segments over a long video), jumping to the keyframe before a wanted frame
is cheaper than decoding the gap. The reader demuxes the file once (packets only, no decoding)
to learn each frame's timestamp and where the keyframes are, and seeks only when a keyframe
lies past the frame it would otherwise decode next. Frames are identified by their timestamps,
so a seek can never hand back a wrong frame; a file without usable timestamps is decoded
sequentially. The keyframe index is cached per process for recently read files.

Every frame comes out as a player shows it: turned by the stream's display rotation (phones
store portrait video as landscape pictures with a rotation), and timed by its presentation
timestamp (variable frame rate files are common from phones and screen recorders).
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


def decode_failure(path, err, decoded):
    """The DecodeError for FFmpeg's `err` after `decoded` good frames, in plain words."""
    detail = getattr(err, 'strerror', None) or str(err)
    if decoded:
        return DecodeError(f'{path}: damaged or truncated: decoding failed after {decoded} '
                           f'frames ({detail})')
    return DecodeError(f'{path}: cannot be decoded: damaged, truncated, or a codec this FFmpeg '
                       f'cannot decode ({detail})')


def upright(array, rotation):
    """A decoded picture [H, W, ...] turned `rotation` degrees clockwise (0/90/180/270)."""
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(array, k=-turns)) if turns else array


def upright_size(width, height, rotation):
    """(width, height) as shown after turning by `rotation` degrees."""
    return (height, width) if rotation % 180 == 90 else (width, height)


def display_rotation(frame):
    """Degrees a player turns this decoded frame clockwise (PyAV reports counter-clockwise)."""
    return int(round(-(frame.rotation or 0) / 90.0)) % 4 * 90


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


def _to_rgb(frame, min_side, fmt='rgb24'):
    """Upright array (RGB by default); converted straight to a smaller size (short side
    `min_side`, area filter) when the frame is larger, which costs less than converting then
    resizing."""
    short = min(frame.width, frame.height)
    if not min_side or short <= min_side:
        return upright(frame.to_ndarray(format=fmt), display_rotation(frame))
    scale = min_side / short
    width = max(min_side, round(frame.width * scale))
    height = max(min_side, round(frame.height * scale))
    return upright(frame.reformat(width=width, height=height, format=fmt,
                                  interpolation='AREA').to_ndarray(), display_rotation(frame))


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


IMAGE_DEMUXERS = ('image2', 'image2pipe')     # and every '<codec>_pipe' demuxer: one picture each


def open_video(path):
    """(container, its first video stream) of the video file `path`; DecodeError in plain words
    when it is not one: missing, a folder, empty, unreadable, a still image, no video stream.
    The caller closes the container."""
    if os.path.isdir(path):
        raise DecodeError(f'{path}: is a folder, not a video file')
    if not os.path.exists(path):
        raise DecodeError(f'{path}: video not found')
    if os.path.getsize(path) == 0:
        raise DecodeError(f'{path}: is empty (0 bytes)')
    try:
        container = av.open(path)
    except av.error.FFmpegError as err:
        raise DecodeError(f'{path}: not a video FFmpeg can read, or damaged or truncated '
                          f'({err.strerror or err})') from None
    kind = container.format.name
    if not container.streams.video:
        found = ', '.join(sorted({s.type for s in container.streams})) or 'no streams'
        container.close()
        raise DecodeError(f'{path}: has no video stream ({found} only)')
    stream = container.streams.video[0]
    if kind in IMAGE_DEMUXERS or kind.endswith('_pipe'):
        container.close()
        raise DecodeError(f'{path}: is a still image ({stream.codec_context.name.upper()}), '
                          'not a video')
    stream.thread_type = 'AUTO'
    return container, stream


def load_video(path, indices, min_side=0):
    """Frames `indices` (0-based) of a video file as upright uint8 RGB [T, H, W, 3]."""
    wanted = sorted(set(int(i) for i in indices))
    found = {}
    try:
        container, stream = open_video(path)
        with container:
            index = _cached_index(path, container, stream)
            if index is not None and len(index.keyframes) > 1 and wanted[-1] < len(index.timestamps):
                try:
                    found = _decode_seeking(container, stream, wanted, index, min_side)
                except _LostTrack:
                    found = {}
        if len(found) < len(wanted):
            found = _decode_in_order(path, wanted, min_side)
    except av.error.FFmpegError as err:
        raise decode_failure(path, err, len(found)) from None
    return _clip(found, wanted, indices, f'{path}: has fewer frames than the metafile says')


def _decode_in_order(source, wanted, min_side):
    """{position: frame} of the `wanted` frames of a video (a path or a file object),
    decoded from its start."""
    with av.open(source) as container:
        if not container.streams.video:
            raise DecodeError(f'{source}: has no video stream')
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
    except av.error.FFmpegError as err:
        raise decode_failure(name, err, 0) from None
    except DecodeError:
        raise DecodeError(f'{name}: has no video stream') from None
    return _clip(found, wanted, indices, f'{name}: has fewer frames than packed with it')


def count_video_frames(path):
    """Number of decodable frames (decodes the whole file: exact, unlike container metadata);
    a damaged or truncated file raises DecodeError."""
    return sum(1 for _ in decode_timed_frames(path, fmt=None))


def _truncated(stream, decoded):
    """Fewer frames decoded than the container declares (a cut download: threaded decoding
    stops quietly where the data ends). A frame or two short is normal (edit lists)."""
    declared = int(stream.frames or 0)
    return declared and declared - decoded > max(2, declared // 100)


def decode_timed_frames(path, start=None, end=None, fmt='rgb24', min_side=0):
    """Yield (seconds, frame) for every frame of a video file, in order, as a player shows it:
    seconds from the stream's start by the frame's timestamp, the frame upright, a uint8 array
    (RGB by default; fmt=None yields the av.VideoFrame as decoded, not turned). start/end
    (seconds): only the frames shown in [start, end), reached by a seek. A video that is not
    one, or that breaks off, raises DecodeError naming it."""
    container, stream = open_video(path)
    decoded = 0
    with container:
        time_base = stream.time_base or Fraction(1, 90000)
        origin = stream.start_time or 0
        step = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)
        seconds = -step
        try:
            if start:
                container.seek(int(start / time_base) + origin, stream=stream, backward=True)
            for frame in container.decode(stream):
                seconds = (float((frame.pts - origin) * time_base) if frame.pts is not None
                           else seconds + step)
                if start is not None and seconds < start:
                    continue
                if end is not None and seconds >= end:
                    return
                decoded += 1
                yield seconds, frame if fmt is None else _to_rgb(frame, 0, fmt)
        except av.error.FFmpegError as err:
            raise decode_failure(path, err, decoded) from None
        if start is None and end is None and _truncated(stream, decoded):
            raise DecodeError(f'{path}: damaged or truncated: {decoded} of its {stream.frames} '
                              'frames could be decoded')


def decode_frames(path, start=None, end=None, fmt='rgb24'):
    """decode_timed_frames without the times: the frames only."""
    for _, frame in decode_timed_frames(path, start, end, fmt):
        yield frame
