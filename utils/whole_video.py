"""A whole video read for sliding windows (demo, predict --untrimmed): its frames resized
for the model, each frame's time from its timestamp, and what a player shows of it.

Times matter because phones and screen recorders write variable frame rate: frame 100 of a
clip that runs at 28 fps and then 8 fps is not at 100 / average fps seconds."""
from dataclasses import dataclass
from functools import cached_property
from fractions import Fraction

import numpy as np

from datasets.video_probe import VideoInfo, probe_video
from datasets.video_reader import DecodeError, decode_timed_frames
from utils.progress import progress

VFR_TOLERANCE = 0.1       # frame intervals further than this from the typical one: variable rate
MAX_OUTPUT_FPS = 60


@dataclass
class WholeVideo:
    info: VideoInfo
    frames: list            # resized uint8 RGB [H, W, 3], upright
    times: np.ndarray       # seconds of each frame from the video's start

    @cached_property
    def variable_rate(self):
        return is_variable_rate(self.times)

    def span(self, start, end):
        """(seconds, seconds): from frame `start`'s time to the end of frame `end - 1`."""
        return frame_span(self.times, start, end)


def read_whole_video(path, spec, logger=None, show_progress=True, info=None):
    """WholeVideo of `path` resized by `spec` (a ClipSpec); DecodeError in plain words for a
    file that is not a usable video or breaks off. Shows decoding progress in frames.
    `info`: its VideoInfo when the caller has probed it already."""
    info = info or probe_video(path)
    expected = info.frames or round(info.duration * float(info.fps)) or None
    frames, times = [], []
    for seconds, frame in progress(decode_timed_frames(path), desc='decode', total=expected,
                                   unit='frame', disable=not show_progress, leave=False):
        frames.append(spec.resize(frame[None])[0])
        times.append(seconds)
    if not frames:
        raise DecodeError(f'{path}: no decodable frame')
    video = WholeVideo(info, frames, np.asarray(times, dtype=np.float64))
    if logger is not None:
        logger.info('%s: %s, %d frames%s', path, info.describe(), len(frames),
                    ', variable frame rate' if video.variable_rate else '')
    return video


def frame_intervals(times):
    return np.diff(np.asarray(times, dtype=np.float64))


def is_variable_rate(times):
    """True when the frames are not evenly spaced: some interval is more than VFR_TOLERANCE
    away from the median one (timestamps rounded to the time base stay well within it)."""
    steps = frame_intervals(times)
    if len(steps) < 2:
        return False
    typical = float(np.median(steps))
    return typical > 0 and bool(np.any(np.abs(steps - typical) > VFR_TOLERANCE * typical))


def frame_duration(times, index):
    """How long frame `index` is shown: until the next frame, or for the last frame the
    median interval."""
    if index + 1 < len(times):
        return float(times[index + 1] - times[index])
    steps = frame_intervals(times)
    return float(np.median(steps)) if len(steps) else 0.0


def frame_span(times, start, end):
    """(start seconds, end seconds) of frames [start, end)."""
    last = max(start, end - 1)
    return float(times[start]), float(times[last]) + frame_duration(times, last)


def constant_rate_for(times, fps):
    """A constant frame rate that shows a variable-rate video without losing its fast parts:
    the rate of its shorter intervals (10th percentile), at most MAX_OUTPUT_FPS; `fps` (the
    average) for an evenly spaced video."""
    steps = frame_intervals(times)
    steps = steps[steps > 0]
    if not is_variable_rate(times) or not len(steps):
        return Fraction(fps)
    rate = min(MAX_OUTPUT_FPS, 1.0 / float(np.percentile(steps, 10)))
    return Fraction(rate).limit_denominator(1001)


def resample_plan(times, rate):
    """For a constant `rate` output, which source frame each output frame shows: the last one
    shown at or before the output frame's time, so the output keeps the source's timing."""
    end = float(times[-1]) + frame_duration(times, len(times) - 1)
    ticks = np.arange(int(np.ceil(end * float(rate) - 1e-9))) / float(rate)
    return np.clip(np.searchsorted(times, ticks + 1e-9, side='right') - 1, 0, len(times) - 1)


class ShortVideoWarning:
    """Warns once (naming the first) when videos are shorter than the model's clip: their
    frames are repeated to fill it, which a user should know; counts the rest."""

    def __init__(self, logger, needed):
        self.logger, self.needed, self.count = logger, needed, 0

    def check(self, path, frames):
        if frames >= self.needed:
            return
        self.count += 1
        if self.count == 1:
            self.logger.warning('%s has %d frame%s, fewer than the %d the model\'s clip spans: '
                                'its frames are repeated to fill the clip (further short videos '
                                'are counted, not named)', path, frames, '' if frames == 1 else 's',
                                self.needed)

    def summary(self):
        if self.count > 1:
            self.logger.warning('%d videos were shorter than the model\'s clip (%d frames)',
                                self.count, self.needed)
