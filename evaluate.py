"""Evaluate a trained DLAC model with multi-view testing:
    python evaluate.py [--cfg FILE] [--checkpoint PATH] [KEY VALUE ...]
an exported one, beside the checkpoint or alone (into eval/onnx/, eval/pt2/, eval/torchscript/;
an INT8 model_int8.onnx into eval/onnx_int8/, with its float model.onnx beside it in eval/onnx/):
    python evaluate.py --onnx export/model.onnx [--pt2 export/model.pt2] [--checkpoint PATH]
or fuse the saved scores of two streams (RGB and Flow, say):
    python evaluate.py --fuse a/eval/scores.npz b/eval/scores.npz --weights 1 1.5

Views per video: VAL.NUM_CLIPS clips (dense sampling; TSN uses one clip of VAL.NUM_SEGMENTS
segments) x VAL.NUM_CROPS crops (1, 3 or 10); softmax scores are averaged over the views.
Writes <experiment>/eval/: report.json, per_class.csv, confusion.png, scores.npz, and for the
checkpoint report.html, the run on one page (utils/report_page.py; exports get the numbers only).
"""
import csv
import json
import os
import os.path as osp
import sys

import numpy as np

from config import (build_parser, class_names_of, default_checkpoint, exp_dir, log_resolution, parse_config,
                    trained_source)
from datasets import (DataLoadingError, DecodeError, build_dataset, build_loader,
                      build_normalizer, check_data)
from datasets.clip_spec import ClipSpec
from datasets.decoding import load_frames
from datasets.records import parse_metafile
from DataTool.Synthetic.render import pair_report
from utils.acceleration import runnable_model, to_channels_last
from utils.cli import run_entry_point
from utils.device import set_cpu_threads
from utils.distributed import cleanup, init_distributed
from utils.fusion import FusionError, fuse
from utils.inference import collect_scores_everywhere
from utils.logger import setup_logger
from utils.metrics import mean_average_precision, per_class_accuracy, summarize, topk_accuracy
from utils.plots import save_confusion_png
from utils.exported_model import TorchPredictor, exported_input, exported_module, float_model_of
from utils.progress import progress
from utils.report_page import write_report_page
from utils.untrimmed import add_untrimmed_arguments, score_untrimmed, window_plan, window_starts
from utils.whole_video import read_whole_video
from utils.trained_model import load_model
from utils.safe_text import spreadsheet_row


def write_outputs(eval_dir, cfg, metrics, scores, labels, paths, class_names, extra):
    os.makedirs(eval_dir, exist_ok=True)
    matrix = metrics['confusion']
    accuracies = per_class_accuracy(matrix)
    with open(osp.join(eval_dir, 'per_class.csv'), 'w', newline='', encoding='utf-8') as handle:
        writer = csv.writer(handle)
        writer.writerow(['index', 'class', 'videos', 'correct', 'accuracy'])
        for index, name in enumerate(class_names):
            accuracy = '' if np.isnan(accuracies[index]) else f'{accuracies[index]:.2f}'
            writer.writerow(spreadsheet_row([index, name, int(matrix[index].sum()),
                                             int(matrix[index, index]), accuracy]))
    save_confusion_png(matrix, class_names, osp.join(eval_dir, 'confusion.png'),
                       title=f"{cfg.MODEL_NAME}/{cfg.BACKBONE}: top1 {metrics['top1']:.1f}%")
    np.savez(osp.join(eval_dir, 'scores.npz'), scores=scores, labels=labels,
             paths=np.array(paths), class_names=np.array(class_names))
    report = {key: value for key, value in metrics.items() if key != 'confusion'}
    report.update(extra)
    with open(osp.join(eval_dir, 'report.json'), 'w', encoding='utf-8') as handle:
        json.dump(report, handle, indent=2)
    return report


