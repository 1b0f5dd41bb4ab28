"""demo.py --stream: recognition on live video as the frames come.

An online TSM scores every frame it takes (one 2D pass, its shifted channels carried over from
the frame before); any other model scores a sliding window over a ring buffer of the latest
frames every `stride` frames. Each result goes to stream.jsonl at once (frame, time, top
classes, latency from the frame's capture to its result, frames missed so far), and, when
asked, onto output.avi and a window on the screen.
"""
import json
import math
import os
import os.path as osp
import signal
import time
from collections import deque
from fractions import Fraction

import av
import cv2
import numpy as np

from .exported_model import softmax
from .overlay import draw_predictions


class FrameByFrame:
    """An online runner on each frame it takes; with a live source only the newest frame of
    those that came since the last result (the others are missed)."""

    def __init__(self, runner, spec):
        self.runner, self.spec = runner, spec
        self.latest, self.waiting = None, 0

    def warm_up(self, small):
        """One pass on a blank frame like `small`, then a fresh stream: the first real frame
        does not pay for the model's first call."""
        self.runner(self.spec.to_input(np.zeros_like(small)[None]).transpose(1, 0, 2, 3))
        self.runner.reset()

    def add(self, frame):
        self.latest = frame
        self.waiting += 1

    def ready(self):
        return self.waiting > 0

    def run(self):
        """(scores [K], frames missed, extra record fields)."""
        clip = self.spec.to_input(self.latest.small[None])          # [3, 1, crop, crop]
        scores = softmax(self.runner(clip.transpose(1, 0, 2, 3))[0])
        missed, self.waiting = self.waiting - 1, 0
        return scores, missed, {}


