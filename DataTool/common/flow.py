"""Video file -> optical flow frames flow_x_00001.jpg / flow_y_00001.jpg, as TSN stores them.

Flow between each pair of neighbouring frames (N frames give N - 1 fields), computed on the
grey frames at the extraction size. TV-L1 (TSN's choice) when the OpenCV build has it
(opencv-contrib: cv2.optflow), Farneback otherwise. Each component is clipped to
[-BOUND, BOUND] pixels and scaled to 0..255 (128 = no motion), one greyscale JPEG per
component. A `.flow_done` marker holding the count is written last (resumable extraction).
"""
import os
import os.path as osp

import cv2
import numpy as np

from datasets.video_reader import decode_frames

from .frames import read_done_marker, resize_short_side, write_done_marker

BOUND = 20.0
FLOW_DONE_MARKER = '.flow_done'


def flow_algorithm():
    """'tvl1' when this OpenCV build has TV-L1 (opencv-contrib), else 'farneback'."""
    optflow = getattr(cv2, 'optflow', None)
    return 'tvl1' if optflow is not None and hasattr(optflow, 'DualTVL1OpticalFlow_create') else 'farneback'


def flow_algorithm_note():
    if flow_algorithm() == 'tvl1':
        return 'optical flow: TV-L1 (cv2.optflow)'
    return ('optical flow: Farneback (this OpenCV has no TV-L1; install '
            'opencv-contrib-python-headless for the TV-L1 flow TSN used)')


def _flow_function(algorithm):
    if algorithm == 'tvl1':
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        return lambda previous, current: tvl1.calc(previous, current, None)
    return lambda previous, current: cv2.calcOpticalFlowFarneback(
        previous, current, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5,
        poly_sigma=1.2, flags=0)


def quantize_flow(component, bound=BOUND):
    """Flow in pixels -> uint8: [-bound, bound] onto [0, 255], clipped."""
    scaled = (np.clip(component, -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.round(scaled).astype(np.uint8)


def dequantize_flow(image, bound=BOUND):
    """uint8 flow JPEG -> pixels (the inverse of quantize_flow, up to rounding)."""
    return image.astype(np.float32) * (2 * bound / 255.0) - bound


def extract_flow(video_path, out_dir, flow_format='flow_{}_{:05d}.jpg', short_side=0,
                 start=None, end=None, algorithm=None, quality=95, frame_start=1):
    """Write the flow fields of `video_path` (or of its [start, end) seconds) into `out_dir`,
    numbered from `frame_start`; returns how many (frames - 1)."""
    os.makedirs(out_dir, exist_ok=True)
    compute = _flow_function(algorithm or flow_algorithm())
    previous, count = None, 0
    for frame in decode_frames(video_path, start, end, fmt='gray'):
        if short_side:
            frame = resize_short_side(frame, short_side)
        if previous is not None:
            flow = compute(previous, frame)
            count += 1
            for plane, axis in enumerate('xy'):
                target = osp.join(out_dir, flow_format.format(axis, count - 1 + frame_start))
                if not cv2.imwrite(target, quantize_flow(flow[..., plane]),
                                   [cv2.IMWRITE_JPEG_QUALITY, quality]):
                    raise OSError(f'cannot write flow frame {target}')
        previous = frame
    write_done_marker(out_dir, FLOW_DONE_MARKER, count)
    return count


def finished_flow_count(out_dir):
    """Flow-field count of a folder extract_flow completed, else None."""
    return read_done_marker(out_dir, FLOW_DONE_MARKER)