def run_evaluation(cfg, checkpoint_path=None, exported=(), untrimmed=None):
    ctx = init_distributed(cfg)
    try:
        if untrimmed:
            return evaluate_untrimmed(cfg, ctx, checkpoint_path, untrimmed)
        return evaluate_model(cfg, ctx, checkpoint_path, exported)
    finally:
        cleanup(ctx)


def evaluate_model(cfg, ctx, checkpoint_path=None, exported=()):
    """Every process scores its shard of the test set; the main process gathers the scores
    (each video exactly once), computes the metrics and writes eval/. `exported`: pairs
    (kind, path) of exported models ('onnx', 'pt2', 'torchscript') evaluated the same way into
    eval/<kind>/ (an INT8 ONNX into eval/onnx_int8/, and its float model.onnx with it, into
    eval/onnx/, so that the two top1 are reported side by side); the checkpoint is evaluated
    too unless only exports are asked for, and then its report lists theirs with the top1
    difference. Returns the checkpoint's report (or the first export's) on the main process,
    None on the others."""
    out_dir = exp_dir(cfg)
    logger = setup_logger(osp.join(out_dir, 'log'), filename='eval.log', rank=ctx.rank)
    log_resolution(cfg, logger)
    set_cpu_threads(cfg.NUM_THREADS)
    check_data(cfg, splits=('val',))
    reports = {}
    if checkpoint_path or not exported:
        checkpoint_path = checkpoint_path or default_checkpoint(cfg)
        model, state = load_model(cfg, checkpoint_path, logger)
        if cfg.TRAIN.CHANNELS_LAST:
            to_channels_last(model)
        model = runnable_model(model.to(ctx.device), cfg, ctx, logger, ddp=False)
        reports['checkpoint'] = score_and_report(
            cfg, ctx, logger, model, build_normalizer(cfg, ctx.device), osp.join(out_dir, 'eval'),
            {'checkpoint': osp.abspath(checkpoint_path), 'checkpoint_epoch': state.get('epoch')},
            page=True)
    for label, kind, path in exports_to_evaluate(exported):
        module, spec = exported_module(kind, path, logger)
        normalize = exported_input(spec, cfg, path)
        reports[label] = score_and_report(cfg, ctx, logger, module, normalize,
                                          osp.join(out_dir, 'eval', label), {'exported_model': osp.abspath(path)})
    if reports.get('onnx_int8') is not None and reports.get('onnx') is not None:
        report_int8_beside_float(reports['onnx_int8'], reports['onnx'],
                                 osp.join(out_dir, 'eval', 'onnx_int8', 'report.json'), logger)
    if reports and 'checkpoint' in reports and len(reports) > 1 and reports['checkpoint'] is not None:
        compare_exports(reports, osp.join(out_dir, 'eval', 'report.json'), logger)
    return next(iter(reports.values()), None)


def exports_to_evaluate(exported):
    """(label: the eval/ folder, kind, path) of each export asked for; an INT8 ONNX is labelled
    'onnx_int8' and brings its float model.onnx (label 'onnx') along, when that is beside it."""
    items = []
    for kind, path in exported:
        float_path = float_model_of(path) if kind == 'onnx' else None
        items.append(('onnx_int8' if float_path else kind, kind, path))
        if float_path:
            items.append(('onnx', 'onnx', float_path))
    return items


def report_int8_beside_float(int8, base, path, logger):
    """The INT8 model's report.json gains its float model's metrics and the top1 difference."""
    int8['float_model'] = {key: base[key] for key in ('exported_model', 'top1', 'top5',
                                                      'mean_class_accuracy', 'num_videos')}
    int8['top1_difference_vs_float'] = int8['top1'] - base['top1']
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump(int8, handle, indent=2)
    logger.info('INT8 model top1 %.2f, float model top1 %.2f (%+.2f) on the same %d videos: '
                '%s beside %s', int8['top1'], base['top1'], int8['top1_difference_vs_float'],
                int8['num_videos'], osp.dirname(path), osp.join(osp.dirname(osp.dirname(path)), 'onnx'))


