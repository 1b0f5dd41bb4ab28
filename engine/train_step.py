"""One training epoch, step by step: where the per-step features live.

A step is one optimizer step. With TRAIN.ACCUM_STEPS k it takes k loader batches (micro-
batches): each is mixed (Mixup/CutMix), run forward and backward with its share of the
loss, the gradients accumulate, and then the step is checked (NaN/inf, stop signal, unreadable
samples, agreed over DDP processes), clipped, applied through the loss scaler, and the EMA
updated. LR, logs, TensorBoard, resuming and the stop signal all count optimizer steps.
"""
import signal
import time
from typing import Optional

import torch
import torch.nn as nn

from datasets import build_normalizer
from utils.distributed import sum_across
from utils.meters import AverageMeter
from utils.metrics import topk_correct
from utils.progress import progress
from utils.stopping import GracefulStop, TrainingDiverged, TrainingStopped, maybe_inject_fault

from .lr_schedule import learning_rate, set_lr
from .mixup import build_mixup, soft_target_cross_entropy
from .run import Run


def step_seed(seed, epoch, step, rank):
    """The torch seed of one training step (dropout, mixup and the like): the same step gets
    the same seed when a run resumes mid-epoch, and each DDP process its own."""
    return ((seed * 1000 + epoch) * 100003 + step) * 1024 + rank


def steps_in(batches, accum_steps):
    """Optimizer steps over `batches` loader batches: the last one may take fewer."""
    return -(-batches // accum_steps)


def grouped(batches, size):
    """Consecutive lists of `size` items (the last one shorter)."""
    group = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


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


class StepComputer:
    """Forward and backward of one optimizer step's micro-batches: Mixup/CutMix with soft
    targets (top1 against the dominant label) or cross-entropy with label smoothing, each
    micro-batch's loss weighted by its share of the step's clips."""
    reports_top1 = True

    def __init__(self, model, cfg, device, scaler):
        self.model, self.scaler, self.device = model, scaler, device
        self.normalize = build_normalizer(cfg, device)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.TRAIN.LABEL_SMOOTHING)
        self.mixup = build_mixup(cfg)

    def __call__(self, micro_batches):
        """Gradients accumulated; returns (mean loss tensor, correct, clips, indices, bad)."""
        total = sum(labels.shape[0] for _, labels, *_ in micro_batches)
        loss_sum, correct, indices, bad = 0.0, 0, [], []
        for clips, labels, batch_indices, *flags in micro_batches:
            clips, labels = self.normalize(clips), labels.to(self.device, non_blocking=True)
            if self.mixup is not None:
                clips, targets, labels, _ = self.mixup(clips, labels)
                logits = self.model(clips)
                loss = soft_target_cross_entropy(logits, targets)
            else:
                logits = self.model(clips)        # float32 logits, AMP or not (AutocastForward)
                loss = self.criterion(logits, labels)
            share = labels.shape[0] / total
            self.scaler.scale(loss * share).backward()
            loss_sum = loss_sum + loss.detach() * share
            correct += topk_correct(logits.detach(), labels, ks=(1,))[0]
            indices.append(batch_indices)
            if flags:
                bad.append(flags[0])
        return loss_sum, correct, total, torch.cat(indices), (torch.cat(bad) if bad else None)


def build_step_computer(model, cfg, device, scaler):
    """The step's loss as TRAIN.TASK says: classification (StepComputer) or masked-autoencoder
    pre-training (engine.pretraining.MaskedStepComputer)."""
    if cfg.TRAIN.TASK == 'pretrain':
        from .pretraining import MaskedStepComputer
        return MaskedStepComputer(model, cfg, device, scaler)
    return StepComputer(model, cfg, device, scaler)