class SlidingWindow:
    """The last `window` frames in a ring buffer, prepared as one test view and scored every
    `stride` new frames (once the ring is full); a live source that outran the model gets one
    window at its newest frame, and the windows skipped are counted as missed."""

    def __init__(self, predictor, spec, window, stride):
        self.predictor, self.spec = predictor, spec
        self.window, self.stride = window, stride
        self.ring = deque(maxlen=window)
        self.latest, self.since, self.ran = None, 0, False

    def warm_up(self, small):
        blank = np.zeros((len(self.spec.window_indices(0, self.window)),) + small.shape, np.uint8)
        self.predictor(self.spec.to_input(blank)[None])

    def add(self, frame):
        self.ring.append(frame.small)
        self.latest = frame
        self.since += 1

    def ready(self):
        return len(self.ring) == self.window and (not self.ran or self.since >= self.stride)

    def run(self):
        indices = self.spec.window_indices(0, self.window)
        clip = self.spec.to_input(np.stack([self.ring[i] for i in indices]))
        scores = self.predictor(clip[None])[0]
        missed = max(0, self.since // self.stride - 1) if self.ran else 0
        self.since, self.ran = 0, True
        end = self.latest.index + 1
        return scores, missed, {'window': [end - self.window, end]}


class ResultLog:
    """stream.jsonl: one JSON line per result, flushed at once (a reader can follow it live)."""

    def __init__(self, path, names, topk):
        self.handle = open(path, 'w', encoding='utf-8')
        self.names, self.topk = names, topk
        self.latencies, self.count = [], 0

    def write(self, frame, scores, latency_ms, missed, extra):
        best = np.argsort(-scores)[:self.topk]
        record = {'frame': frame.index, 'time': round(frame.time, 3),
                  'latency_ms': round(latency_ms, 1), **extra,
                  'top': [{'class': self.names[i], 'index': int(i), 'score': round(float(scores[i]), 5)}
                          for i in best],
                  'missed': missed}
        self.handle.write(json.dumps(record) + '\n')
        self.handle.flush()
        self.latencies.append(latency_ms)
        self.count += 1
        return [(self.names[i], float(scores[i])) for i in best]

    def close(self):
        self.handle.close()


def annotated_bgr(rgb, top, caption):
    """A BGR copy of an RGB frame with the latest result drawn on it (none yet: as it is)."""
    picture = np.ascontiguousarray(rgb[..., ::-1])
    return draw_predictions(picture, top, caption) if top else picture


class VideoOut:
    """output.avi (MJPEG): every frame that came, with the latest result drawn on it."""

    def __init__(self, path, rate):
        self.path, self.rate = path, rate
        self.container = self.stream = None
        self.frames = 0

    def write(self, rgb, top, caption):
        if self.container is None:
            container = av.open(self.path, 'w')
            self.stream = container.add_stream('mjpeg', rate=Fraction(self.rate).limit_denominator(1001))
            self.stream.pix_fmt, self.stream.options = 'yuvj420p', {'q:v': '3'}
            self.stream.height, self.stream.width = rgb.shape[:2]
            self.container = container
        picture = av.VideoFrame.from_ndarray(annotated_bgr(rgb, top, caption), format='bgr24')
        for packet in self.stream.encode(picture):
            self.container.mux(packet)
        self.frames += 1

    def close(self):
        if self.container is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()


class Screen:
    """A window on the display (--show); where there is none (no DISPLAY, or OpenCV built
    without a GUI) it says so once and stays off. 'q' or Esc ends the stream."""

    def __init__(self, logger):
        self.logger, self.on = logger, True

    def show(self, rgb, top, caption):
        if not self.on:
            return True
        try:
            cv2.imshow('DLAC stream', annotated_bgr(rgb, top, caption))
            return cv2.waitKey(1) & 0xFF not in (ord('q'), 27)
        except cv2.error as err:
            self.logger.warning('--show: no display here (%s); results still go to stream.jsonl',
                                str(err).strip().splitlines()[-1][:120])
            self.on = False
            return True

    def close(self):
        if self.on:
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass


class StopRequest:
    """SIGTERM (and SIGINT outside the console) ends the loop between frames, so the files
    are closed like at the end of the stream."""

    def __init__(self):
        self.asked = None
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:          # not the main thread: Ctrl-C stays KeyboardInterrupt
                pass
        return self

    def _handle(self, signum, _frame):
        self.asked = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def latency_summary(latencies):
    if not latencies:
        return 'no results'
    values = np.asarray(latencies)
    return (f'latency ms: median {np.median(values):.0f}, 95th percentile '
            f'{np.percentile(values, 95):.0f}, max {values.max():.0f}')


def run_stream(reader, scorer, names, out_dir, logger, topk=3, rate=25.0, save_video=False,
               show=False, max_seconds=0.0):
    """Score the frames `reader` (a started FrameReader) gives with `scorer` (FrameByFrame or
    SlidingWindow) until the source ends, `max_seconds` of it have passed, 'q' on the
    window, Ctrl-C or SIGTERM; stream.jsonl (and output.avi) are closed whatever ends it.
    Returns the summary."""
    os.makedirs(out_dir, exist_ok=True)
    results = ResultLog(osp.join(out_dir, 'stream.jsonl'), names, min(topk, len(names)))
    video = VideoOut(osp.join(out_dir, 'output.avi'), rate) if save_video else None
    screen = Screen(logger) if show else None
    top, caption, missed, first, ended = None, '', 0, None, 'the stream ended'
    try:
        with StopRequest() as stop:
            while True:
                frames = reader.take()
                if frames is None:
                    ended = reader.end_reason or ended
                    break
                for frame in frames:
                    scorer.add(frame)
                    if not reader.live and scorer.ready():
                        top, caption, missed = _score(scorer, results, missed)
                if reader.live and frames and scorer.ready():
                    top, caption, missed = _score(scorer, results, missed)
                for frame in frames:
                    if video is not None and frame.image is not None:
                        video.write(frame.image, top, caption)
                if frames and screen is not None and not screen.show(
                        frames[-1].image if frames[-1].image is not None else frames[-1].small, top, caption):
                    ended = 'closed on the window'
                    break
                first = frames[0].time if first is None and frames else first
                if max_seconds and frames and frames[-1].time - first >= max_seconds:
                    ended = f'--max-seconds {max_seconds:g} reached'
                    break
                if stop.asked:
                    ended = f'{stop.asked} received'
                    break
    except KeyboardInterrupt:
        ended = 'interrupted (Ctrl-C)'
    finally:
        reader.stop()
        results.close()
        if video is not None:
            video.close()
        if screen is not None:
            screen.close()
    missed += reader.overflowed
    summary = {'results': results.count, 'missed': missed, 'ended': ended,
               'latency_ms_median': float(np.median(results.latencies)) if results.latencies else math.nan,
               'latency_ms_max': float(max(results.latencies)) if results.latencies else math.nan,
               'output_frames': video.frames if video is not None else 0}
    logger.info('%s: %d results in %s, %d frames missed (the model was slower than the source), '
                '%s', ended, results.count, osp.join(out_dir, 'stream.jsonl'), missed,
                latency_summary(results.latencies))
    return summary


def _score(scorer, results, missed):
    scores, skipped, extra = scorer.run()
    missed += skipped
    frame = scorer.latest
    latency = (time.monotonic() - frame.captured) * 1000
    top = results.write(frame, scores, latency, missed, extra)
    return top, f'{frame.time:.1f} s', missed
