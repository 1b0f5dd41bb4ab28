"""Encoding frames into real video files with PyAV (FFmpeg)."""
import os
import os.path as osp

import av

# container extension -> (codec, pixel format, encoder options)
CODECS = {
    '.mp4': ('libx264', 'yuv420p', {'crf': '16', 'preset': 'fast'}),
    '.mkv': ('libx264', 'yuv420p', {'crf': '16', 'preset': 'fast'}),
    '.avi': ('mjpeg', 'yuvj420p', {'q:v': '3'}),
    '.webm': ('libvpx', 'yuv420p', {'crf': '8', 'b:v': '2M'}),
}


def write_video(path, frames, fps=16, gop=None):
    """Write RGB uint8 frames [T, H, W, 3] (even H and W) to `path`; the codec follows the
    extension (.mp4/.mkv H.264, .avi MJPEG, .webm VP8). `gop`: at most this many frames
    between keyframes (the encoder's default otherwise; MJPEG frames are all keyframes)."""
    extension = osp.splitext(path)[1].lower()
    if extension not in CODECS:
        raise ValueError(f'{path}: unsupported container; use one of {sorted(CODECS)}')
    codec, pix_fmt, options = CODECS[extension]
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(path, 'w') as container:
        stream = container.add_stream(codec, rate=fps, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if gop:
            stream.codec_context.gop_size = int(gop)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
