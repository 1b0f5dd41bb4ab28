"""Train a DLAC model: python train.py [--cfg FILE] [--resume auto|PATH|''] [KEY VALUE ...]

Writes SNAPSHOT_ROOT/ar_output/<MODEL_NAME>/<EXP_TAG>/: config.yaml, log/train.log,
tensorboard/, checkpoints/{last,best}.pth, training_policy.json and curves.png.
A run with an existing last.pth continues from it (TRAIN.RESUME 'auto').
"""
import json
import os
import os.path as osp
import signal
import sys
import time

import torch
import torch.nn as nn
from tensorboardX import SummaryWriter

import evaluate
from config import build_parser, exp_dir, log_dlac_translation, parse_config, save_config, to_plain
from datasets import build_dataset, build_loader, build_normalizer, check_data
from models import WeightsError, build_model
from utils.acceleration import (check_acceleration, grad_scaler, runnable_model, set_determinism,
                                to_channels_last, with_autocast)
from utils.checkpoint import load_checkpoint, load_resume_checkpoint, save_atomic, tensor_checksum
from utils.cli import run_entry_point
from utils.device import set_cpu_threads
from utils.distributed import (DistContext, barrier, broadcast_buffers, cleanup, gather_to_main,
                               init_distributed, replica_max_abs_diff, restart_count, sum_across,
                               sync_batch_norm)
from utils.inference import collect_scores_everywhere
from utils.logger import setup_logger
from utils.lr_schedule import learning_rate, set_lr
from utils.meters import AverageMeter
from utils.optimizer import build_optimizer
from utils.metrics import summarize, topk_correct
from utils.plots import save_curves_png
from utils.progress import progress
from utils.data_health import BadSampleTracker
from utils.stopping import GracefulStop, TrainingDiverged, TrainingStopped, maybe_inject_fault



class NullWriter:
    """Stands in for the TensorBoard writer on the processes that write nothing (DDP rank > 0)."""

    def add_scalar(self, *args, **kwargs):
        pass

    def close(self):
        pass


def step_seed(seed, epoch, step, rank):
    """The torch seed of one training step (dropout and the like): the same step gets the same
    seed when a run resumes mid-epoch, and each DDP process its own."""
    return ((seed * 1000 + epoch) * 100003 + step) * 1024 + rank


class StepHealth:
    """Across steps: how many in a row were skipped (a NaN/inf loss, or inf/NaN gradients
    that the float16 loss scaler refused), and how many this epoch."""

    def __init__(self, max_bad_steps):
        self.max_bad_steps = max_bad_steps
        self.in_a_row = 0
        self.skipped = 0


def agree(values, ctx):
    """The per-step flags summed over all processes (one all-reduce under DDP), so every
    process skips, stops or fails at the same step."""
    return sum_across(values, ctx) if ctx.distributed else values


def apply_step(optimizer, scaler):
    """The optimizer step, through the loss scaler when it is on. False when the scaler
    skipped the step because the gradients held inf/NaN (it then lowers its scale)."""
    if not scaler.is_enabled():
        optimizer.step()
        return True
    scale = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    return scaler.get_scale() >= scale


