"""Video file -> folder of JPEG frames img_00001.jpg ... (1-based, as in DESIGN.md)."""
import os
import os.path as osp

import av
import cv2


def extract_frames(video_path, out_dir, img_format='img_{:05d}.jpg', quality=95, short_side=0):
    """Decode every frame of `video_path` into `out_dir`; returns the number of frames.

    `short_side` > 0 resizes so the shorter side has that many pixels (256 is usual).
    Frames are written to a temporary name first so a half-written folder is never mistaken
    for a finished one (the count file `.done` marks completion).
    """
    os.makedirs(out_dir, exist_ok=True)
    count = 0
    with av.open(video_path) as container:
        for count, frame in enumerate(container.decode(video=0), start=1):
            image = frame.to_ndarray(format='bgr24')
            if short_side:
                height, width = image.shape[:2]
                ratio = short_side / min(height, width)
                image = cv2.resize(image, (round(width * ratio), round(height * ratio)),
                                   interpolation=cv2.INTER_AREA)
            target = osp.join(out_dir, img_format.format(count))
            if not cv2.imwrite(target, image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
                raise OSError(f'cannot write frame {target}')
    with open(osp.join(out_dir, '.done'), 'w', encoding='utf-8') as handle:
        handle.write(str(count))
    return count


def finished_frame_count(out_dir):
    """Frame count of a folder extract_frames completed, else None (resumable extraction)."""
    marker = osp.join(out_dir, '.done')
    if not osp.isfile(marker):
        return None
    with open(marker, encoding='utf-8') as handle:
        return int(handle.read().strip() or 0)
