"""Encoding frames into real video files with PyAV (FFmpeg)."""
import itertools
import os
import os.path as osp
from fractions import Fraction

import av

# container extension -> (codec, pixel format, encoder options)
CODECS = {
    '.mp4': ('libx264', 'yuv420p', {'crf': '16', 'preset': 'fast'}),
    '.mkv': ('libx264', 'yuv420p', {'crf': '16', 'preset': 'fast'}),
    '.avi': ('mjpeg', 'yuvj420p', {'q:v': '3'}),
    '.webm': ('libvpx', 'yuv420p', {'crf': '8', 'b:v': '2M'}),
}


def write_video(path, frames, fps=16, gop=None, options=None):
    """Write RGB uint8 frames (an array [T, H, W, 3] or any iterable of [H, W, 3], even H and
    W) to `path`; returns the number written. The codec follows the extension (.mp4/.mkv
    H.264, .avi MJPEG, .webm VP8). `gop`: at most this many frames between keyframes (the
    encoder's default otherwise; MJPEG frames are all keyframes). `options`: encoder options
    that replace the extension's defaults, key by key (e.g. {'crf': '23'})."""
    extension = osp.splitext(path)[1].lower()
    if extension not in CODECS:
        raise ValueError(f'{path}: unsupported container; use one of {sorted(CODECS)}')
    codec, pix_fmt, defaults = CODECS[extension]
    options = dict(defaults, **(options or {}))
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f'{path}: no frames to write')
    height, width = first.shape[:2]
    if pix_fmt.endswith('420p') and (height % 2 or width % 2):     # chroma is half size
        raise ValueError(f'{path}: {codec} in {pix_fmt} needs an even width and height, got '
                         f'{width}x{height}')
    count = 0
    with av.open(path, 'w') as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if gop:
            stream.codec_context.gop_size = int(gop)
        for count, frame in enumerate(itertools.chain([first], frames), start=1):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return count
