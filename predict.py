"""Predict the classes of many videos with a trained model:
    python predict.py --input PATH [--onnx export/model.onnx] [--out DIR] [--topk 5]
                      [--views 1x1] [--cfg FILE ...] [KEY VALUE ...]

PATH is a video file, a folder (searched recursively) or a list file (.txt or .csv, one path a
line, relative to the list's folder, a metafile's extra columns ignored). Each video gets the
test views evaluation uses (VAL.NUM_SEGMENTS or VAL.NUM_CLIPS x VAL.NUM_CROPS; --views
CLIPSxCROPS trades accuracy for speed), decoded in the loader's worker processes and batched
across videos; the softmax scores are averaged over the views. The model is the experiment's
checkpoint (PyTorch, any device, AMP) or, with --onnx, an exported model in ONNX Runtime.

Writes to <experiment>/predict/ (or --out), appending as it goes, so a rerun skips the videos
already done: predictions.jsonl and predictions.csv (path, top-k classes and scores, views,
seconds per video) and unreadable.csv (path, reason). A file that cannot be read is listed and
counted; the run goes on.

--untrimmed: long or untrimmed videos. Windows of the model's clip slide over the whole video
(--window, --stride frames; default the clip's span and half of it), their scores are pooled
(--pooling topk (default, the mean of each class's --pool-k best windows), mean or max) into
the video's prediction, and every window's scores go to windows.jsonl.
"""
import csv
import json
import os
import os.path as osp
import re
import sys
import time

import numpy as np
import torch

from config import (ConfigError, build_parser, class_names_of, default_checkpoint, exp_dir,
                    log_resolution, parse_config, trained_source, updated)
from datasets import DecodeError, VideoRecord, build_loader, build_normalizer, video_dataset
from datasets.records import VIDEO_EXTENSIONS
from datasets.clip_spec import ClipSpec
from datasets.video_reader import count_video_frames, decode_frames
from utils.acceleration import runnable_model
from utils.cli import run_entry_point
from utils.device import select_device, set_cpu_threads
from utils.distributed import DistContext
from utils.exported_model import TorchPredictor, exported_input, load_exported
from utils.logger import setup_logger
from utils.progress import progress
from utils.safe_text import from_spreadsheet_cell, printable_path, spreadsheet_row
from utils.trained_model import load_model
from utils.untrimmed import add_untrimmed_arguments, score_untrimmed

LIST_SUFFIXES = ('.txt', '.csv', '.lst')


# ---------------------------------------------------------------- what to predict
def list_inputs(path):
    """Absolute paths: the file itself, every file under a folder (sorted), or a list file's
    lines. Files that are not videos stay in: they are reported as unreadable."""
    if osp.isdir(path):
        found = [osp.join(folder, name) for folder, _, names in os.walk(path) for name in names
                 if not name.startswith('.')]
        return sorted(osp.abspath(p) for p in found)
    if not osp.isfile(path):
        raise FileNotFoundError(f'--input {path}: no such file or folder')
    if path.lower().endswith(LIST_SUFFIXES):
        base = osp.dirname(osp.abspath(path))
        with open(path, encoding='utf-8', errors='surrogateescape') as handle:   # names as the disk has them
            lines = [re.split(r'[,\t]', line.strip())[0] for line in handle
                     if line.strip() and not line.lstrip().startswith('#')]
        return [osp.abspath(osp.join(base, line)) for line in lines]
    return [osp.abspath(path)]


def parse_views(text, cfg):
    """`cfg` with --views 'CLIPSxCROPS' as VAL.NUM_SEGMENTS (segment models) or
    VAL.NUM_CLIPS, and VAL.NUM_CROPS."""
    match = re.fullmatch(r'(\d+)x(1|3|10)', text or '')
    if not match:
        raise ConfigError(f"--views {text!r}: expected CLIPSxCROPS with 1, 3 or 10 crops, e.g. '1x1'")
    first = 'VAL.NUM_SEGMENTS' if cfg.DATASET.SAMPLING == 'segment' else 'VAL.NUM_CLIPS'
    return updated(cfg, {first: int(match.group(1)), 'VAL.NUM_CROPS': int(match.group(2))})


def views_text(cfg):
    kind = 'segments' if cfg.DATASET.SAMPLING == 'segment' else 'clips'
    first = cfg.VAL.NUM_SEGMENTS if cfg.DATASET.SAMPLING == 'segment' else cfg.VAL.NUM_CLIPS
    return f'{first} {kind} x {cfg.VAL.NUM_CROPS} crops'


