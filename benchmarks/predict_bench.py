"""predict.py throughput: videos per second for TSN and I3D, with 1 and 2 loader workers,
PyTorch (the checkpoint) against ONNX Runtime (the float export and the INT8 one), all measured
in one run.

    python -m benchmarks.predict_bench [--models tsn,i3d] [--videos 32] [--size 224] [--data DIR]
                                       [--quick]

Data: rendered synthetic videos (H.264 mp4, 170x128 scaled to the test size, 48 frames).
Models: TSN-R50 (8 segments x 1 crop) and I3D-R50 8x8 (1 clip x 1 crop) with random weights,
their checkpoints and exports written first; the INT8 export is calibrated on half the videos
(a metafile of them stands for a validation set) and kept whatever its agreement with the
float model, which says little for random weights: only its speed is measured here. Each row
is one whole predict.py run over every video (model loading included), into a fresh output
folder. The baseline of each model is PyTorch with 1 worker. --quick: TSN only (each model's
exports take half a minute on 2 cores), 4 videos at 64 px.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
import time
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import config  # noqa: E402
import export_model  # noqa: E402
import predict  # noqa: E402
from benchmarks import quick  # noqa: E402
from DataTool.common.video_io import write_video  # noqa: E402
from DataTool.Synthetic.render import CLASS_NAMES, render_clip  # noqa: E402
from models import build_model  # noqa: E402
from utils.checkpoint import save_atomic  # noqa: E402

MODELS = {
    'tsn': ('TSN-R50 8 seg x 1 crop',
            ['MODEL_NAME', 'tsn', 'BACKBONE', 'resnet50', 'VAL.NUM_SEGMENTS', '8']),
    'i3d': ('I3D-R50 8x8 1 clip x 1 crop',
            ['MODEL_NAME', 'i3d', 'BACKBONE', 'resnet50', 'DATA.CLIP_LEN', '8',
             'DATA.FRAME_INTERVAL', '4', 'VAL.NUM_CLIPS', '1']),
}


def make_videos(folder, count, frames=48):
    """`count` rendered videos in `folder`, and a metafile of them (returned) for calibration."""
    os.makedirs(folder, exist_ok=True)
    lines = []
    for index in range(count):
        name = f'video_{index:03d}.mp4'
        label = index % len(CLASS_NAMES)
        if not osp.isfile(osp.join(folder, name)):
            write_video(osp.join(folder, name), render_clip(label, frames, np.random.default_rng(index)))
        lines.append(f'{name} {frames} {label}\n')
    metafile = osp.join(osp.dirname(folder), 'videos.txt')
    with open(metafile, 'w', encoding='utf-8') as handle:
        handle.writelines(lines)
    return metafile


def experiment(root, overrides, size, videos, metafile, clips):
    """The config of one model, with a random-weight checkpoint and its exports (float, INT8)."""
    cfg = config.build_config(overrides + [
        'SNAPSHOT_ROOT', root, 'DATASET.ROOT_PATH', root, 'DATASET.CLASS_NUM', '8',
        'DATASET.VIDEO_SEQ_PATH', videos, 'DATASET.VAL_META_PATH', metafile,
        'DATASET.SCALE_SIZE', str(size * 256 // 224), 'DATASET.CROP_SIZE', str(size),
        'VAL.NUM_CROPS', '1', 'VAL.BATCH_SIZE', '4', 'NUM_THREADS', '2',
        'EXP_TAG', overrides[1]])
    torch.manual_seed(0)
    save_atomic({'model': build_model(cfg).state_dict(), 'epoch': 0, 'config': config.to_plain(cfg)},
                osp.join(config.exp_dir(cfg), 'checkpoints', 'best.pth'))
    export_model.export(cfg, int8=export_model.Int8Options(
        calib_clips=max(1, clips // 2), check_clips=clips, min_agreement=0))
    return cfg


def timed_run(cfg, videos, out, workers, onnx):
    cfg = config.updated(cfg, {'DATASET.NUM_WORKERS': workers})
    shutil.rmtree(out, ignore_errors=True)
    args = SimpleNamespace(input=videos, onnx=onnx, checkpoint=None, out=out, topk=5, views=None,
                           untrimmed=False, window=0, stride=0, pooling='topk', pool_k=3, overwrite=False)
    started = time.perf_counter()
    counts = predict.run_prediction(cfg, args)
    return counts['predicted'] / (time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', default=','.join(MODELS), help=f"of {', '.join(MODELS)}")
    parser.add_argument('--videos', type=int, default=32)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--data', default=osp.join('output', 'bench_data', 'predict'))
    args = quick.parse_args(parser, argv, models='tsn', videos=4, size=64)
    unknown = set(args.models.split(',')) - set(MODELS)
    if unknown:
        parser.error(f"--models {args.models}: use {', '.join(MODELS)}")
    os.environ.setdefault('DLAC_PROGRESS', '0')
    videos = osp.join(args.data, 'videos')
    metafile = make_videos(videos, args.videos)
    print(f'{os.cpu_count()} CPU cores, torch {torch.__version__}; {args.videos} videos of 48 frames, '
          f'{args.size} px; whole predict.py runs\n')
    print('| model | backend | workers | videos/s | vs PyTorch, 1 worker |')
    print('|---|---|---|---|---|')
    for key in args.models.split(','):
        name, overrides = MODELS[key]
        cfg = experiment(args.data, overrides, args.size, osp.abspath(videos), osp.abspath(metafile),
                         args.videos)
        export = osp.join(config.exp_dir(cfg), 'export')
        baseline = None
        for backend, path in (('PyTorch', None), ('ONNX Runtime', osp.join(export, 'model.onnx')),
                              ('ONNX Runtime INT8', osp.join(export, 'model_int8.onnx'))):
            for workers in (1, 2):
                rate = timed_run(cfg, videos, osp.join(args.data, 'out'), workers, path)
                baseline = baseline or rate
                print(f'| {name} | {backend} | {workers} | {rate:.2f} | {rate / baseline:.2f} |', flush=True)


if __name__ == '__main__':
    main()