def whole_record(cfg, record, spec):
    """(every frame of a metafile record resized by `spec`, their times in seconds): a video
    file's times are its timestamps; a frame folder has none (None)."""
    path = osp.join(cfg.DATASET.VIDEO_SEQ_PATH, record.path)
    if osp.isfile(path):
        video = read_whole_video(path, spec)
        return video.frames, video.times
    frames = load_frames(cfg.DATASET.VIDEO_SEQ_PATH, record, range(record.num_frames),
                         cfg.DATASET.IMG_FORMAT, cfg.DATASET.SCALE_SIZE, cfg.DATASET.FRAME_START)
    return [spec.resize(frame[None])[0] for frame in frames], None


def evaluate_untrimmed(cfg, ctx, checkpoint_path, options):
    """Untrimmed classification (ActivityNet): windows of the model's clip over each whole
    validation video, pooled (options: pooling, pool_k, window, stride); top1, top3 and mAP
    into eval/untrimmed/, with every window's scores in windows.jsonl."""
    out_dir = exp_dir(cfg)
    eval_dir = osp.join(out_dir, 'eval', 'untrimmed')
    logger = setup_logger(osp.join(out_dir, 'log'), filename='eval.log', rank=ctx.rank)
    set_cpu_threads(cfg.NUM_THREADS)
    check_data(cfg, splits=('val',))
    checkpoint_path = checkpoint_path or default_checkpoint(cfg)
    model, state = load_model(cfg, checkpoint_path, logger)
    predictor, spec = TorchPredictor(model.to('cpu')), ClipSpec.from_config(cfg)
    records = parse_metafile(cfg.DATASET.VAL_META_PATH, cfg.DATASET.CLASS_NUM)
    os.makedirs(eval_dir, exist_ok=True)
    all_scores, labels, paths, unreadable = [], [], [], []
    with open(osp.join(eval_dir, 'windows.jsonl'), 'w', encoding='utf-8') as windows_file:
        for record in progress(records, desc='evaluate (untrimmed)', unit='video'):
            try:
                frames, times = whole_record(cfg, record, spec)
            except DecodeError as err:
                unreadable.append(f'{record.path} ({record.where}): {err}')
                continue
            window, stride = window_plan(len(frames), spec, options['window'], options['stride'])
            logger.info('%s: %d frames, %d windows of %d frames every %d', record.path,
                        len(frames), len(window_starts(len(frames), window, stride)), window, stride)
            pooled, windows = score_untrimmed(frames, spec, predictor, times=times, **options)
            all_scores.append(pooled)
            labels.append(record.label)
            paths.append(record.path)
            windows_file.write(json.dumps(dict(path=record.path, **windows)) + '\n')
    if not paths:
        raise DataLoadingError(f'none of the {len(records)} videos of {cfg.DATASET.VAL_META_PATH} could be read')
    scores, labels = np.stack(all_scores), np.array(labels)
    metrics = summarize(scores, labels, cfg.DATASET.CLASS_NUM)
    metrics.update(top3=topk_accuracy(scores, labels, 3), mAP=mean_average_precision(scores, labels))
    extra = {'checkpoint': osp.abspath(checkpoint_path), 'checkpoint_epoch': state.get('epoch'),
             'untrimmed': dict(options), 'metafile': cfg.DATASET.VAL_META_PATH,
             'model': cfg.MODEL_NAME, 'backbone': cfg.BACKBONE,
             'num_unreadable': len(unreadable), 'unreadable': unreadable}
    report = write_outputs(eval_dir, cfg, metrics, scores, labels, paths, class_names_of(cfg), extra)
    logger.info('untrimmed (%s pooling): top1 %.2f  top3 %.2f  mAP %.2f  (%d videos) -> %s',
                options['pooling'], report['top1'], report['top3'], report['mAP'],
                report['num_videos'], eval_dir)
    return report


