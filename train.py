"""Train a DLAC model: python train.py [--cfg FILE] [--resume auto|PATH|''] [KEY VALUE ...]

Writes SNAPSHOT_ROOT/ar_output/<MODEL_NAME>/<EXP_TAG>/: config.yaml, log/train.log,
tensorboard/, checkpoints/{last,best}.pth, training_policy.json and curves.png; with
TRAIN.REPORT_HTML, eval/ as evaluate.py writes it for best.pth, report.html included.
A run with an existing last.pth continues from it (TRAIN.RESUME 'auto').

Top to bottom: the config is built once and frozen (config.build_config) and saved; setup_run
builds the run's parts (a Run: data, model, optimizer, loss scaler, EMA, where to start); then
each epoch is set up, trained (engine/train_step.py: one optimizer step at a time, with
accumulation, Mixup/CutMix and the EMA), validated (precise BN first; the EMA weights beside
the raw ones), and its checkpoints and policy written.
"""
import contextlib
import os
import os.path as osp
import sys
import time

import torch
from tensorboardX import SummaryWriter

import evaluate
from config import (build_parser, class_names_of, exp_dir, log_resolution, parse_config, save_config,
                    to_plain, updated)
from datasets import begin_epoch, build_dataset, build_loader, build_normalizer, check_data
from models import build_model
from utils.acceleration import (check_acceleration, grad_scaler, runnable_model, set_determinism,
                                to_channels_last, with_autocast)
from utils.checkpoint import save_atomic
from utils.cli import run_entry_point
from utils.data_health import BadSampleTracker
from utils.device import set_cpu_threads
from utils.doctor import refuse_blocking
from utils.distributed import (DistContext, barrier, broadcast_buffers, cleanup, gather_to_main,
                               init_distributed, replica_max_abs_diff, restart_count,
                               sync_batch_norm)
from engine.ema import build_ema
from utils.inference import collect_scores_everywhere
from utils.logger import setup_logger
from engine.lr_schedule import learning_rate
from utils.metrics import summarize
from engine.optimizer import build_optimizer
from utils.plots import save_curves_png
from engine.precise_bn import recompute_bn_stats
from utils.stopping import GracefulStop, TrainingStopped
from engine.pretraining import validate_pretraining
from engine.train_state import best_fields, resume_state, save_last, write_policy
from utils.run_facts import training_marker
from engine.run import NullWriter, Run
from engine.train_step import steps_in, train_one_epoch


def validate(model, loader, device, cfg, ctx=DistContext()):
    """Metrics over the whole validation set on the main process (None on the others).
    `model`: the bare model (AutocastForward around it with AMP), not DDP's wrapper."""
    collected = collect_scores_everywhere(model, loader, build_normalizer(cfg, device), ctx,
                                          desc='validate')
    if collected is None:
        return None
    scores, labels, _, unreadable = collected
    metrics = summarize(scores, labels, cfg.DATASET.CLASS_NUM)
    metrics['unreadable'] = len(unreadable)
    return metrics


def precise_bn(model, run, weights):
    """BN.USE_PRECISE_STATS: exact BN statistics of BN.NUM_BATCHES_PRECISE training batches;
    `weights` ('raw' or 'EMA') names the copy in the log."""
    cfg = run.cfg
    normalize = build_normalizer(cfg, run.ctx.device)
    batches = (normalize(clips) for clips, *_ in run.train_loader)
    limited = (clips for _, clips in zip(range(cfg.BN.NUM_BATCHES_PRECISE), batches))
    layers = recompute_bn_stats(model, limited, run.ctx)
    run.logger.info('precise BN: statistics of %d layers of the %s weights recomputed on up to '
                    '%d training batches', layers, weights, cfg.BN.NUM_BATCHES_PRECISE)


def validate_epoch(run, epoch, record):
    """Validation of the raw weights and, with TRAIN.EMA_DECAY, of the EMA weights; precise BN
    first (and on the EMA copy too). Fills `record`'s val_* entries on the main process.
    Pre-training measures the reconstruction loss instead (engine.pretraining)."""
    cfg, ctx, logger = run.cfg, run.ctx, run.logger
    broadcast_buffers(run.model, ctx)
    if cfg.TRAIN.TASK == 'pretrain':
        validate_pretraining(run, epoch, record)
        return
    for name, module, forward in run.validated_weights():
        if cfg.BN.USE_PRECISE_STATS:
            begin_epoch(run.train_loader, epoch)
            precise_bn(module, run, 'raw' if name == 'raw' else 'EMA')
        metrics = validate(forward, run.val_loader, ctx.device, cfg, ctx)
        if metrics is None:
            continue
        suffix = '' if name == 'raw' else '_ema'
        record.update({f'val_top1{suffix}': metrics['top1'], f'val_top5{suffix}': metrics['top5'],
                       f'val_mean_class_accuracy{suffix}': metrics['mean_class_accuracy']})
        if name == 'raw':
            record['val_unreadable'] = metrics['unreadable']
            if metrics['unreadable']:
                logger.warning('epoch %d validation: %d unreadable videos left out',
                               epoch + 1, metrics['unreadable'])
        for key in ('top1', 'top5', 'mean_class_accuracy', 'nll'):
            run.writer.add_scalar(f'val{suffix}/{key}', metrics[key], epoch + 1)
        logger.info('epoch %d validation%s: top1 %.2f top5 %.2f mean class acc %.2f', epoch + 1,
                    ' (EMA weights)' if suffix else '', metrics['top1'], metrics['top5'],
                    metrics['mean_class_accuracy'])