def train_one_epoch(model, loader, optimizer, device, cfg, epoch, writer, logger, ctx=DistContext(),
                    start_step=0, totals=None, stop=None, scaler=None, bad_samples=None,
                    health=None, base_lr=None):
    """One pass over this process's shard of the training set, from `start_step` on (a resumed
    epoch). `totals` are the epoch's [loss sum, correct sum, clips] so far over all processes.
    `scaler` is the run's GradScaler (built once per run, saved in last.pth). With `base_lr`,
    each step's LR is set from TRAIN.LR_POLICY as a function of the global step.
    Returns the epoch's mean loss and top1 over all processes and the steps this one took.
    Raises TrainingStopped at the first step boundary after a stop signal, TrainingDiverged
    after TRAIN.MAX_BAD_STEPS skipped steps in a row (a NaN/inf loss, or gradients the loss
    scaler refused; nothing is applied), and TooManyBadSamples (from `bad_samples`, a
    BadSampleTracker) when too many samples are unreadable."""
    model.train()
    normalize = build_normalizer(cfg, device)
    scaler = scaler or grad_scaler(cfg, device)
    health = health or StepHealth(cfg.TRAIN.MAX_BAD_STEPS)
    criterion = nn.CrossEntropyLoss()
    meters = {name: AverageMeter() for name in ('loss', 'top1', 'data_time', 'batch_time')}
    local = [0.0, 0.0, 0.0]        # loss sum, correct sum, clips: this process, this session
    steps_per_epoch = start_step + len(loader)
    end = time.time()
    bar = progress(loader, desc=f'epoch {epoch + 1}/{cfg.TRAIN.EPOCHS}', total=len(loader),
                   disable=not ctx.is_main)
    for step, (clips, labels, indices, *bad) in enumerate(bar, start=start_step):
        maybe_inject_fault(ctx.rank, epoch, step, logger)
        meters['data_time'].update(time.time() - end)
        new_bad = bad_samples.new_in_batch(bad[0]) if bad_samples is not None and bad else 0
        torch.manual_seed(step_seed(cfg.SEED, epoch, step, ctx.rank))
        if base_lr is not None:
            set_lr(optimizer, learning_rate(cfg.TRAIN, base_lr, epoch * steps_per_epoch + step,
                                            steps_per_epoch))
        clips, labels = normalize(clips), labels.to(device, non_blocking=True)
        logits = model(clips)           # float32 logits, AMP or not (AutocastForward)
        loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if scaler.is_enabled():
            scaler.unscale_(optimizer)     # float16: the scaler itself skips steps with inf grads
        grad_norm = nn.utils.clip_grad_norm_(
            model.parameters(), cfg.TRAIN.CLIP_GRAD if cfg.TRAIN.CLIP_GRAD > 0 else float('inf'))
        nonfinite = not torch.isfinite(loss).item() or (
            not scaler.is_enabled() and not torch.isfinite(grad_norm).item())
        any_nonfinite, stop_requested, bad_count = agree(
            [float(nonfinite), float(stop is not None and stop.requested), float(new_bad)], ctx)
        if bad_samples is not None:
            bad_samples.add_count(bad_count)
        if any_nonfinite:
            skip_step(optimizer, health, loader.dataset, indices, epoch, step, logger,
                      f'loss {loss.item():.4g} (NaN/inf on this or another process)',
                      update_scaler=scaler)
        elif not apply_step(optimizer, scaler):
            skip_step(optimizer, health, loader.dataset, indices, epoch, step, logger,
                      f'inf/NaN gradients at loss scale {scaler.get_scale() * 2:g} (the float16 '
                      f'loss scaler skipped it and halved the scale)')
        else:
            health.in_a_row = 0
            batch = labels.shape[0]
            correct = topk_correct(logits.detach(), labels, ks=(1,))[0]
            local = [local[0] + loss.item() * batch, local[1] + correct, local[2] + batch]
            top1 = correct * 100.0 / batch
            meters['loss'].update(loss.item(), batch)
            meters['top1'].update(top1, batch)
            global_step = epoch * steps_per_epoch + step
            writer.add_scalar('train/loss', loss.item(), global_step)
            writer.add_scalar('train/top1', top1, global_step)
            writer.add_scalar('train/lr', optimizer.param_groups[0]['lr'], global_step)
            writer.add_scalar('time/data', meters['data_time'].value, global_step)
            writer.add_scalar('time/batch', time.time() - end, global_step)
        meters['batch_time'].update(time.time() - end)
        bar.set_postfix(loss=f"{meters['loss'].avg:.3f}", top1=f"{meters['top1'].avg:.1f}", refresh=False)
        if step % cfg.TRAIN.PRINT_FREQ == 0 or step == steps_per_epoch - 1:
            logger.info('epoch %d [%d/%d] loss %.4f (%.4f) top1 %.1f (%.1f) lr %.5f '
                        'data %.3fs batch %.3fs', epoch + 1, step + 1, steps_per_epoch,
                        meters['loss'].value, meters['loss'].avg, meters['top1'].value,
                        meters['top1'].avg, optimizer.param_groups[0]['lr'],
                        meters['data_time'].avg, meters['batch_time'].avg)
        if stop_requested:
            raise TrainingStopped(stop.signum or signal.SIGTERM, epoch, step + 1,
                                  add_totals(totals, sum_across(local, ctx)))
        end = time.time()
    epoch_totals = add_totals(totals, sum_across(local, ctx))
    count = max(epoch_totals[2], 1)
    return epoch_totals[0] / count, epoch_totals[1] * 100.0 / count, len(loader)