def compare_exports(reports, path, logger):
    """The checkpoint's report.json gains each export's metrics and its top1 difference."""
    base = reports['checkpoint']
    base['exported'] = {kind: {'top1': r['top1'], 'top5': r['top5'],
                               'mean_class_accuracy': r['mean_class_accuracy'],
                               'top1_difference': r['top1'] - base['top1']}
                        for kind, r in reports.items() if kind != 'checkpoint' and r is not None}
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump(base, handle, indent=2)
    for kind, numbers in base['exported'].items():
        logger.info('%s export: top1 %.2f, %+.2f against the checkpoint', kind, numbers['top1'],
                    numbers['top1_difference'])


def first_view(dataset, index):
    """The first view [C, T, H, W] uint8 of test sample `index`, the frames the model saw
    (the dataset's sampling is seeded by the index); None when it cannot be read again."""
    views, _, _, bad = dataset[int(index)]
    return None if bad != -1 else views[0]


def score_and_report(cfg, ctx, logger, model, normalize, eval_dir, source, page=False):
    """Scores of `model` on the test set -> metrics and the files of eval_dir; the report.
    `page`: also eval_dir/report.html (the worst videos are read again for their frames)."""
    dataset = build_dataset(cfg, 'test')
    loader = build_loader(cfg, dataset, 'test', num_replicas=ctx.world_size, rank=ctx.rank,
                          report_dir=osp.join(exp_dir(cfg), 'log'))
    views = (cfg.VAL.NUM_SEGMENTS if cfg.DATASET.SAMPLING == 'segment' else cfg.VAL.NUM_CLIPS,
             cfg.VAL.NUM_CROPS)
    view_text = (f'{views[0]} segments x {views[1]} crops' if cfg.DATASET.SAMPLING == 'segment'
                 else f'{views[0]} clips x {views[1]} crops')
    logger.info('evaluating %d videos of %s with %s%s', len(dataset), cfg.DATASET.VAL_META_PATH,
                view_text, f' on {ctx.world_size} processes' if ctx.world_size > 1 else '')
    collected = collect_scores_everywhere(model, loader, normalize, ctx, desc='evaluate')
    if collected is None:
        return None
    scores, labels, indices, unreadable = collected
    unreadable_paths = [dataset.describe(i) for i in unreadable]
    if unreadable_paths:
        logger.warning('%d of %d videos could not be read and are left out of the metrics '
                       '(listed in eval/report.json): %s', len(unreadable), len(dataset),
                       '; '.join(unreadable_paths[:10]) + (' ...' if len(unreadable) > 10 else ''))
    if not len(indices):
        raise DataLoadingError(f'none of the {len(dataset)} videos of '
                               f'{cfg.DATASET.VAL_META_PATH} could be read')
    metrics = summarize(scores, labels, cfg.DATASET.CLASS_NUM)
    extra = dict(source, **{'views': view_text, 'metafile': cfg.DATASET.VAL_META_PATH,
             'model': cfg.MODEL_NAME, 'backbone': cfg.BACKBONE, 'processes': ctx.world_size,
             'num_unreadable': len(unreadable_paths), 'unreadable': unreadable_paths})
    class_names = class_names_of(cfg)
    pairs = pair_report(metrics['confusion'], class_names)      # None unless the synthetic classes
    if pairs is not None:
        extra['synthetic_pairs'] = pairs
    paths = [dataset.records[i].path for i in indices]
    report = write_outputs(eval_dir, cfg, metrics, scores, labels, paths, class_names, extra)
    if page:
        page_path = write_report_page(eval_dir, cfg, report, metrics['confusion'], scores, labels,
                                      paths, class_names, lambda row: first_view(dataset, indices[row]),
                                      curves_png=osp.join(exp_dir(cfg), 'curves.png'))
        logger.info('report page: %s', page_path)
    logger.info('top1 %.2f  top5 %.2f  mean class accuracy %.2f  (%d videos%s) -> %s',
                report['top1'], report['top5'], report['mean_class_accuracy'],
                report['num_videos'], f', {len(unreadable)} unreadable left out' if len(unreadable)
                else '', eval_dir)
    if 'synthetic_pairs' in extra:
        pairs = extra['synthetic_pairs']
        logger.info('synthetic set: non-paired classes top1 %.1f, time-reversed pairs: top1 %.1f, '
                    'within-pair accuracy %.1f (chance 50)', pairs['non_paired_top1'],
                    pairs['paired_top1'], pairs['mean_within_pair_accuracy'])
    return report


