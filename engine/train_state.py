"""What a training run keeps between steps and sessions: last.pth (everything to continue,
written atomically, the previous one kept), resuming from it, and training_policy.json (the
policy as run, with every epoch's figures)."""
import json
import os

from config import to_plain
from models import WeightsError
from models.weights import load_into
from utils.checkpoint import (CheckpointError, is_state_dict, load_checkpoint, load_resume_checkpoint,
                              save_atomic, tensor_checksum)
from utils.run_facts import loader_method, parallel_facts, software_versions

from .run import ResumePoint

RESUME_KEYS = ('model', 'optimizer', 'epoch', 'best_top1', 'history')


def resume_state(cfg, model, optimizer, scaler, checkpoint_dir, logger, ctx, ema=None):
    """Where to start from TRAIN.RESUME ('auto' = last.pth if present), as a ResumePoint.
    Restores the model, the optimizer, the loss scaler and the EMA weights in place."""
    fresh = ResumePoint()
    path = cfg.TRAIN.RESUME
    if path == 'auto':
        path = os.path.join(checkpoint_dir, 'last.pth')
        if not os.path.isfile(path):
            return fresh
    elif not path:
        return fresh
    if cfg.TRAIN.RESUME == 'auto':
        state, path = load_resume_checkpoint(path, logger)
    else:
        state = load_checkpoint(path)
    missing = [key for key in RESUME_KEYS if key not in state]
    if missing or not is_state_dict(state['model']):
        raise CheckpointError(f'{path} is not a training checkpoint (last.pth): it lacks '
                              f'{", ".join(missing) or "a model state dict"}. TRAIN.RESUME continues '
                              f'a run; to start from weights, use MODEL.PRETRAINED')
    head = state['model'].get('head.fc.weight')
    if head is not None and head.shape[0] != cfg.DATASET.CLASS_NUM:
        raise WeightsError(f'{path} was trained for {head.shape[0]} classes but DATASET.CLASS_NUM '
                           f'is {cfg.DATASET.CLASS_NUM}: set DATASET.CLASS_NUM {head.shape[0]}, or '
                           "start fresh with --resume '' or another EXP_TAG (to fine-tune from it, "
                           'use MODEL.PRETRAINED, which re-initialises the classifier)')
    experiment = f'this experiment ({cfg.MODEL_NAME}/{cfg.BACKBONE}, {cfg.DATASET.CLASS_NUM} classes)'
    try:
        load_into(model, state['model'], source=path, target=experiment)
        if ema is not None:
            load_into(ema.module, state['ema'] if state.get('ema') else state['model'],
                      source=f'{path} (EMA weights)', target=experiment)
        optimizer.load_state_dict(state['optimizer'])
        if scaler.is_enabled() and state.get('scaler'):
            scaler.load_state_dict(state['scaler'])
    except (WeightsError, RuntimeError, ValueError, KeyError, TypeError) as err:
        reason = str(err).splitlines()[0]
        if not isinstance(err, WeightsError):
            reason = f'{path} does not fit {experiment}: {reason}'
        raise WeightsError(f"{reason}. Start fresh with --resume '' or use another EXP_TAG") from err
    step, totals = state.get('step', 0), state.get('epoch_totals')
    if step and state.get('world_size', 1) != ctx.world_size:
        logger.warning('%s was saved mid-epoch by %d processes, this run has %d: epoch %d '
                       'starts again from its first step', path, state.get('world_size', 1),
                       ctx.world_size, state['epoch'] + 1)
        step, totals = 0, None
    name, best = best_figure(cfg, state)
    logger.info('resumed from %s: %d of %d epochs done%s, best %s %s', path, state['epoch'],
                cfg.TRAIN.EPOCHS, f' and {step} steps of epoch {state["epoch"] + 1}' if step else '',
                name, 'n/a' if best is None else f'{best:.4g}')
    return ResumePoint(state['epoch'], step, totals, best, list(state['history']))


def best_figure(cfg, state):
    """(name, value) of the best validation figure a checkpoint records for the run's task:
    top1 (classification), or the lowest reconstruction loss (pre-training)."""
    if cfg.TRAIN.TASK == 'pretrain':
        return 'validation loss', state.get('best_val_loss')
    return 'top1', state['best_top1']


def best_fields(cfg, best):
    """The checkpoint entries that record `best` (see best_figure)."""
    pretrain = cfg.TRAIN.TASK == 'pretrain'
    return {'best_top1': None if pretrain else best, 'best_val_loss': best if pretrain else None}