def lr_curve(run, points=400):
    """[(epoch, lr)] over the whole run, per iteration (sampled): the schedule is a function
    of the step."""
    steps_per_epoch = run.steps_per_epoch
    total = run.cfg.TRAIN.EPOCHS * steps_per_epoch
    return [(step / steps_per_epoch, learning_rate(run.cfg.TRAIN, run.base_lr, step, steps_per_epoch))
            for step in range(0, total, max(1, total // points))]


def best_candidate(run, record):
    """(weights 'raw' or 'ema', figure, module) of the better of the raw and EMA weights by
    this epoch's validation: top1 (higher is better) or, in pre-training, the reconstruction
    loss (lower is better); the figure is None when the epoch was not validated."""
    pretrain = run.cfg.TRAIN.TASK == 'pretrain'
    key = 'val_loss' if pretrain else 'val_top1'
    scores = [('raw', record.get(key), run.model)]
    if run.ema is not None and record.get(f'{key}_ema') is not None:
        scores.append(('ema', record[f'{key}_ema'], run.ema.module))
    validated = [item for item in scores if item[1] is not None] or scores
    pick = min if pretrain else max
    return pick(validated, key=lambda item: item[1] if item[1] is not None else 0)


def is_better(cfg, figure, best):
    return figure is not None and (best is None or (figure < best if cfg.TRAIN.TASK == 'pretrain'
                                                    else figure > best))


def save_epoch(run, epoch, record, best):
    """best.pth (the better of the raw and EMA weights, saying which), last.pth, the policy
    and curves.png; the new best figure (top1, or pre-training's validation loss). Both
    checkpoints carry the config and class names."""
    weights, figure, module = best_candidate(run, record)
    is_best = is_better(run.cfg, figure, best)
    if is_best:
        best = figure
        save_atomic({'model': module.state_dict(), 'epoch': epoch + 1, **best_fields(run.cfg, best),
                     'top1': None if run.cfg.TRAIN.TASK == 'pretrain' else best,
                     'weights': weights, 'config': to_plain(run.cfg),
                     'class_names': list(run.class_names)},
                    osp.join(run.checkpoint_dir, 'best.pth'))
    record['best_weights'] = weights if is_best else None
    save_last(run, epoch + 1, best)
    write_policy(run)
    save_curves_png(run.history, osp.join(run.out_dir, 'curves.png'), lr_curve(run))
    run.logger.info('epoch %d done in %.1fs (lr %.5f)%s', epoch + 1, record['epoch_time_s'],
                    record['lr'], f', new best ({weights} weights)' if is_best else '')
    return best


def prepare_data(cfg, ctx, logger):
    """Render the synthetic set if needed. Every process asks; a file lock lets the first one
    render while the others wait on the lock, not in a collective (whose timeout, 10 minutes
    with NCCL, rendering could outlast), and each node renders its own copy if its disk is
    not shared."""
    if cfg.DATASET.NAME == 'synthetic':
        from DataTool.Synthetic.synthetic import ensure_synthetic
        ensure_synthetic(cfg, logger)
    barrier(ctx)


def run_training(cfg):
    refuse_blocking(cfg)        # shared memory and open files: settings that would hang the loader
    ctx = init_distributed(cfg)
    try:
        return train_model(cfg, ctx)
    finally:
        cleanup(ctx)


def setup_run(cfg, ctx):
    """The run's parts, built once: folders, logger, data, model, optimizer, loss scaler,
    EMA, TensorBoard writer and where to start."""
    out_dir = exp_dir(cfg)
    if ctx.is_main:
        os.makedirs(osp.join(out_dir, 'checkpoints'), exist_ok=True)
        save_config(cfg, osp.join(out_dir, 'config.yaml'))
    logger = setup_logger(osp.join(out_dir, 'log'), filename='train.log', rank=ctx.rank)
    log_resolution(cfg, logger)
    check_acceleration(cfg, ctx)
    set_cpu_threads(cfg.NUM_THREADS)
    set_determinism(cfg)
    torch.manual_seed(cfg.SEED)
    prepare_data(cfg, ctx, logger)
    check_data(cfg)
    logger.info('experiment folder: %s', out_dir)
    if ctx.distributed:
        logger.info('DDP: %d processes, %s backend, torchrun attempt %d', ctx.world_size,
                    ctx.backend, restart_count() + 1)

    train_set, val_set = build_dataset(cfg, 'train'), build_dataset(cfg, 'val')
    log_dir = osp.join(out_dir, 'log')          # where a stuck loader writes its workers' stacks
    train_loader = build_loader(cfg, train_set, 'train', num_replicas=ctx.world_size, rank=ctx.rank,
                                report_dir=log_dir)
    val_loader = build_loader(cfg, val_set, 'val', num_replicas=ctx.world_size, rank=ctx.rank,
                              report_dir=log_dir)
    logger.info('%d training and %d validation videos, %d classes', len(train_set),
                len(val_set), cfg.DATASET.CLASS_NUM)

    lr_scale = ctx.world_size if cfg.TRAIN.LR_SCALING == 'linear' else 1
    model = build_model(cfg, logger).to(ctx.device)
    if ctx.distributed and cfg.MODEL.SYNC_BN:
        model = sync_batch_norm(model, ctx, logger)
    if cfg.TRAIN.CHANNELS_LAST:
        to_channels_last(model)
    optimizer = build_optimizer(model, cfg, cfg.TRAIN.BASE_LR * lr_scale)
    scaler, ema = grad_scaler(cfg, ctx.device), build_ema(model, cfg)
    start = resume_state(cfg, model, optimizer, scaler, osp.join(out_dir, 'checkpoints'), logger,
                         ctx, ema)
    logger.info('%s/%s on %s, %.2fM parameters', cfg.MODEL_NAME, cfg.BACKBONE, ctx.device,
                sum(p.numel() for p in model.parameters()) / 1e6)
    if ctx.world_size > 1 or cfg.TRAIN.ACCUM_STEPS > 1:
        logger.info('optimizer batch %d (%d per process x %d processes x %d accumulated), lr %g '
                    '(BASE_LR %g, LR_SCALING %s)', cfg.TRAIN.BASE_BATCH_SIZE * ctx.world_size
                    * cfg.TRAIN.ACCUM_STEPS, cfg.TRAIN.BASE_BATCH_SIZE, ctx.world_size,
                    cfg.TRAIN.ACCUM_STEPS, cfg.TRAIN.BASE_LR * lr_scale, cfg.TRAIN.BASE_LR,
                    cfg.TRAIN.LR_SCALING)
    steps_per_epoch = steps_in(len(train_loader), cfg.TRAIN.ACCUM_STEPS)
    writer = (SummaryWriter(osp.join(out_dir, 'tensorboard'),
                            purge_step=start.epoch * steps_per_epoch + start.step)
              if ctx.is_main else NullWriter())
    return Run(cfg=cfg, ctx=ctx, logger=logger, model=model,
               train_forward=runnable_model(model, cfg, ctx, logger), optimizer=optimizer,
               scaler=scaler, train_loader=train_loader, base_lr=cfg.TRAIN.BASE_LR * lr_scale,
               ema=ema, writer=writer, eval_forward=with_autocast(model, cfg, ctx.device),
               val_loader=val_loader, out_dir=out_dir, lr_scale=lr_scale,
               steps_per_epoch=steps_per_epoch, start=start, class_names=class_names_of(cfg),
               bad_samples=BadSampleTracker(train_set, cfg.DATASET.MAX_BAD_FRACTION, logger,
                                            osp.join(out_dir, 'log', 'bad_samples.txt')))


def train_model(cfg, ctx):
    run = setup_run(cfg, ctx)
    logger, start, history = run.logger, run.start, run.history
    best = start.best
    if start.epoch >= cfg.TRAIN.EPOCHS:
        logger.info("all %d epochs are already done (%s); pass --resume '' to train again",
                    cfg.TRAIN.EPOCHS, run.last_path)
    marker = training_marker(run.out_dir) if ctx.is_main else contextlib.nullcontext()
    try:
        with GracefulStop() as stop, marker:      # the experiment table sees the run as training
            for epoch in range(start.epoch, cfg.TRAIN.EPOCHS):
                resumed = epoch == start.epoch
                first_step = start.step if resumed else 0
                started = time.time()
                begin_epoch(run.train_loader, epoch,
                            first_step * cfg.TRAIN.BASE_BATCH_SIZE * cfg.TRAIN.ACCUM_STEPS)
                run.bad_samples.start_epoch(epoch)
                run.health.skipped = 0
                try:
                    train_loss, train_top1, steps = train_one_epoch(
                        run, epoch, first_step, start.totals if resumed else None, stop)
                except TrainingStopped as stopped:
                    if ctx.is_main:
                        save_last(run, epoch, best, step=stopped.step, totals=stopped.totals)
                        logger.warning('%s: saved %s at step %d of epoch %d; run the same command '
                                       'to continue', stopped, run.last_path, stopped.step, epoch + 1)
                    raise SystemExit(0) from None
                record = {'epoch': epoch + 1, 'lr': learning_rate(   # the LR of the epoch's first step
                              cfg.TRAIN, run.base_lr, epoch * run.steps_per_epoch, run.steps_per_epoch),
                          'train_loss': train_loss, 'train_top1': train_top1,
                          **({'val_loss': None} if cfg.TRAIN.TASK == 'pretrain'
                             else {'val_top1': None, 'val_top5': None}),
                          'replaced_samples': run.bad_samples.total,
                          'skipped_steps': run.health.skipped}
                if run.bad_samples.total:
                    logger.warning('epoch %d: %d unreadable training samples were replaced by '
                                   'others (each is named above)', epoch + 1, run.bad_samples.total)
                if ctx.distributed:
                    record['steps_per_process'] = [int(n) for n in gather_to_main(steps, ctx) or []]
                if (epoch + 1) % cfg.TRAIN.EVAL_FREQ == 0 or epoch + 1 == cfg.TRAIN.EPOCHS:
                    validate_epoch(run, epoch, record)
                record['epoch_time_s'] = round(time.time() - started, 2)
                history.append(record)
                if ctx.is_main:
                    for tag, value in (('train/epoch_loss', train_loss),
                                       ('data/replaced_samples', run.bad_samples.total),
                                       ('time/epoch', record['epoch_time_s'])):
                        run.writer.add_scalar(tag, value, epoch + 1)
                    best = save_epoch(run, epoch, record, best)
    finally:
        run.writer.close()
    difference = replica_max_abs_diff(run.model, ctx)      # before anything copies rank 0's state
    if difference is not None:
        logger.info('the %d replicas end with the same weights: largest difference %g',
                    ctx.world_size, difference)
        if ctx.is_main and history:
            write_policy(run, replica_diff=difference)
    if cfg.TRAIN.TASK == 'pretrain':
        logger.info('pre-training finished: best validation reconstruction loss %s; fine-tune from '
                    'it with MODEL.PRETRAINED %s', 'n/a' if best is None else f'{best:.4f}',
                    osp.join(run.checkpoint_dir, 'best.pth'))
    else:
        logger.info('training finished: best val top1 %s', 'n/a' if best is None else f'{best:.2f}')
    if cfg.TRAIN.REPORT_HTML:
        evaluate_best(run)
    return best


def evaluate_best(run):
    """TRAIN.REPORT_HTML: best.pth evaluated as evaluate.py evaluates it (every process scores
    its share, the main process writes eval/ and eval/report.html)."""
    if run.cfg.TRAIN.TASK == 'pretrain':
        run.logger.warning('TRAIN.REPORT_HTML: a pre-training run has no classifier to evaluate; '
                           'no report page')
        return
    barrier(run.ctx)                    # best.pth is written by the main process
    best_path = osp.join(run.checkpoint_dir, 'best.pth')
    if not osp.isfile(best_path):
        run.logger.warning('TRAIN.REPORT_HTML: no %s to evaluate (no epoch was validated)', best_path)
        return
    evaluate.evaluate_model(run.cfg, run.ctx, best_path)


def main(argv=None):
    parser = build_parser('Train a DLAC model')
    parser.add_argument('--resume', default=None,
                        help="'auto' (default: last.pth if present), a checkpoint path, or '' "
                             'to start fresh; overrides TRAIN.RESUME')
    cfg, args = parse_config(argv, parser=parser, exp_type='T')
    if cfg.EXP_TYPE == 'E':        # a config (DLAC's) that says: evaluate
        print("EXP_TYPE 'E' (evaluate) in the config: evaluating instead of training, as "
              'evaluate.py does (bash Script/run_evaluate_m.sh)', file=sys.stderr)
        cfg, _ = parse_config(argv, parser=parser, exp_type='E', trained=lambda args: 'default')
        return run_entry_point(evaluate.run_evaluation, cfg)
    if args.resume is not None:
        cfg = updated(cfg, {'TRAIN.RESUME': args.resume})
    return run_entry_point(run_training, cfg)


if __name__ == '__main__':
    sys.exit(main())