def run_fusion(paths, weights, out_path=None):
    """Print (and optionally save) each stream's and the fused top1/top5/mean class accuracy."""
    result = fuse(paths, weights)
    names = [osp.relpath(path) for path in paths] + ['fused (weights ' +
                                                     ', '.join(f'{w:g}' for w in result['weights']) + ')']
    width = max(len(name) for name in names)
    print(f'{"scores":<{width}}  top1    top5    mean class acc   ({result["num_videos"]} videos)')
    for name, metrics in zip(names, result['streams'] + [result['fused']]):
        print(f'{name:<{width}}  {metrics["top1"]:6.2f}  {metrics["top5"]:6.2f}  '
              f'{metrics["mean_class_accuracy"]:6.2f}')
    if out_path:
        report = {'inputs': [osp.abspath(p) for p in paths], 'weights': result['weights'],
                  'streams': [{k: v for k, v in m.items() if k != 'confusion'} for m in result['streams']],
                  'fused': {k: v for k, v in result['fused'].items() if k != 'confusion'}}
        with open(out_path, 'w', encoding='utf-8') as handle:
            json.dump(report, handle, indent=2)
    return result


def main(argv=None):
    parser = build_parser('Evaluate a trained DLAC model, or fuse the scores of several')
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint to evaluate (default: <experiment>/checkpoints/best.pth)')
    parser.add_argument('--fuse', nargs='+', metavar='SCORES_NPZ', default=None,
                        help='instead of evaluating: fuse these eval/scores.npz files (two streams)')
    parser.add_argument('--weights', nargs='+', type=float, default=None,
                        help='one weight per --fuse file (default: all 1)')
    parser.add_argument('--out', default=None, help='with --fuse: also write the numbers as JSON')
    parser.add_argument('--onnx', default=None,
                        help="an exported model.onnx: the same metrics into eval/onnx/ (with "
                             "--checkpoint too, the report shows both and the top1 difference); "
                             "an INT8 model_int8.onnx into eval/onnx_int8/, beside its float model's")
    parser.add_argument('--pt2', default=None, help='an exported model.pt2 (torch.export), likewise: eval/pt2/')
    parser.add_argument('--torchscript', default=None, help='an exported model.ts, likewise: eval/torchscript/')
    add_untrimmed_arguments(parser, 'windows over each whole video, pooled (top1, top3, mAP) '
                                    'into eval/untrimmed/')
    cfg, args = parse_config(argv, parser=parser, exp_type='E',
                             trained=lambda args: None if args.fuse else trained_source(args))
    if args.fuse:
        try:
            run_fusion(args.fuse, args.weights, args.out)
        except FusionError as err:
            print(f'error: {err}', file=sys.stderr)
            return 2
        return 0
    exported = [(kind, path) for kind, path in (('onnx', args.onnx), ('pt2', args.pt2),
                                                ('torchscript', args.torchscript)) if path]
    untrimmed = ({'pooling': args.pooling, 'pool_k': args.pool_k, 'window': args.window,
                  'stride': args.stride} if args.untrimmed else None)
    return run_entry_point(run_evaluation, cfg, args.checkpoint, exported, untrimmed)


if __name__ == '__main__':
    sys.exit(main())
