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


# Keyframes further apart than this make random access slow: a sampled frame costs up to this
# many decoded frames. DataTool.transcode's default is a keyframe every 8 frames.
LONG_KEYFRAME_INTERVAL = 32


@dataclass(frozen=True)
class PacketSurvey:
    """What the packets of a video stream say, read without decoding a frame."""
    frames: int                 # packets with a picture: the frames a decoder will give
    declared: int               # frames the container declares (0: it does not say)
    keyframe_interval: int      # the longest run of frames from one keyframe to the next
    keyframes: int
    min_gap: float              # seconds between consecutive frames (by timestamps)
    max_gap: float

    @property
    def variable_rate(self):
        """Frame gaps that differ by more than a tenth of the shortest (and a millisecond):
        variable frame rate, as phones and screen recorders write."""
        return self.max_gap - self.min_gap > max(0.001, 0.1 * self.min_gap)

    @property
    def truncated(self):
        """Fewer frames present than the container declares (a cut download whose index sits
        at the front): a frame or two short is normal (edit lists)."""
        return bool(self.declared) and self.declared - self.frames > max(2, self.declared // 100)


def survey_packets(path):
    """PacketSurvey of `path`'s first video stream (demuxing only: fast, a few ms for a clip);
    DecodeError in plain words when it is not a video or its data breaks off."""
    container, stream = open_video(path)
    with container:
        time_base = stream.time_base or Fraction(1, 90000)
        stamps, keyframe_stamps = [], []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                stamps.append(stamp if stamp is not None else (stamps[-1] + 1 if stamps else 0))
                if packet.is_keyframe:
                    keyframe_stamps.append(stamps[-1])
        except av.error.FFmpegError as err:
            raise decode_failure(path, err, 0) from None
        declared = int(stream.frames or 0)
    if not stamps:
        raise DecodeError(f'{path}: its video stream holds no frame')
    order = sorted(stamps)
    position = {stamp: i for i, stamp in enumerate(order)}
    keys = sorted({position[stamp] for stamp in keyframe_stamps}) or [0]
    runs = [later - earlier for earlier, later in zip(keys, keys[1:])] + [len(order) - keys[-1]]
    gaps = [float((later - earlier) * time_base) for earlier, later in zip(order, order[1:])]
    return PacketSurvey(len(order), declared, max(runs), len(keys),
                        min(gaps, default=0.0), max(gaps, default=0.0))