def skip_step(optimizer, health, dataset, indices, epoch, step, logger, reason,
              update_scaler=None):
    """A step that is not applied (`reason` says why); it counts neither in the loss nor in
    top1. Logs the batch's samples; raises TrainingDiverged after TRAIN.MAX_BAD_STEPS in a
    row. `update_scaler`: a loss scaler that was not stepped, updated so it lowers its scale
    if it saw inf gradients."""
    optimizer.zero_grad(set_to_none=True)
    if update_scaler is not None and update_scaler.is_enabled():
        update_scaler.update()
    health.in_a_row += 1
    health.skipped += 1
    samples = [dataset.describe(int(i)) for i in indices.tolist()]
    logger.warning('epoch %d step %d: %s; step skipped (%d in a row). Samples of this batch: %s',
                   epoch + 1, step + 1, reason, health.in_a_row, '; '.join(samples))
    if health.in_a_row >= health.max_bad_steps:
        raise TrainingDiverged(
            f'epoch {epoch + 1} step {step + 1}: {health.in_a_row} steps in a row were skipped '
            f'(TRAIN.MAX_BAD_STEPS), the last for {reason}, so training stopped without saving: '
            f'the last checkpoint is the last good state. Lower TRAIN.BASE_LR, keep '
            f'TRAIN.CLIP_GRAD on, or check the samples logged in train.log')


def add_totals(previous, new):
    return new if previous is None else [a + b for a, b in zip(previous, new)]


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


def resume_state(cfg, model, optimizer, scaler, checkpoint_dir, logger, ctx):
    """Where to start from TRAIN.RESUME ('auto' = last.pth if present): a dict with epoch,
    step (within that epoch), totals (of that epoch so far), best_top1 and history. Restores
    the model, the optimizer and the loss scaler in place."""
    fresh = {'epoch': 0, 'step': 0, 'totals': None, 'best_top1': None, 'history': []}
    path = cfg.TRAIN.RESUME
    if path == 'auto':
        path = osp.join(checkpoint_dir, 'last.pth')
        if not osp.isfile(path):
            return fresh
    elif not path:
        return fresh
    if cfg.TRAIN.RESUME == 'auto':
        state, path = load_resume_checkpoint(path, logger)
    else:
        state = load_checkpoint(path)
    head = state.get('model', {}).get('head.fc.weight')
    if head is not None and head.shape[0] != cfg.DATASET.CLASS_NUM:
        raise WeightsError(f'{path} was trained for {head.shape[0]} classes but DATASET.CLASS_NUM '
                           f'is {cfg.DATASET.CLASS_NUM}: set DATASET.CLASS_NUM {head.shape[0]}, or '
                           "start fresh with --resume '' or another EXP_TAG (to fine-tune from it, "
                           'use MODEL.PRETRAINED, which re-initialises the classifier)')
    try:
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        if scaler.is_enabled() and state.get('scaler'):
            scaler.load_state_dict(state['scaler'])
    except (RuntimeError, ValueError, KeyError) as err:
        raise WeightsError(f'{path} does not fit this experiment ({cfg.MODEL_NAME}/{cfg.BACKBONE}, '
                           f'{cfg.DATASET.CLASS_NUM} classes): {str(err).splitlines()[0]}. '
                           "Start fresh with --resume '' or use another EXP_TAG.") from err
    step, totals = state.get('step', 0), state.get('epoch_totals')
    if step and state.get('world_size', 1) != ctx.world_size:
        logger.warning('%s was saved mid-epoch by %d processes, this run has %d: epoch %d '
                       'starts again from its first step', path, state.get('world_size', 1),
                       ctx.world_size, state['epoch'] + 1)
        step, totals = 0, None
    logger.info('resumed from %s: %d of %d epochs done%s, best top1 %s', path, state['epoch'],
                cfg.TRAIN.EPOCHS, f' and {step} steps of epoch {state["epoch"] + 1}' if step else '',
                state['best_top1'])
    return {'epoch': state['epoch'], 'step': step, 'totals': totals,
            'best_top1': state['best_top1'], 'history': list(state['history'])}


