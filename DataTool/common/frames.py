"""Video file -> folder of JPEG frames img_00001.jpg ... (1-based, as in DESIGN.md)."""
import os
import os.path as osp

import cv2

from datasets.video_reader import decode_frames

DONE_MARKER = '.done'


def resize_short_side(image, short_side):
    """Scale so the shorter side is `short_side` pixels (0 = keep), both sides even (H.264)."""
    height, width = image.shape[:2]
    if short_side:
        ratio = short_side / min(height, width)
        size = (max(2, round(width * ratio / 2) * 2), max(2, round(height * ratio / 2) * 2))
        if size != (width, height):
            shrink = size[0] < width
            return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return image
    return image[:height - height % 2, :width - width % 2]


def extract_frames(video_path, out_dir, img_format='img_{:05d}.jpg', quality=95, short_side=0,
                   start=None, end=None, frame_start=1):
    """Decode the frames of `video_path` into `out_dir`, numbered from `frame_start` (1, or 0
    as DLAC's folders); returns the number of frames.

    short_side > 0 resizes so the shorter side has that many pixels (256 is usual); start/end
    (seconds) keep only that part of the video. The marker file `.done`, holding the count, is
    written last, so a half-written folder is never mistaken for a finished one.
    """
    os.makedirs(out_dir, exist_ok=True)
    count = 0
    for count, image in enumerate(decode_frames(video_path, start, end, fmt='bgr24'), start=1):
        if short_side:
            image = resize_short_side(image, short_side)
        target = osp.join(out_dir, img_format.format(count - 1 + frame_start))
        if not cv2.imwrite(target, image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise OSError(f'cannot write frame {target}')
    write_done_marker(out_dir, DONE_MARKER, count)
    return count


def finished_frame_count(out_dir):
    """Frame count of a folder extract_frames completed, else None (resumable extraction)."""
    return read_done_marker(out_dir, DONE_MARKER)


def write_done_marker(out_dir, marker, count):
    """Record that an extraction into `out_dir` finished with `count` images; written last."""
    with open(osp.join(out_dir, marker), 'w', encoding='utf-8') as handle:
        handle.write(str(count))


def read_done_marker(out_dir, marker):
    """The count write_done_marker recorded in `out_dir`, else None (not finished)."""
    path = osp.join(out_dir, marker)
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as handle:
        return int(handle.read().strip() or 0)
