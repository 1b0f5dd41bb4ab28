"""Live frames for demo.py --stream: a webcam, a network stream or a file, decoded in a thread
of its own.

A live source does not wait for us: when the model is slower than the frames come, the reader
keeps decoding and the model takes the newest frame, so the frames in between are missed (and
counted) instead of queueing up, and the lag stays bounded. A file is read at full speed with
nothing missed, or with `realtime` paced by its timestamps and then treated as live.
"""
import os.path as osp
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from urllib.parse import urlsplit

import av
import cv2
import numpy as np

from datasets.video_reader import decode_timed_frames, display_rotation, open_video, upright

NETWORK_SCHEMES = ('rtsp', 'rtsps', 'rtmp', 'rtmps', 'udp', 'rtp', 'tcp', 'srt', 'http', 'https')
LIVE_BUFFER = 256          # frames a live reader holds for a slow consumer (older ones are missed)
FILE_BUFFER = 8            # frames a file reader decodes ahead of the consumer
DEFAULT_RATE = 25.0        # output.avi's frame rate when a source does not say its own


class StreamError(RuntimeError):
    """A source that cannot be opened, or that broke off; the message names it."""


@dataclass
class StreamFrame:
    index: int              # position in the stream, 0-based, counting every decoded frame
    time: float             # seconds from the stream's start (timestamps; a camera's clock)
    captured: float         # time.monotonic() when the frame was decoded
    image: np.ndarray       # upright RGB uint8, as the source shows it (None when not kept)
    small: np.ndarray       # the same with its short side at the model's scale size


def source_kind(source):
    """'camera' (a webcam index: 0, 1, ...), 'network' (a URL whose scheme FFmpeg streams)
    or 'file'."""
    text = str(source)
    if text.isdigit():
        return 'camera'
    if urlsplit(text).scheme.lower() in NETWORK_SCHEMES:
        return 'network'
    return 'file'


def network_options(url):
    """FFmpeg options that keep a network stream's delay low: no input buffering, a short
    probe; RTSP over TCP (no lost packets on a busy network); UDP keeps going after an
    overrun."""
    options = {'fflags': 'nobuffer', 'flags': 'low_delay', 'analyzeduration': '500000',
               'probesize': '500000'}
    scheme = urlsplit(url).scheme.lower()
    if scheme.startswith('rtsp'):
        options['rtsp_transport'] = 'tcp'
    if scheme == 'udp':
        options.update(overrun_nonfatal='1', fifo_size='100000')
    return options


def _network_frames(url, open_timeout, read_timeout):
    """(seconds, upright RGB) of a network stream until it ends or goes quiet for
    `read_timeout` seconds (then StreamError says so, after the frames it gave)."""
    try:
        container = av.open(url, options=network_options(url), timeout=(open_timeout, read_timeout))
    except av.error.FFmpegError as err:
        raise StreamError(f'{url}: cannot open the stream within {open_timeout:g} s '
                          f'({err.strerror or err})') from None
    if not container.streams.video:
        container.close()
        raise StreamError(f'{url}: the stream has no video')
    return _timed(container, container.streams.video[0], url, read_timeout)


def _timed(container, stream, name, read_timeout):
    with container:
        stream.thread_type = 'AUTO'
        time_base = stream.time_base or Fraction(1, 90000)
        origin = None
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                origin = frame.pts if origin is None else origin
                yield (float((frame.pts - origin) * time_base),
                       upright(frame.to_ndarray(format='rgb24'), display_rotation(frame)))
        except av.error.ExitError:          # PyAV's read timeout
            raise StreamError(f'{name}: no data for {read_timeout:g} s, the stream has ended') from None
        except av.error.FFmpegError as err:
            raise StreamError(f'{name}: the stream stopped ({err.strerror or err})') from None


def _camera_frames(index):
    capture = cv2.VideoCapture(int(index))
    if not capture.isOpened():
        raise StreamError(f'camera {index}: cannot be opened (is it connected, and free?)')
    start = time.monotonic()
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield time.monotonic() - start, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def open_source(source, open_timeout=10.0, read_timeout=5.0):
    """(kind, iterator of (seconds, upright RGB frame), nominal frames per second for
    output.avi: a file's own, else 25). Opening happens here, so a source that does not exist
    or does not answer is an error before anything starts."""
    kind = source_kind(source)
    if kind == 'camera':
        return kind, _camera_frames(source), DEFAULT_RATE
    if kind == 'network':
        return kind, _network_frames(source, open_timeout, read_timeout), DEFAULT_RATE
    if not osp.exists(source):
        raise StreamError(f'{source}: not found (a file, a camera index or a stream URL: '
                          f'{", ".join(s + "://" for s in NETWORK_SCHEMES)})')
    container, stream = open_video(source)   # not a video: DecodeError in plain words, now
    with container:
        rate = float(stream.average_rate or stream.guessed_rate or DEFAULT_RATE)
    return kind, decode_timed_frames(source), rate


class FrameReader:
    """Decodes `frames` in a thread. live: a consumer that falls behind misses frames (it
    takes the newest); otherwise the reader waits for it. realtime: frames are released at
    their own times, as a camera would give them. `resize` makes each frame's `small`;
    keep_image: also keep the full frame (for output.avi and the window)."""

    def __init__(self, frames, resize, live=True, realtime=False, keep_image=False):
        self.frames, self.resize = frames, resize
        self.live, self.realtime, self.keep_image = live, realtime, keep_image
        self.pending = deque()
        self.condition = threading.Condition()
        self.finished = False
        self.error = None
        self.overflowed = 0             # frames pushed out unseen (live, consumer far behind)
        self.decoded = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name='stream-reader', daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        started = None
        try:
            for index, (seconds, image) in enumerate(self.frames):
                if self.stopping:
                    break
                if self.realtime:
                    started = time.monotonic() - seconds if started is None else started
                    time.sleep(max(0.0, started + seconds - time.monotonic()))
                captured = time.monotonic()
                frame = StreamFrame(index, seconds, captured, image if self.keep_image else None,
                                    self.resize(image[None])[0])
                self._put(frame)
                self.decoded += 1
        except Exception as err:          # handed to the consumer, which raises it
            self.error = err
        finally:
            with self.condition:
                self.finished = True
                self.condition.notify_all()
            close = getattr(self.frames, 'close', None)
            if close:
                close()

    def _put(self, frame):
        with self.condition:
            if not self.live:
                while len(self.pending) >= FILE_BUFFER and not self.stopping:
                    self.condition.wait(0.1)
            elif len(self.pending) >= LIVE_BUFFER:
                self.pending.popleft()
                self.overflowed += 1
            self.pending.append(frame)
            self.condition.notify_all()

    def take(self, timeout=0.5):
        """Every frame decoded since the last call, oldest first; [] when none came within
        `timeout`; None when the source has ended (its error, if it broke, is raised)."""
        with self.condition:
            if not self.pending and not self.finished:
                self.condition.wait(timeout)
            frames = list(self.pending)
            self.pending.clear()
            self.condition.notify_all()
            if frames or not self.finished:
                return frames
        if self.error is not None and not self.decoded:
            raise self.error
        return None

    @property
    def end_reason(self):
        """Why the source ended after giving frames (a network stream going quiet), or None."""
        return str(self.error) if self.error is not None else None

    def stop(self):
        """Stop decoding (Ctrl-C, --max-seconds) and wait for the thread."""
        self.stopping = True
        with self.condition:
            self.condition.notify_all()
        self.thread.join(timeout=10)