def write_policy(run, replica_diff=None):
    """training_policy.json: the policy as run, schedule settings plus every epoch's figures."""
    cfg, ctx = run.cfg, run.ctx
    policy = {
        'task': cfg.TRAIN.TASK, 'model': cfg.MODEL_NAME, 'backbone': cfg.BACKBONE, 'dataset': cfg.DATASET.NAME,
        'epochs': cfg.TRAIN.EPOCHS, 'batch_size': cfg.TRAIN.BASE_BATCH_SIZE,
        'global_batch_size': cfg.TRAIN.BASE_BATCH_SIZE * ctx.world_size,
        'base_lr': cfg.TRAIN.BASE_LR, 'lr_scaling': cfg.TRAIN.LR_SCALING,
        'lr': cfg.TRAIN.BASE_LR * run.lr_scale, 'lr_steps': list(cfg.TRAIN.LR_STEPS),
        'lr_decay': cfg.TRAIN.LR_DECAY, 'lr_policy': cfg.TRAIN.LR_POLICY,
        'warmup_epochs': cfg.TRAIN.WARMUP_EPOCHS, 'warmup_start_lr': cfg.TRAIN.WARMUP_START_LR,
        'sgdr_period_epochs': cfg.TRAIN.SGDR_PERIOD_EPOCHS, 'param_groups': cfg.TRAIN.PARAM_GROUPS,
        'momentum': cfg.TRAIN.MOMENTUM,
        'weight_decay': cfg.TRAIN.WEIGHT_DECAY, 'clip_grad': cfg.TRAIN.CLIP_GRAD,
        'optimizer': cfg.TRAIN.OPTIMIZER, 'nesterov': cfg.TRAIN.NESTEROV,
        'adamw_betas': list(cfg.TRAIN.ADAMW_BETAS),
        'zero_wd_1d_param': cfg.TRAIN.ZERO_WD_1D_PARAM, 'head_lr_mult': cfg.TRAIN.HEAD_LR_MULT,
        'label_smoothing': cfg.TRAIN.LABEL_SMOOTHING, 'mixup': to_plain(cfg.MIXUP),
        'rand_augment': cfg.AUG.RAND_AUGMENT, 'random_erasing': cfg.AUG.RE_PROB,
        'accum_steps': cfg.TRAIN.ACCUM_STEPS,
        'optimizer_batch_size': cfg.TRAIN.BASE_BATCH_SIZE * ctx.world_size * cfg.TRAIN.ACCUM_STEPS,
        'precise_bn': cfg.BN.USE_PRECISE_STATS and cfg.BN.NUM_BATCHES_PRECISE,
        'ema_decay': cfg.TRAIN.EMA_DECAY,
        'num_segments': cfg.DATA.NUM_SEGMENTS, 'crop_size': cfg.DATASET.CROP_SIZE,
        'sampling': cfg.DATASET.SAMPLING, 'clip_len': cfg.DATA.CLIP_LEN,
        'frame_interval': cfg.DATA.FRAME_INTERVAL, 'modality': cfg.MODALITY,
        'loader': loader_method(cfg), **parallel_facts(cfg, ctx),
        'epochs_done': len(run.history),
        'training_time_s': round(sum(r.get('epoch_time_s') or 0 for r in run.history), 2),
        'versions': software_versions(),
        'replica_max_abs_diff': replica_diff,
        'per_epoch': run.history,
    }
    path = os.path.join(run.out_dir, 'training_policy.json')
    tmp_path = path + '.tmp'
    with open(tmp_path, 'w', encoding='utf-8') as handle:
        json.dump(policy, handle, indent=2)
    os.replace(tmp_path, path)


def save_last(run, epoch, best, step=0, totals=None):
    """last.pth: everything to continue, at an epoch's end (step 0) or after `step` optimizer
    steps of epoch `epoch` + 1 (a stop signal); `best` the best validation figure so far. The
    file it replaces is kept as last.pth.prev, and a checksum of the weights is checked when
    resuming. Like every checkpoint it carries the run's config and class names."""
    weights = run.model.state_dict()
    save_atomic({'model': weights, 'checksum': tensor_checksum(weights),
                 'ema': run.ema.state_dict() if run.ema is not None else None,
                 'optimizer': run.optimizer.state_dict(), 'scaler': run.scaler.state_dict(),
                 'epoch': epoch, 'step': step,
                 'epoch_totals': totals, 'world_size': run.ctx.world_size, **best_fields(run.cfg, best),
                 'history': run.history, 'config': to_plain(run.cfg),
                 'class_names': list(run.class_names)}, run.last_path, keep_previous=True)