def write_policy(path, cfg, history, ctx, lr_scale, replica_diff=None):
    """The training policy as run: schedule settings plus lr and time of every epoch."""
    policy = {
        'model': cfg.MODEL_NAME, 'backbone': cfg.BACKBONE, 'dataset': cfg.DATASET.NAME,
        'epochs': cfg.TRAIN.EPOCHS, 'batch_size': cfg.TRAIN.BASE_BATCH_SIZE,
        'processes': ctx.world_size, 'global_batch_size': cfg.TRAIN.BASE_BATCH_SIZE * ctx.world_size,
        'base_lr': cfg.TRAIN.BASE_LR, 'lr_scaling': cfg.TRAIN.LR_SCALING,
        'lr': cfg.TRAIN.BASE_LR * lr_scale, 'lr_steps': list(cfg.TRAIN.LR_STEPS),
        'lr_decay': cfg.TRAIN.LR_DECAY, 'lr_policy': cfg.TRAIN.LR_POLICY,
        'warmup_epochs': cfg.TRAIN.WARMUP_EPOCHS, 'warmup_start_lr': cfg.TRAIN.WARMUP_START_LR,
        'sgdr_period_epochs': cfg.TRAIN.SGDR_PERIOD_EPOCHS, 'param_groups': cfg.TRAIN.PARAM_GROUPS,
        'momentum': cfg.TRAIN.MOMENTUM,
        'weight_decay': cfg.TRAIN.WEIGHT_DECAY, 'clip_grad': cfg.TRAIN.CLIP_GRAD,
        'num_segments': cfg.DATA.NUM_SEGMENTS, 'crop_size': cfg.DATASET.CROP_SIZE,
        'replica_max_abs_diff': replica_diff,
        'per_epoch': history,
    }
    tmp_path = path + '.tmp'
    with open(tmp_path, 'w', encoding='utf-8') as handle:
        json.dump(policy, handle, indent=2)
    os.replace(tmp_path, path)


def save_last(path, model, optimizer, scaler, cfg, ctx, epoch, best_top1, history, step=0,
              totals=None):
    """last.pth: everything to continue, at an epoch's end (step 0) or after `step` steps of
    epoch `epoch` + 1 (a stop signal). The file it replaces is kept as last.pth.prev, and a
    checksum of the weights is checked when resuming."""
    weights = model.state_dict()
    save_atomic({'model': weights, 'checksum': tensor_checksum(weights),
                 'optimizer': optimizer.state_dict(), 'scaler': scaler.state_dict(),
                 'epoch': epoch, 'step': step,
                 'epoch_totals': totals, 'world_size': ctx.world_size, 'best_top1': best_top1,
                 'history': history, 'config': to_plain(cfg)}, path, keep_previous=True)


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
    ctx = init_distributed(cfg)
    try:
        return train_model(cfg, ctx)
    finally:
        cleanup(ctx)