class VideoFiles(torch.utils.data.Dataset):
    """Video files decoded into evaluation's test views. Frames are counted when a file is
    loaded (in the worker); a file that cannot be read gives a blank clip flagged as bad."""

    def __init__(self, paths, cfg):
        self.paths = paths
        self.views = video_dataset(cfg, [VideoRecord(path, 1, 0) for path in paths], 'test', root='/',
                                   replace_bad=False)
        clips = 1 if cfg.DATASET.SAMPLING == 'segment' else cfg.VAL.NUM_CLIPS
        self.shape = (clips * cfg.VAL.NUM_CROPS, 3, self.views.frames_per_clip(),
                      cfg.DATASET.CROP_SIZE, cfg.DATASET.CROP_SIZE)

    def __len__(self):
        return len(self.paths)

    def describe(self, index):
        return self.paths[index]

    def load(self, index):
        path = self.paths[index]
        if not path.lower().endswith(VIDEO_EXTENSIONS):
            raise DecodeError(f'not a video file ({", ".join(VIDEO_EXTENSIONS)})')
        return self.views.load_record(VideoRecord(path, count_video_frames(path), 0),
                                      self.views._rng(index))

    def __getitem__(self, index):
        try:
            return self.load(index), 0, index, -1
        except Exception:  # noqa: BLE001 - any decoder failure: listed, and the run goes on
            return torch.zeros(self.shape, dtype=torch.uint8), 0, index, index


def unreadable_reason(dataset, index):
    """Why a flagged file could not be read (found again in this process, for the report)."""
    try:
        dataset.load(index)
    except Exception as err:  # noqa: BLE001
        return ' '.join(str(err).split()) or type(err).__name__
    return 'could not be read in the loader process'


# ---------------------------------------------------------------- the outputs
class PredictionFiles:
    """predictions.jsonl / .csv and unreadable.csv in `out_dir`, appended to as batches
    finish; `done` holds the paths a previous run already wrote. Paths are written as
    printable UTF-8 (a name that is not UTF-8 shows its bytes as \\xNN) and CSV cells that a
    spreadsheet would run as formulas are escaped (utils.safe_text)."""

    def __init__(self, out_dir, topk):
        os.makedirs(out_dir, exist_ok=True)
        self.jsonl, self.csv = osp.join(out_dir, 'predictions.jsonl'), osp.join(out_dir, 'predictions.csv')
        self.unreadable = osp.join(out_dir, 'unreadable.csv')
        self.topk, self.done = topk, set()
        if osp.isfile(self.jsonl):
            with open(self.jsonl, encoding='utf-8') as handle:
                self.done.update(json.loads(line)['path'] for line in handle if line.strip())
        if osp.isfile(self.unreadable):
            with open(self.unreadable, encoding='utf-8', newline='') as handle:
                self.done.update(from_spreadsheet_cell(row['path']) for row in csv.DictReader(handle))
        self._header(self.csv, ['path'] + [f'{kind}{rank}' for rank in range(1, topk + 1)
                                           for kind in ('class', 'score')] + ['views', 'seconds'])
        self._header(self.unreadable, ['path', 'reason'])

    @staticmethod
    def _header(path, columns):
        if not osp.isfile(path):
            with open(path, 'w', encoding='utf-8', newline='') as handle:
                csv.writer(handle).writerow(columns)

    def is_done(self, path):
        return printable_path(path) in self.done

    def add(self, path, scores, names, views, seconds):
        order = np.argsort(-scores)[:self.topk]
        top = [[names[i], round(float(scores[i]), 6)] for i in order]
        path = printable_path(path)
        with open(self.jsonl, 'a', encoding='utf-8') as handle:
            handle.write(json.dumps({'path': path, 'top': top, 'views': views,
                                     'seconds': round(seconds, 4)}) + '\n')
        with open(self.csv, 'a', encoding='utf-8', newline='') as handle:
            csv.writer(handle).writerow(spreadsheet_row(
                [path] + [v for pair in top for v in pair] + [views, round(seconds, 4)]))

    def add_unreadable(self, path, reason):
        with open(self.unreadable, 'a', encoding='utf-8', newline='') as handle:
            csv.writer(handle).writerow(spreadsheet_row([printable_path(path), printable_path(reason)]))


# ---------------------------------------------------------------- the model
def checkpoint_scorer(cfg, ctx, logger, checkpoint_path):
    """(scores of a uint8 batch [B, V, C, T, H, W] -> [B, K], class names, normaliser) from
    the experiment's checkpoint, on ctx.device with the AMP/compile switches."""
    model, _ = load_model(cfg, checkpoint_path, logger)
    model = runnable_model(model.to(ctx.device), cfg, ctx, logger, ddp=False).eval()
    normalize = build_normalizer(cfg, ctx.device)

    @torch.no_grad()
    def scores(clips):
        batch, views = clips.shape[:2]
        probs = torch.softmax(model(normalize(clips.flatten(0, 1))).float(), dim=1)
        return probs.view(batch, views, -1).mean(dim=1).cpu().numpy()
    return scores, class_names_of(cfg)


def onnx_scorer(cfg, onnx_path):
    """The same from an exported model: ONNX Runtime, normalised as its meta.json says."""
    predictor, spec, names = load_exported(onnx_path)
    normalize = exported_input(spec, cfg, onnx_path)

    def scores(clips):
        batch, views = clips.shape[:2]
        probs = predictor(normalize(clips.flatten(0, 1)).numpy())
        return probs.reshape(batch, views, -1).mean(axis=1)
    return scores, names


