"""Re-encoding a video for training: a short keyframe interval and the size the loader needs.

Downloads usually have a keyframe every 2 to 10 seconds, so reaching a sampled frame means
decoding up to a few hundred frames before it; at a keyframe every `gop` frames it costs at
most `gop`. Frames come out as a player shows them (display rotation applied, so the output
has none) and keep their timestamps (variable frame rate stays as it was). Sound is dropped:
no model here reads it. The output is written under a temporary name, decoded whole to verify
it, and only then given its name, so a file with the final name is always a finished one.
"""
import os
import os.path as osp
from dataclasses import dataclass
from fractions import Fraction

import av

from datasets.video_probe import survey_packets
from datasets.video_reader import (DecodeError, count_video_frames, decode_failure,
                                   display_rotation, open_video, upright)

# --codec -> (FFmpeg encoder, container extension, options given the CRF)
CODECS = {
    'h264': ('libx264', '.mp4', lambda crf: {'crf': str(crf), 'preset': 'fast'}),
    'hevc': ('libx265', '.mp4', lambda crf: {'crf': str(crf), 'preset': 'fast',
                                             'x265-params': 'log-level=error'}),
    'vp9': ('libvpx-vp9', '.webm', lambda crf: {'crf': str(crf), 'b:v': '0', 'row-mt': '1',
                                                'deadline': 'good', 'cpu-used': '4'}),
}
PARTIAL_SUFFIX = '.part'


class TranscodeError(RuntimeError):
    """A video that could not be re-encoded, or whose output failed verification."""


class NothingToWrite(TranscodeError):
    """No frame in the part of the video asked for."""


@dataclass(frozen=True)
class TranscodeSettings:
    """How to re-encode: the defaults are what DataTool.transcode and --transcode use."""
    short_side: int = 256      # the output's shorter side (0: keep; never enlarged)
    gop: int = 8               # at most this many frames from one keyframe to the next
    crf: int = 23              # quality: lower is better and larger (x264's default is 23)
    codec: str = 'h264'

    def __post_init__(self):
        if self.codec not in CODECS:
            raise ValueError(f'codec {self.codec!r}: use one of {", ".join(CODECS)}')
        if self.gop < 1 or self.short_side < 0 or not 0 <= self.crf <= 63:
            raise ValueError(f'gop must be >= 1, short side >= 0 and crf 0..63; got gop '
                             f'{self.gop}, short side {self.short_side}, crf {self.crf}')

    @property
    def extension(self):
        return CODECS[self.codec][1]


def add_encoding_options(parser, what='re-encoded videos'):
    """--gop, --crf and --codec (DataTool.transcode, and the DataTools' --transcode)."""
    parser.add_argument('--gop', type=int, default=TranscodeSettings.gop,
                        help=f'{what}: at most this many frames between keyframes')
    parser.add_argument('--crf', type=int, default=TranscodeSettings.crf,
                        help=f'{what}: quality, lower is better and larger (0-51 for h264 and '
                             'hevc, 0-63 for vp9)')
    parser.add_argument('--codec', choices=sorted(CODECS), default=TranscodeSettings.codec,
                        help=f'{what}: the codec')


def output_size(width, height, short_side):
    """(width, height) scaled so the shorter side is `short_side` (never enlarged; 0 keeps the
    size), both even as 4:2:0 video needs."""
    scale = min(1.0, short_side / min(width, height)) if short_side else 1.0
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def _encoder(container, settings, width, height, rate, time_base, threads):
    name, _, options = CODECS[settings.codec]
    stream = container.add_stream(name, rate=rate, options=options(settings.crf))
    stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
    stream.codec_context.time_base = time_base
    stream.codec_context.gop_size = settings.gop
    if threads:
        stream.codec_context.thread_count = threads
    return stream


def transcode_video(source, dest, settings=TranscodeSettings(), start=None, end=None, threads=0):
    """Re-encode `source` (the part shown in [start, end) seconds, if given) into `dest` with
    `settings`; returns the number of frames written, verified by decoding `dest` whole.
    DecodeError when the source cannot be read; NothingToWrite when no frame is in [start, end);
    TranscodeError when the output does not decode to the frames written. `threads`: encoder threads (0: FFmpeg's
    choice; 1 when many videos are encoded in parallel)."""
    os.makedirs(osp.dirname(osp.abspath(dest)), exist_ok=True)
    partial = dest + PARTIAL_SUFFIX + settings.extension
    written = 0
    try:
        written = _encode(source, partial, settings, start, end, threads)
        if not written:
            raise NothingToWrite(f'{source}: no frame to write'
                                 + (f' between {start:g} and {end:g} s' if start is not None else ''))
        _verify(partial, written, settings.gop)
        os.replace(partial, dest)
    finally:
        if osp.exists(partial):
            os.remove(partial)
    return written


def _encode(source, partial, settings, start, end, threads):
    container, stream = open_video(source)
    written, stamp, source_pts, size = 0, -1, None, None
    with container, av.open(partial, 'w') as output:
        time_base = stream.time_base or Fraction(1, 90000)
        origin = stream.start_time or 0
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        step = max(1, int(round(1 / (float(rate) * time_base))))    # one frame, in time_base
        encoder = None
        try:
            if start:
                container.seek(int(start / time_base) + origin, stream=stream, backward=True)
            for frame in container.decode(stream):
                pts = frame.pts - origin if frame.pts is not None else (
                    source_pts + step if source_pts is not None else 0)
                source_pts = pts
                seconds = float(pts * time_base)
                if start is not None and seconds < start:
                    continue
                if end is not None and seconds >= end:
                    break
                if size is None:        # as stored; every frame scaled to the first's output
                    size = output_size(frame.width, frame.height, settings.short_side)
                picture = upright(frame.reformat(width=size[0], height=size[1], format='rgb24',
                                                 interpolation='AREA').to_ndarray(),
                                  display_rotation(frame))
                if encoder is None:
                    encoder = _encoder(output, settings, picture.shape[1], picture.shape[0],
                                       rate, time_base, threads)
                # timestamps from the segment's start, strictly increasing as encoders need
                stamp = max(stamp + 1, pts - (int(start / time_base) if start else 0))
                out_frame = av.VideoFrame.from_ndarray(picture, format='rgb24')
                out_frame.pts, out_frame.time_base = stamp, time_base
                for packet in encoder.encode(out_frame):
                    output.mux(packet)
                written += 1
        except av.error.FFmpegError as err:
            raise decode_failure(source, err, written) from None
        if encoder is not None:
            for packet in encoder.encode():
                output.mux(packet)
    return written


def _verify(path, written, gop):
    """The output decodes whole to the frames written, with keyframes at most `gop` apart."""
    try:
        decoded = count_video_frames(path)
        survey = survey_packets(path)
    except DecodeError as err:
        raise TranscodeError(f'the re-encoded video does not decode: {err}') from None
    if decoded != written:
        raise TranscodeError(f'{path}: {written} frames written but {decoded} decode')
    if survey.keyframe_interval > gop:
        raise TranscodeError(f'{path}: keyframes {survey.keyframe_interval} frames apart, '
                             f'more than the {gop} asked for')