def train_model(cfg, ctx):
    out_dir = exp_dir(cfg)
    checkpoint_dir = osp.join(out_dir, 'checkpoints')
    last_path = osp.join(checkpoint_dir, 'last.pth')
    if ctx.is_main:
        os.makedirs(checkpoint_dir, exist_ok=True)
    logger = setup_logger(osp.join(out_dir, 'log'), filename='train.log', rank=ctx.rank)
    log_dlac_translation(logger)
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
    train_loader = build_loader(cfg, train_set, 'train', num_replicas=ctx.world_size, rank=ctx.rank)
    val_loader = build_loader(cfg, val_set, 'val', num_replicas=ctx.world_size, rank=ctx.rank)
    logger.info('%d training and %d validation videos, %d classes', len(train_set),
                len(val_set), cfg.DATASET.CLASS_NUM)

    lr_scale = ctx.world_size if cfg.TRAIN.LR_SCALING == 'linear' else 1
    bare = build_model(cfg, logger).to(ctx.device)
    if ctx.is_main:        # after the build: MODEL.PRETRAINED may have set options and the convention
        save_config(cfg, osp.join(out_dir, 'config.yaml'))
    if ctx.distributed and cfg.MODEL.SYNC_BN:
        bare = sync_batch_norm(bare, ctx, logger)
    if cfg.TRAIN.CHANNELS_LAST:
        to_channels_last(bare)
    optimizer = build_optimizer(bare, cfg, cfg.TRAIN.BASE_LR * lr_scale)
    scaler = grad_scaler(cfg, ctx.device)
    start = resume_state(cfg, bare, optimizer, scaler, checkpoint_dir, logger, ctx)
    model = runnable_model(bare, cfg, ctx, logger)
    eval_model = with_autocast(bare, cfg, ctx.device)
    best_top1, history = start['best_top1'], start['history']
    logger.info('%s/%s on %s, %.2fM parameters', cfg.MODEL_NAME, cfg.BACKBONE, ctx.device,
                sum(p.numel() for p in bare.parameters()) / 1e6)
    if ctx.world_size > 1:
        logger.info('global batch %d (%d per process), lr %g (BASE_LR %g, LR_SCALING %s)',
                    cfg.TRAIN.BASE_BATCH_SIZE * ctx.world_size, cfg.TRAIN.BASE_BATCH_SIZE,
                    cfg.TRAIN.BASE_LR * lr_scale, cfg.TRAIN.BASE_LR, cfg.TRAIN.LR_SCALING)

    if start['epoch'] >= cfg.TRAIN.EPOCHS:
        logger.info("all %d epochs are already done (%s); pass --resume '' to train again",
                    cfg.TRAIN.EPOCHS, last_path)
    steps_per_epoch = len(train_loader)
    bad_samples = BadSampleTracker(train_set, cfg.DATASET.MAX_BAD_FRACTION, logger,
                                   osp.join(out_dir, 'log', 'bad_samples.txt'))
    health = StepHealth(cfg.TRAIN.MAX_BAD_STEPS)
    writer = (SummaryWriter(osp.join(out_dir, 'tensorboard'),
                            purge_step=start['epoch'] * steps_per_epoch + start['step'])
              if ctx.is_main else NullWriter())
    try:
        with GracefulStop() as stop:
            for epoch in range(start['epoch'], cfg.TRAIN.EPOCHS):
                resumed = epoch == start['epoch']
                first_step = start['step'] if resumed else 0
                started = time.time()
                lr = learning_rate(cfg.TRAIN, cfg.TRAIN.BASE_LR * lr_scale, epoch * steps_per_epoch,
                                   steps_per_epoch)          # the epoch's first step
                train_set.set_epoch(epoch)
                train_loader.sampler.set_epoch(epoch)
                train_loader.sampler.skip(first_step * cfg.TRAIN.BASE_BATCH_SIZE)
                bad_samples.start_epoch(epoch)
                health.skipped = 0
                try:
                    train_loss, train_top1, steps = train_one_epoch(
                        model, train_loader, optimizer, ctx.device, cfg, epoch, writer, logger,
                        ctx=ctx, start_step=first_step, totals=start['totals'] if resumed else None,
                        stop=stop, scaler=scaler, bad_samples=bad_samples, health=health,
                        base_lr=cfg.TRAIN.BASE_LR * lr_scale)
                except TrainingStopped as stopped:
                    if ctx.is_main:
                        save_last(last_path, bare, optimizer, scaler, cfg, ctx, epoch, best_top1,
                                  history, step=stopped.step, totals=stopped.totals)
                        logger.warning('%s: saved %s at step %d of epoch %d; run the same command '
                                       'to continue', stopped, last_path, stopped.step, epoch + 1)
                    raise SystemExit(0) from None
                record = {'epoch': epoch + 1, 'lr': lr, 'train_loss': train_loss,
                          'train_top1': train_top1, 'val_top1': None, 'val_top5': None,
                          'replaced_samples': bad_samples.total, 'skipped_steps': health.skipped}
                if bad_samples.total:
                    logger.warning('epoch %d: %d unreadable training samples were replaced by '
                                   'others (each is named above)', epoch + 1, bad_samples.total)
                if ctx.distributed:
                    record['steps_per_process'] = [int(n) for n in gather_to_main(steps, ctx) or []]
                last_epoch = epoch + 1 == cfg.TRAIN.EPOCHS
                if (epoch + 1) % cfg.TRAIN.EVAL_FREQ == 0 or last_epoch:
                    broadcast_buffers(bare, ctx)
                    metrics = validate(eval_model, val_loader, ctx.device, cfg, ctx)
                    if metrics is not None:
                        record.update(val_top1=metrics['top1'], val_top5=metrics['top5'],
                                      val_mean_class_accuracy=metrics['mean_class_accuracy'],
                                      val_unreadable=metrics['unreadable'])
                        if metrics['unreadable']:
                            logger.warning('epoch %d validation: %d unreadable videos left out',
                                           epoch + 1, metrics['unreadable'])
                        for key in ('top1', 'top5', 'mean_class_accuracy', 'nll'):
                            writer.add_scalar(f'val/{key}', metrics[key], epoch + 1)
                        logger.info('epoch %d validation: top1 %.2f top5 %.2f mean class acc %.2f',
                                    epoch + 1, metrics['top1'], metrics['top5'],
                                    metrics['mean_class_accuracy'])
                record['epoch_time_s'] = round(time.time() - started, 2)
                history.append(record)
                if not ctx.is_main:
                    continue
                writer.add_scalar('train/epoch_loss', train_loss, epoch + 1)
                writer.add_scalar('data/replaced_samples', bad_samples.total, epoch + 1)
                writer.add_scalar('time/epoch', record['epoch_time_s'], epoch + 1)
                is_best = record['val_top1'] is not None and (best_top1 is None or
                                                             record['val_top1'] > best_top1)
                if is_best:
                    best_top1 = record['val_top1']
                    save_atomic({'model': bare.state_dict(), 'epoch': epoch + 1,
                                 'top1': best_top1, 'config': to_plain(cfg)},
                                osp.join(checkpoint_dir, 'best.pth'))
                save_last(last_path, bare, optimizer, scaler, cfg, ctx, epoch + 1, best_top1, history)
                write_policy(osp.join(out_dir, 'training_policy.json'), cfg, history, ctx, lr_scale)
                save_curves_png(history, osp.join(out_dir, 'curves.png'))
                logger.info('epoch %d done in %.1fs (lr %.5f)%s', epoch + 1, record['epoch_time_s'],
                            lr, ', new best' if is_best else '')
    finally:
        writer.close()
    difference = replica_max_abs_diff(bare, ctx)      # before anything copies rank 0's state
    if difference is not None:
        logger.info('the %d replicas end with the same weights: largest difference %g',
                    ctx.world_size, difference)
        if ctx.is_main and history:
            write_policy(osp.join(out_dir, 'training_policy.json'), cfg, history, ctx, lr_scale,
                         replica_diff=difference)
    logger.info('training finished: best val top1 %s', 'n/a' if best_top1 is None else f'{best_top1:.2f}')
    return best_top1


def main(argv=None):
    parser = build_parser('Train a DLAC model')
    parser.add_argument('--resume', default=None,
                        help="'auto' (default: last.pth if present), a checkpoint path, or '' "
                             'to start fresh; overrides TRAIN.RESUME')
    cfg, args = parse_config(argv, parser=parser, exp_type='T')
    if cfg.EXP_TYPE == 'E':        # a config (DLAC's) that says: evaluate
        print("EXP_TYPE 'E' (evaluate) in the config: evaluating instead of training, as "
              'evaluate.py does (bash Script/run_evaluate_m.sh)', file=sys.stderr)
        return run_entry_point(evaluate.run_evaluation, cfg)
    if args.resume is not None:
        cfg.TRAIN.RESUME = args.resume
    return run_entry_point(run_training, cfg)


if __name__ == '__main__':
    sys.exit(main())
