"""Is this file a video, and what does a player show of it?

A file is a video by its content, not its name: FFmpeg opens it, it has a video stream, that
stream is not a still image (a JPEG renamed .mp4 opens as a one-picture 'video'), and its first
frame decodes. The checks themselves live in video_reader.open_video, which every decoding
path goes through, so a bad file gets the same plain words everywhere (loader, predict, demo,
evaluate, the DataTools): empty, a folder, an image, no video stream, damaged or truncated, a
codec this FFmpeg cannot decode. Here: what a usable video is like, and which files of a
folder are videos.
"""
import os
import os.path as osp
from dataclasses import dataclass
from fractions import Fraction

import av

from .records import VIDEO_EXTENSIONS
from .video_reader import DecodeError, decode_failure, display_rotation, open_video, upright_size


@dataclass(frozen=True)
class VideoInfo:
    """What a player shows: width and height after the display rotation."""
    path: str
    container: str          # FFmpeg's demuxer name, e.g. 'mov,mp4,m4a,3gp,3g2,mj2'
    codec: str
    width: int
    height: int
    rotation: int           # degrees the stored picture is turned clockwise for display
    fps: Fraction           # the average rate (frames / duration)
    frames: int             # frames the container declares (0: it does not say)
    duration: float         # seconds (0.0: unknown)

    def describe(self):
        turned = f', shown turned {self.rotation} degrees' if self.rotation else ''
        return (f'{self.codec} {self.width}x{self.height} at {float(self.fps):.2f} fps'
                f'{turned}, {self.duration:.1f} s')


def probe_video(path):
    """VideoInfo of `path`, or DecodeError saying in plain words why it is not a usable video."""
    container, stream = open_video(path)
    with container:
        codec = stream.codec_context.name
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as err:
            raise decode_failure(path, err, 0) from None
        if first is None:
            raise DecodeError(f'{path}: its {codec} video stream has no decodable frame '
                              '(damaged, truncated, or a codec this FFmpeg cannot decode)')
        rotation = display_rotation(first)
        width, height = upright_size(first.width, first.height, rotation)
        duration = (float(stream.duration * stream.time_base) if stream.duration else
                    container.duration / av.time_base if container.duration else 0.0)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return VideoInfo(path, container.format.name, codec, width, height, rotation,
                         Fraction(rate), int(stream.frames or 0), duration)


def video_problem(path):
    """None for a usable video, else why not (plain words, without the path)."""
    try:
        probe_video(path)
    except DecodeError as err:
        return str(err).removeprefix(f'{path}: ')
    return None


def find_videos(folder, recursive=False):
    """(videos, skipped) among the files of `folder` (hidden ones ignored): videos are sorted
    paths, skipped is [(path, why)] for every other file, so a caller can say what it passed
    over. A file whose name says video (any case) is taken without opening it: a dataset may
    hold a million, and whoever decodes it next names it if its content is no video. Any other
    file is opened, so a video without a known extension is still found."""
    videos, skipped = [], []
    if recursive:
        names = [osp.join(root, name) for root, _, files in os.walk(folder) for name in files]
    else:
        names = [osp.join(folder, name) for name in os.listdir(folder)
                 if osp.isfile(osp.join(folder, name))]
    for path in sorted(names):
        if osp.basename(path).startswith('.') or path.endswith('.part.mp4'):
            continue
        problem = None if path.lower().endswith(VIDEO_EXTENSIONS) else video_problem(path)
        if problem is None:
            videos.append(path)
        else:
            skipped.append((path, problem))
    return videos, skipped