def train_one_epoch(run: Run, epoch: int, start_step: int, totals: Optional[list],
                    stop: Optional[GracefulStop]):
    """One pass over this process's shard of the training set, from optimizer step
    `start_step` on (a resumed epoch). `totals` are the epoch's [loss sum, correct sum, clips]
    so far over all processes (None: a fresh epoch). Each step's LR is TRAIN.LR_POLICY's at
    the global step (from run.base_lr), the run's EMA is updated after every applied step, and
    `stop` (a GracefulStop, or None) ends the epoch at a step boundary.
    Returns the epoch's mean loss and top1 (None in pre-training) over all processes and the
    steps this one took.
    Raises TrainingStopped at the first step boundary after a stop signal, TrainingDiverged
    after TRAIN.MAX_BAD_STEPS skipped steps in a row (a NaN/inf loss, or gradients the loss
    scaler refused; nothing is applied), and TooManyBadSamples (from run.bad_samples) when too
    many samples are unreadable."""
    cfg, ctx, logger, writer = run.cfg, run.ctx, run.logger, run.writer
    model, loader, optimizer, scaler = run.train_forward, run.train_loader, run.optimizer, run.scaler
    health, bad_samples, ema = run.health, run.bad_samples, run.ema
    model.train()
    compute = build_step_computer(model, cfg, ctx.device, scaler)
    accum = cfg.TRAIN.ACCUM_STEPS
    meters = {name: AverageMeter() for name in ('loss', 'top1', 'data_time', 'batch_time')}
    local = [0.0, 0.0, 0.0]        # loss sum, correct sum, clips: this process, this session
    steps_per_epoch = start_step + steps_in(len(loader), accum)
    end = time.time()
    bar = progress(loader, desc=f'epoch {epoch + 1}/{cfg.TRAIN.EPOCHS}', total=len(loader),
                   disable=not ctx.is_main)
    for step, micro_batches in enumerate(grouped(bar, accum), start=start_step):
        maybe_inject_fault(ctx.rank, epoch, step, logger)
        meters['data_time'].update(time.time() - end)
        global_step = epoch * steps_per_epoch + step
        torch.manual_seed(step_seed(cfg.SEED, epoch, step, ctx.rank))
        set_lr(optimizer, learning_rate(cfg.TRAIN, run.base_lr, global_step, steps_per_epoch))
        optimizer.zero_grad(set_to_none=True)
        loss, correct, batch, indices, bad = compute(micro_batches)
        new_bad = bad_samples.new_in_batch(bad) if bad_samples is not None and bad is not None else 0
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
            if ema is not None:
                ema.update()
            loss_value, top1 = loss.item(), correct * 100.0 / batch
            local = [local[0] + loss_value * batch, local[1] + correct, local[2] + batch]
            meters['loss'].update(loss_value, batch)
            meters['top1'].update(top1, batch)
            for tag, value in (('train/loss', loss_value),
                               ('train/top1', top1 if compute.reports_top1 else None),
                               ('train/lr', optimizer.param_groups[0]['lr']),
                               ('time/data', meters['data_time'].value),
                               ('time/batch', time.time() - end)):
                if value is not None:
                    writer.add_scalar(tag, value, global_step)
        meters['batch_time'].update(time.time() - end)
        shown_top1 = {'top1': f"{meters['top1'].avg:.1f}"} if compute.reports_top1 else {}
        bar.set_postfix(loss=f"{meters['loss'].avg:.3f}", **shown_top1, refresh=False)
        if step % cfg.TRAIN.PRINT_FREQ == 0 or step == steps_per_epoch - 1:
            top1_text = (f" top1 {meters['top1'].value:.1f} ({meters['top1'].avg:.1f})"
                         if compute.reports_top1 else '')
            logger.info('epoch %d [%d/%d] loss %.4f (%.4f)%s lr %.5f data %.3fs batch %.3fs',
                        epoch + 1, step + 1, steps_per_epoch, meters['loss'].value,
                        meters['loss'].avg, top1_text, optimizer.param_groups[0]['lr'],
                        meters['data_time'].avg, meters['batch_time'].avg)
        if stop_requested:
            raise TrainingStopped(stop.signum or signal.SIGTERM, epoch, step + 1,
                                  add_totals(totals, sum_across(local, ctx)))
        end = time.time()
    epoch_totals = add_totals(totals, sum_across(local, ctx))
    count = max(epoch_totals[2], 1)
    top1 = epoch_totals[1] * 100.0 / count if compute.reports_top1 else None
    return epoch_totals[0] / count, top1, steps_per_epoch - start_step


def add_totals(previous, new):
    return new if previous is None else [a + b for a, b in zip(previous, new)]
