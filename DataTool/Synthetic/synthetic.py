"""Render DLAC's synthetic action dataset: real encoded videos, extracted frames, metafiles.

    python -m DataTool.Synthetic.synthetic --out data/synthetic --seed 0

Writes, under --out (DLAC's default layout for DATASET.NAME 'synthetic'):
    VideoSeq/<class>/<video>.{mp4,avi,mkv,webm}    encoded videos (containers rotate)
    VideoSeq/<class>/<video>/img_00001.jpg ...     their decoded frames
    MetafileSeq/{train,val}_split1.txt             metafiles over the frame folders
    MetafileSeq/{train,val}_split1_video.txt       metafiles over the video files
    MetafileSeq/classInd.txt                       `<index> <class name>`, 0-based
    manifest.json                                  the settings; same settings = no re-render
Deterministic: the same seed gives the same frames.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys

import numpy as np
from utils.progress import progress

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from DataTool.common.flow import extract_flow, finished_flow_count, flow_algorithm_note  # noqa: E402
from DataTool.common.frames import extract_frames, finished_frame_count  # noqa: E402
from DataTool.common.metafile import write_class_index, write_metafile  # noqa: E402
from DataTool.common.video_io import write_video  # noqa: E402
from DataTool.Synthetic.render import CLASS_NAMES, render_clip  # noqa: E402
from datasets.records import parse_metafile  # noqa: E402
from utils.file_lock import file_lock  # noqa: E402

CONTAINERS = ('.mp4', '.avi', '.mkv', '.webm')
SPLITS = ('train', 'val')
FORMAT_VERSION = 3


def _settings(seed, videos_per_class, frame_range, fps, frame_start=1):
    settings = {'format_version': FORMAT_VERSION, 'seed': seed,
                'videos_per_class': list(videos_per_class), 'frame_range': list(frame_range),
                'fps': fps, 'classes': list(CLASS_NAMES)}
    if frame_start != 1:            # sets rendered before the option existed stay valid
        settings['frame_start'] = frame_start
    return settings


def _read_json(path):
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError:
            return None


def is_complete(out_dir, seed=0, videos_per_class=(40, 12), frame_range=(24, 40), fps=16,
                frame_start=1):
    """True when `out_dir` already holds this exact dataset."""
    return (_read_json(osp.join(out_dir, 'manifest.json')) ==
            _settings(seed, videos_per_class, frame_range, fps, frame_start))


def generate(out_dir, seed=0, videos_per_class=(40, 12), frame_range=(24, 40), fps=16,
             show_progress=True, frame_start=1):
    """Render, encode and extract the whole set; returns {split: number of samples}. Frame
    files are numbered from `frame_start` (1, or 0 as DLAC's folders).

    Safe to interrupt: a rerun with the same settings reuses the finished videos and frame
    folders; other settings start from an empty folder. The manifest that marks the set
    complete is written last.
    """
    video_root = osp.join(out_dir, 'VideoSeq')
    meta_root = osp.join(out_dir, 'MetafileSeq')
    manifest_path = osp.join(out_dir, 'manifest.json')
    partial_path = osp.join(out_dir, 'manifest.partial.json')
    settings = _settings(seed, videos_per_class, frame_range, fps, frame_start)
    if _read_json(partial_path) != settings:
        for stale in (video_root, meta_root, manifest_path):
            if osp.isdir(stale):
                shutil.rmtree(stale)
            elif osp.exists(stale):
                os.remove(stale)
        os.makedirs(out_dir, exist_ok=True)
        with open(partial_path, 'w', encoding='utf-8') as handle:
            json.dump(settings, handle, indent=2)
    elif osp.exists(manifest_path):
        os.remove(manifest_path)
    jobs = [(split, label, index)
            for split, count in zip(SPLITS, videos_per_class)
            for label in range(len(CLASS_NAMES)) for index in range(count)]
    samples = {split: {'frames': [], 'video': []} for split in SPLITS}
    for number, (split, label, index) in enumerate(progress(jobs, desc='rendering synthetic set',
                                                            disable=not show_progress)):
        rng = np.random.default_rng((seed, SPLITS.index(split), label, index))
        name = f'{split}_{CLASS_NAMES[label]}_{index:03d}'
        extension = CONTAINERS[number % len(CONTAINERS)]
        rel_video = f'{CLASS_NAMES[label]}/{name}{extension}'
        rel_frames = f'{CLASS_NAMES[label]}/{name}'
        video_path = osp.join(video_root, rel_video)
        frame_dir = osp.join(video_root, rel_frames)
        num_frames = finished_frame_count(frame_dir)
        if num_frames is None or not osp.isfile(video_path):
            frames = render_clip(label, int(rng.integers(frame_range[0], frame_range[1] + 1)), rng)
            write_video(video_path + '.part' + extension, frames, fps)
            os.replace(video_path + '.part' + extension, video_path)
            num_frames = extract_frames(video_path, frame_dir, frame_start=frame_start)
        samples[split]['frames'].append((rel_frames, num_frames, label))
        samples[split]['video'].append((rel_video, num_frames, label))
    for split in SPLITS:
        write_metafile(osp.join(meta_root, f'{split}_split1.txt'), samples[split]['frames'])
        write_metafile(osp.join(meta_root, f'{split}_split1_video.txt'), samples[split]['video'])
    write_class_index(osp.join(meta_root, 'classInd.txt'), CLASS_NAMES)
    os.replace(partial_path, manifest_path)
    return {split: len(samples[split]['frames']) for split in SPLITS}


def add_flow(out_dir, show_progress=True, frame_start=1):
    """Optical flow frames for every rendered video, in its frame folder, and the metafiles
    MetafileSeq/{split}_split1_flow.txt (N frames give N - 1 flow fields). Resumable."""
    meta_root = osp.join(out_dir, 'MetafileSeq')
    for split in SPLITS:
        frames = parse_metafile(osp.join(meta_root, f'{split}_split1.txt'))
        videos = parse_metafile(osp.join(meta_root, f'{split}_split1_video.txt'))
        rows = []
        for record, video in progress(list(zip(frames, videos)), desc=f'synthetic {split} flow',
                                      disable=not show_progress):
            folder = osp.join(out_dir, 'VideoSeq', record.path)
            count = finished_flow_count(folder)
            if count is None:
                count = extract_flow(osp.join(out_dir, 'VideoSeq', video.path), folder,
                                     frame_start=frame_start)
            rows.append((record.path, count, record.label))
        write_metafile(osp.join(meta_root, f'{split}_split1_flow.txt'), rows)


def has_flow(out_dir):
    return all(osp.isfile(osp.join(out_dir, 'MetafileSeq', f'{split}_split1_flow.txt'))
               for split in SPLITS)


def ensure_synthetic(cfg, logger=None):
    """Render the synthetic set under DATASET.ROOT_PATH/synthetic on first use (and its
    optical flow, the first time MODALITY is Flow). Processes that call it at once (DDP) take
    turns through a lock file beside the set: the first renders, the others then find it done."""
    out_dir = osp.join(cfg.DATASET.ROOT_PATH, 'synthetic')
    per_class = tuple(cfg.DATASET.SYNTHETIC_VIDEOS_PER_CLASS)
    frame_range = tuple(cfg.DATASET.SYNTHETIC_FRAMES)
    def log(*args):
        if logger:
            logger.info(*args)

    def waiting():
        log('waiting for another process to finish preparing %s', out_dir)

    with file_lock(out_dir + '.lock', on_wait=waiting):
        start = cfg.DATASET.FRAME_START
        if not is_complete(out_dir, cfg.SEED, per_class, frame_range, frame_start=start):
            log('rendering the synthetic dataset into %s (first use)', out_dir)
            counts = generate(out_dir, cfg.SEED, per_class, frame_range, frame_start=start)
            log('synthetic dataset ready: %s', counts)
        if cfg.MODALITY == 'Flow' and not has_flow(out_dir):
            log('extracting optical flow of the synthetic set (first use); %s', flow_algorithm_note())
            add_flow(out_dir, frame_start=start)
    return out_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=osp.join('data', 'synthetic'), help='output folder')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--videos-per-class', type=int, nargs=2, default=(40, 12),
                        metavar=('TRAIN', 'VAL'))
    parser.add_argument('--frames', type=int, nargs=2, default=(24, 40), metavar=('MIN', 'MAX'),
                        help='frames per video, drawn uniformly')
    parser.add_argument('--fps', type=int, default=16)
    parser.add_argument('--flow', action='store_true', help='also extract optical flow frames')
    args = parser.parse_args(argv)
    if args.frames[0] < 1 or args.frames[0] > args.frames[1]:
        parser.error('--frames MIN MAX needs 1 <= MIN <= MAX')
    counts = generate(args.out, args.seed, args.videos_per_class, args.frames, args.fps)
    if args.flow:
        print(flow_algorithm_note())
        add_flow(args.out)
    print(f"wrote {counts['train']} training and {counts['val']} validation videos to {args.out}")


if __name__ == '__main__':
    main()
