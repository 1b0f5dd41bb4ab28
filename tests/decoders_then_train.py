"""Decode in this process through every decoder, then train one epoch on video files with 2
loader workers under each loader: what train.py does (decodes at start-up, then its workers
decode), made certain. Used in-process by tests/test_worker_start.py and, as a script, under
another PyAV version:

    python tests/decoders_then_train.py DATA_ROOT SNAPSHOT [KEY VALUE ...]

The script prints 'av <version>' and one 'trained <loader>' line per loader.
"""
import glob
import os.path as osp
import sys

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

LOADERS = ('SuperLoader', 'DataLoaderX')


def decode_with_every_decoder(synthetic_root):
    """PyAV (with a resizing conversion: swscale's threads), OpenCV (its thread pool),
    simplejpeg and the JPEG region decoder, each on the rendered set's files."""
    import av
    import cv2
    import simplejpeg
    from datasets import jpeg_region
    from datasets.video_reader import load_video
    video = sorted(glob.glob(osp.join(synthetic_root, 'VideoSeq', '*', '*.mp4')))[0]
    with av.open(video) as container:
        for number, frame in enumerate(container.decode(video=0)):
            frame.to_ndarray(format='rgb24', width=2 * frame.width, height=2 * frame.height)
            if number == 4:
                break
    assert load_video(video, [0, 3, 6], min_side=24).shape[0] == 3
    capture = cv2.VideoCapture(video)
    ok, image = capture.read()
    capture.release()
    assert ok
    cv2.resize(np.tile(image, (8, 8, 1)), (700, 700))
    jpeg = sorted(glob.glob(osp.join(synthetic_root, 'VideoSeq', '*', '*', 'img_00001.jpg')))[0]
    with open(jpeg, 'rb') as handle:
        data = handle.read()
    assert simplejpeg.decode_jpeg(data).ndim == 3
    if jpeg_region.library() is not None:
        width, height, num = jpeg_region.scaled_size(data, jpeg, 0)
        out = np.empty((16, 16, 3), np.uint8)
        jpeg_region.decode_region(data, jpeg, num, (width, height), (0, 0, 16, 16), out)


def video_overrides(data_root, snapshot, loader, extra=()):
    """train.py's KEY VALUE list: the tiny set's video metafiles, 2 workers, one epoch."""
    meta = osp.join(str(data_root), 'synthetic', 'MetafileSeq')
    from conftest import tiny_overrides
    return tiny_overrides(data_root, snapshot, **{
        'DATASET.TRAIN_META_PATH': osp.join(meta, 'train_split1_video.txt'),
        'DATASET.VAL_META_PATH': osp.join(meta, 'val_split1_video.txt'),
        'DATASET.LOADER': loader, 'DATASET.NUM_WORKERS': 2, 'DATASET.LOADER_TIMEOUT': 120,
        'TRAIN.EPOCHS': 1, 'EXP_TAG': f'video_{loader}'}) + list(extra)


def main(argv):
    import av
    import train
    data_root, snapshot, extra = argv[0], argv[1], argv[2:]
    print('av', av.__version__, flush=True)
    decode_with_every_decoder(osp.join(data_root, 'synthetic'))
    for loader in LOADERS:
        code = train.main(video_overrides(data_root, snapshot, loader, extra))
        if code != 0:
            return code
        print('trained', loader, flush=True)
    return 0


if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))     # conftest's helpers
    sys.exit(main(sys.argv[1:]))
