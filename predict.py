"""Predict the classes of many videos with a trained model:
    python predict.py --input PATH [--onnx export/model.onnx] [--out DIR] [--topk 5]
                      [--views 1x1] [--cfg FILE ...] [KEY VALUE ...]

PATH is a video file, a folder (searched recursively) or a list file (.txt or .csv, one path a
line, relative to the list's folder, a metafile's extra columns ignored). Each video gets the
test views evaluation uses (VAL.NUM_SEGMENTS or VAL.NUM_CLIPS x VAL.NUM_CROPS; --views
CLIPSxCROPS trades accuracy for speed), decoded in the loader's worker processes and batched
across videos; the softmax scores are averaged over the views. The model is the experiment's
checkpoint (PyTorch, any device, AMP) or, with --onnx, an exported model in ONNX Runtime.

A file is a video by its content (any container FFmpeg reads: .mp4 .mov .m4v .mkv .avi .webm
.ts .mpg .3gp ...), seen as a player shows it (display rotation applied). Writes to
<experiment>/predict/ (or --out), appending as it goes, so a rerun skips the videos already
done: predictions.jsonl and predictions.csv (path, top-k classes and scores, views, seconds
spent on the video, its duration) and unreadable.csv (path, reason in plain words). A file
that cannot be read is listed and counted; the run goes on. run.json records the model (by
content hash), views, top-k and mode: a rerun into the same folder with any of them changed
is refused (exit 2) unless --overwrite.

--untrimmed: long or untrimmed videos. Windows of the model's clip slide over the whole video
(--window, --stride frames; default the clip's span and half of it), their scores are pooled
(--pooling topk (default, the mean of each class's --pool-k best windows), mean or max) into
the video's prediction, and every window's scores and times (from the frames' timestamps) go
to windows.jsonl.
"""
import json
import os
import os.path as osp
import re
import sys
import time

import torch

from config import (ConfigError, build_parser, class_names_of, default_checkpoint, exp_dir,
                    log_resolution, parse_config, trained_source, updated)
from datasets import VideoRecord, build_loader, build_normalizer, video_dataset
from datasets.clip_spec import ClipSpec
from datasets.video_reader import DecodeError, decode_timed_frames
from utils.acceleration import runnable_model
from utils.cli import run_entry_point
from utils.device import select_device, set_cpu_threads
from utils.distributed import DistContext
from utils.exported_model import TorchPredictor, exported_input, load_exported
from utils.logger import setup_logger
from utils.progress import progress
from utils.prediction_files import PredictionFiles, claim_folder, run_settings
from utils.safe_text import printable_path
from utils.trained_model import load_model
from utils.untrimmed import add_untrimmed_arguments, score_untrimmed, window_plan, window_starts
from utils.whole_video import ShortVideoWarning, frame_span, read_whole_video

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
    """Video files decoded into evaluation's test views. Whether a file is a video is decided
    by its content; frames are counted when it is loaded (in the worker). A sample is (clip,
    0, index, bad flag, frames, seconds spent decoding, duration); a file that cannot be read
    gives a blank clip flagged as bad."""

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
        """(views, frames, duration in seconds by the frames' timestamps) of video `index`."""
        path = self.paths[index]
        times = [seconds for seconds, _ in decode_timed_frames(path, fmt=None)]
        if not times:
            raise DecodeError(f'{path}: no decodable frame')
        views = self.views.load_record(VideoRecord(path, len(times), 0), self.views._rng(index))
        return views, len(times), frame_span(times, 0, len(times))[1]

    def __getitem__(self, index):
        started = time.perf_counter()
        try:
            clip, frames, duration = self.load(index)
            return clip, 0, index, -1, frames, time.perf_counter() - started, duration
        except Exception:  # noqa: BLE001 - any decoder failure: listed, and the run goes on
            return torch.zeros(self.shape, dtype=torch.uint8), 0, index, index, 0, 0.0, 0.0


def unreadable_reason(dataset, index):
    """Why a flagged file could not be read (found again in this process, for the report),
    in plain words without the path the row already holds."""
    try:
        dataset.load(index)
    except Exception as err:  # noqa: BLE001
        reason = ' '.join(str(err).split()) or type(err).__name__
        return reason.removeprefix(f'{dataset.paths[index]}: ')
    return 'could not be read in the loader process'


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
def model_file(cfg, args):
    """The file whose predictions these are: --onnx, --checkpoint or the experiment's best."""
    return args.onnx or args.checkpoint or default_checkpoint(cfg)