# ---------------------------------------------------------------- the run
def run_prediction(cfg, args):
    out_dir = args.out or osp.join(exp_dir(cfg), 'predict')
    logger = setup_logger(osp.join(out_dir, 'log'), filename='predict.log')
    log_resolution(cfg, logger)
    set_cpu_threads(cfg.NUM_THREADS)
    if args.views:
        cfg = parse_views(args.views, cfg)
    paths = list_inputs(args.input)
    files = PredictionFiles(out_dir, args.topk)
    todo = [path for path in paths if not files.is_done(path)]
    logger.info('%d files under %s: %d done by an earlier run, %d to predict with %s', len(paths),
                args.input, len(paths) - len(todo), len(todo), views_text(cfg))
    if not todo:
        return {'predicted': 0, 'unreadable': 0, 'out': out_dir}
    if args.untrimmed:
        return run_untrimmed(cfg, args, todo, files, logger)
    if args.onnx:
        scores, names = onnx_scorer(cfg, args.onnx)
    else:
        ctx = DistContext(device=select_device(cfg))
        scores, names = checkpoint_scorer(cfg, ctx, logger,
                                          args.checkpoint or default_checkpoint(cfg))
    dataset = VideoFiles(todo, cfg)
    loader = build_loader(cfg, dataset, 'test')
    counts = {'predicted': 0, 'unreadable': 0, 'out': out_dir}
    bar = progress(None, desc='predict', total=len(todo), unit='video')
    started = time.time()
    for clips, _, indices, bad in loader:
        batch_started = time.time()
        good = (bad < 0).numpy()
        batch_scores = scores(clips[torch.from_numpy(good)]) if good.any() else []
        seconds = (time.time() - batch_started) / max(len(indices), 1)
        rows = iter(batch_scores)
        for index, readable in zip(indices.tolist(), good):
            if readable:
                files.add(todo[index], next(rows), names, views_text(cfg), seconds)
                counts['predicted'] += 1
            else:
                reason = unreadable_reason(dataset, index)
                files.add_unreadable(todo[index], reason)
                logger.warning('cannot read %s: %s', printable_path(todo[index]), reason)
                counts['unreadable'] += 1
        bar.update(len(indices))
    bar.close()
    elapsed = time.time() - started
    logger.info('%d videos predicted, %d unreadable (listed in %s), %.1f videos/s -> %s',
                counts['predicted'], counts['unreadable'], files.unreadable,
                len(todo) / max(elapsed, 1e-9), out_dir)
    return counts


def run_untrimmed(cfg, args, todo, files, logger):
    """Each video in the main process: its frames resized once, windows predicted in
    batches, pooled; windows.jsonl keeps the per-window scores."""
    if args.onnx:
        predictor, spec, names = load_exported(args.onnx)
    else:
        model, _ = load_model(cfg, args.checkpoint or default_checkpoint(cfg), logger)
        predictor, spec, names = TorchPredictor(model), ClipSpec.from_config(cfg), class_names_of(cfg)
    counts = {'predicted': 0, 'unreadable': 0, 'out': osp.dirname(files.jsonl)}
    for path in progress(todo, desc='predict (untrimmed)', unit='video'):
        started = time.time()
        try:
            if not path.lower().endswith(VIDEO_EXTENSIONS):
                raise DecodeError(f'not a video file ({", ".join(VIDEO_EXTENSIONS)})')
            frames = [spec.resize(frame[None])[0] for frame in decode_frames(path)]
            if not frames:
                raise DecodeError('no decodable frame')
        except Exception as err:  # noqa: BLE001 - any decoder failure: listed, and the run goes on
            files.add_unreadable(path, ' '.join(str(err).split()) or type(err).__name__)
            counts['unreadable'] += 1
            continue
        pooled, windows = score_untrimmed(frames, spec, predictor, args.window, args.stride,
                                          args.pooling, args.pool_k)
        files.add(path, pooled, names, f"{len(windows['starts'])} windows of {windows['window']} "
                  f'frames, {args.pooling} pooling', time.time() - started)
        with open(osp.join(counts['out'], 'windows.jsonl'), 'a', encoding='utf-8') as handle:
            handle.write(json.dumps(dict(path=path, **windows)) + '\n')
        counts['predicted'] += 1
    logger.info('%d videos predicted (untrimmed), %d unreadable -> %s', counts['predicted'],
                counts['unreadable'], counts['out'])
    return counts


def main(argv=None):
    parser = build_parser('Predict the classes of many videos')
    parser.add_argument('--input', required=True, help='a video, a folder (recursive) or a list file')
    parser.add_argument('--onnx', default=None, help='an exported model.onnx instead of the checkpoint')
    parser.add_argument('--checkpoint', default=None, help='default: <experiment>/checkpoints/best.pth')
    parser.add_argument('--out', default=None, help='default: <experiment>/predict')
    parser.add_argument('--topk', type=int, default=5)
    parser.add_argument('--views', default=None, help="CLIPSxCROPS, e.g. '1x1' (default: VAL.*)")
    add_untrimmed_arguments(parser, 'windows over the whole video, pooled into one prediction')
    cfg, args = parse_config(argv, parser=parser, exp_type='E',
                             trained=trained_source)
    return run_entry_point(run_prediction, cfg, args)


if __name__ == '__main__':
    sys.exit(main())