def run_prediction(cfg, args):
    out_dir = args.out or osp.join(exp_dir(cfg), 'predict')
    logger = setup_logger(osp.join(out_dir, 'log'), filename='predict.log')
    log_resolution(cfg, logger)
    set_cpu_threads(cfg.NUM_THREADS)
    if args.views:
        cfg = parse_views(args.views, cfg)
    paths = list_inputs(args.input)
    untrimmed = ({'window': args.window, 'stride': args.stride, 'pooling': args.pooling,
                  'pool_k': args.pool_k} if args.untrimmed else None)
    model_path = model_file(cfg, args)
    if not osp.isfile(model_path):
        raise FileNotFoundError(f'{model_path}: no such model file (train first, or give '
                                '--checkpoint / --onnx)')
    claim_folder(out_dir, run_settings(model_path, None if untrimmed else views_text(cfg),
                                       args.topk, untrimmed), model_path, args.overwrite)
    files = PredictionFiles(out_dir, args.topk)
    todo = [path for path in paths if not files.is_done(path)]
    what = 'windows over each whole video' if untrimmed else views_text(cfg)
    logger.info('%d files under %s: %d done by an earlier run, %d to predict with %s', len(paths),
                args.input, len(paths) - len(todo), len(todo), what)
    if not todo:
        return {'predicted': 0, 'unreadable': 0, 'out': out_dir}
    if args.untrimmed:
        return run_untrimmed(cfg, args, model_path, todo, files, logger)
    if args.onnx:
        scores, names = onnx_scorer(cfg, model_path)
    else:
        ctx = DistContext(device=select_device(cfg))
        scores, names = checkpoint_scorer(cfg, ctx, logger, model_path)
    dataset = VideoFiles(todo, cfg)
    loader = build_loader(cfg, dataset, 'test', report_dir=osp.join(out_dir, 'log'))
    short = ShortVideoWarning(logger, ClipSpec.from_config(cfg).min_frames)
    counts = {'predicted': 0, 'unreadable': 0, 'out': out_dir}
    bar = progress(None, desc='predict', total=len(todo), unit='video')
    started = time.time()
    for clips, _, indices, bad, frames, decode_seconds, durations in loader:
        good = (bad < 0).numpy()
        model_started = time.perf_counter()
        batch_scores = scores(clips[torch.from_numpy(good)]) if good.any() else []
        model_share = (time.perf_counter() - model_started) / max(int(good.sum()), 1)
        rows = iter(batch_scores)
        for index, readable, count, decoding, duration in zip(
                indices.tolist(), good, frames.tolist(), decode_seconds.tolist(), durations.tolist()):
            if readable:
                short.check(todo[index], count)
                files.add(todo[index], next(rows), names, views_text(cfg), decoding + model_share,
                          duration)
                counts['predicted'] += 1
            else:
                reason = unreadable_reason(dataset, index)
                files.add_unreadable(todo[index], reason)
                logger.warning('cannot read %s: %s', printable_path(todo[index]), reason)
                counts['unreadable'] += 1
        bar.update(len(indices))
    bar.close()
    short.summary()
    elapsed = time.time() - started
    logger.info('%d videos predicted, %d unreadable (listed in %s), %.1f videos/s -> %s',
                counts['predicted'], counts['unreadable'], files.unreadable,
                len(todo) / max(elapsed, 1e-9), out_dir)
    return counts


def run_untrimmed(cfg, args, model_path, todo, files, logger):
    """Each video in the main process: its frames resized once, windows predicted in
    batches (progress in windows), pooled; windows.jsonl keeps the per-window scores and
    times."""
    if args.onnx:
        predictor, spec, names = load_exported(model_path)
    else:
        model, _ = load_model(cfg, model_path, logger)
        predictor, spec, names = TorchPredictor(model), ClipSpec.from_config(cfg), class_names_of(cfg)
    counts = {'predicted': 0, 'unreadable': 0, 'out': osp.dirname(files.jsonl)}
    short = ShortVideoWarning(logger, spec.min_frames)
    for path in progress(todo, desc='predict (untrimmed)', unit='video'):
        started = time.time()
        try:
            video = read_whole_video(path, spec, logger)
        except Exception as err:  # noqa: BLE001 - any decoder failure: listed, and the run goes on
            reason = (' '.join(str(err).split()) or type(err).__name__).removeprefix(f'{path}: ')
            files.add_unreadable(path, reason)
            logger.warning('cannot read %s: %s', printable_path(path), reason)
            counts['unreadable'] += 1
            continue
        short.check(path, len(video.frames))
        window, stride = window_plan(len(video.frames), spec, args.window, args.stride)
        logger.info('%s: %d windows of %d frames every %d', printable_path(path),
                    len(window_starts(len(video.frames), window, stride)), window, stride)
        pooled, windows = score_untrimmed(video.frames, spec, predictor, window, stride,
                                          args.pooling, args.pool_k, times=video.times)
        files.add(path, pooled, names, f"{len(windows['starts'])} windows of {windows['window']} "
                  f'frames, {args.pooling} pooling', time.time() - started,
                  video.span(0, len(video.frames))[1])
        with open(osp.join(counts['out'], 'windows.jsonl'), 'a', encoding='utf-8') as handle:
            handle.write(json.dumps(dict(path=printable_path(path), **windows)) + '\n')
        counts['predicted'] += 1
    short.summary()
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
    parser.add_argument('--overwrite', action='store_true',
                        help='replace predictions in --out made by another model or settings')
    add_untrimmed_arguments(parser, 'windows over the whole video, pooled into one prediction')
    cfg, args = parse_config(argv, parser=parser, exp_type='E',
                             trained=trained_source)
    return run_entry_point(run_prediction, cfg, args)


if __name__ == '__main__':
    sys.exit(main())
