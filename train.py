"""Train a DLAC model: python train.py [--cfg FILE] [--resume auto|PATH|''] [KEY VALUE ...]

Writes SNAPSHOT_ROOT/ar_output/<MODEL_NAME>/<EXP_TAG>/: config.yaml, log/train.log,
tensorboard/, checkpoints/{last,best}.pth, training_policy.json and curves.png.
A run with an existing last.pth continues from it (TRAIN.RESUME 'auto').
"""
import json
import os
import os.path as osp
import sys
import time

import torch
import torch.nn as nn
from tensorboardX import SummaryWriter

from config import build_parser, exp_dir, parse_config, save_config, to_plain
from datasets import build_dataset, build_loader
from models import WeightsError, build_model
from utils.checkpoint import load_checkpoint, save_atomic, unwrap
from utils.cli import run_entry_point
from utils.device import place_model, select_device, set_cpu_threads
from utils.inference import collect_scores
from utils.logger import setup_logger
from utils.lr_schedule import multistep_lr, set_lr
from utils.meters import AverageMeter
from utils.metrics import summarize, topk_correct
from utils.plots import save_curves_png
from utils.progress import progress



def build_optimizer(model, cfg):
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                           lr=cfg.TRAIN.BASE_LR, momentum=cfg.TRAIN.MOMENTUM,
                           weight_decay=cfg.TRAIN.WEIGHT_DECAY)


def train_one_epoch(model, loader, optimizer, device, cfg, epoch, writer, logger):
    """One pass over the training set; returns the epoch's mean loss and top1."""
    model.train()
    criterion = nn.CrossEntropyLoss()
    meters = {name: AverageMeter() for name in ('loss', 'top1', 'data_time', 'batch_time')}
    steps_per_epoch = len(loader)
    end = time.time()
    bar = progress(loader, desc=f'epoch {epoch + 1}/{cfg.TRAIN.EPOCHS}', total=steps_per_epoch)
    for step, (clips, labels, _) in enumerate(bar):
        meters['data_time'].update(time.time() - end)
        clips, labels = clips.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        logits = model(clips)
        loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.TRAIN.CLIP_GRAD > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.TRAIN.CLIP_GRAD)
        optimizer.step()

        batch = labels.shape[0]
        top1 = topk_correct(logits.detach(), labels, ks=(1,))[0] * 100.0 / batch
        meters['loss'].update(loss.item(), batch)
        meters['top1'].update(top1, batch)
        meters['batch_time'].update(time.time() - end)
        global_step = epoch * steps_per_epoch + step
        writer.add_scalar('train/loss', loss.item(), global_step)
        writer.add_scalar('train/top1', top1, global_step)
        writer.add_scalar('train/lr', optimizer.param_groups[0]['lr'], global_step)
        writer.add_scalar('time/data', meters['data_time'].value, global_step)
        writer.add_scalar('time/batch', meters['batch_time'].value, global_step)
        bar.set_postfix(loss=f"{meters['loss'].avg:.3f}", top1=f"{meters['top1'].avg:.1f}", refresh=False)
        if step % cfg.TRAIN.PRINT_FREQ == 0 or step == steps_per_epoch - 1:
            logger.info('epoch %d [%d/%d] loss %.4f (%.4f) top1 %.1f (%.1f) lr %.5f '
                        'data %.3fs batch %.3fs', epoch + 1, step + 1, steps_per_epoch,
                        meters['loss'].value, meters['loss'].avg, meters['top1'].value,
                        meters['top1'].avg, optimizer.param_groups[0]['lr'],
                        meters['data_time'].avg, meters['batch_time'].avg)
        end = time.time()
    return meters['loss'].avg, meters['top1'].avg


def validate(model, loader, device, cfg):
    scores, labels, _ = collect_scores(model, loader, device, desc='validate')
    return summarize(scores, labels, cfg.DATASET.CLASS_NUM)


def resume_state(cfg, model, optimizer, checkpoint_dir, logger):
    """(start_epoch, best_top1, history) from TRAIN.RESUME: 'auto' = last.pth if present."""
    path = cfg.TRAIN.RESUME
    if path == 'auto':
        path = osp.join(checkpoint_dir, 'last.pth')
        if not osp.isfile(path):
            return 0, None, []
    elif not path:
        return 0, None, []
    state = load_checkpoint(path)
    try:
        unwrap(model).load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
    except (RuntimeError, ValueError, KeyError) as err:
        raise WeightsError(f'{path} does not fit this experiment ({cfg.MODEL_NAME}/{cfg.BACKBONE}, '
                           f'{cfg.DATASET.CLASS_NUM} classes): {str(err).splitlines()[0]}. '
                           "Start fresh with --resume '' or use another EXP_TAG.") from err
    logger.info('resumed from %s: %d of %d epochs done, best top1 %s', path, state['epoch'],
                cfg.TRAIN.EPOCHS, state['best_top1'])
    return state['epoch'], state['best_top1'], list(state['history'])


def write_policy(path, cfg, history):
    """The training policy as run: schedule settings plus lr and time of every epoch."""
    policy = {
        'model': cfg.MODEL_NAME, 'backbone': cfg.BACKBONE, 'dataset': cfg.DATASET.NAME,
        'epochs': cfg.TRAIN.EPOCHS, 'batch_size': cfg.TRAIN.BASE_BATCH_SIZE,
        'base_lr': cfg.TRAIN.BASE_LR, 'lr_steps': list(cfg.TRAIN.LR_STEPS),
        'lr_decay': cfg.TRAIN.LR_DECAY, 'momentum': cfg.TRAIN.MOMENTUM,
        'weight_decay': cfg.TRAIN.WEIGHT_DECAY, 'clip_grad': cfg.TRAIN.CLIP_GRAD,
        'num_segments': cfg.DATA.NUM_SEGMENTS, 'crop_size': cfg.DATASET.CROP_SIZE,
        'per_epoch': history,
    }
    tmp_path = path + '.tmp'
    with open(tmp_path, 'w', encoding='utf-8') as handle:
        json.dump(policy, handle, indent=2)
    os.replace(tmp_path, path)


def run_training(cfg):
    out_dir = exp_dir(cfg)
    checkpoint_dir = osp.join(out_dir, 'checkpoints')
    os.makedirs(checkpoint_dir, exist_ok=True)
    logger = setup_logger(osp.join(out_dir, 'log'), filename='train.log')
    set_cpu_threads(cfg.NUM_THREADS)
    torch.manual_seed(cfg.SEED)
    if cfg.DATASET.NAME == 'synthetic':
        from DataTool.Synthetic.synthetic import ensure_synthetic
        ensure_synthetic(cfg, logger)
    save_config(cfg, osp.join(out_dir, 'config.yaml'))
    logger.info('experiment folder: %s', out_dir)

    train_set, val_set = build_dataset(cfg, 'train'), build_dataset(cfg, 'val')
    train_loader = build_loader(cfg, train_set, 'train')
    val_loader = build_loader(cfg, val_set, 'val')
    logger.info('%d training and %d validation videos, %d classes', len(train_set),
                len(val_set), cfg.DATASET.CLASS_NUM)

    device = select_device(cfg)
    model = place_model(build_model(cfg, logger), cfg, device)
    optimizer = build_optimizer(model, cfg)
    start_epoch, best_top1, history = resume_state(cfg, model, optimizer, checkpoint_dir, logger)
    logger.info('%s/%s on %s, %.2fM parameters', cfg.MODEL_NAME, cfg.BACKBONE, device,
                sum(p.numel() for p in model.parameters()) / 1e6)

    if start_epoch >= cfg.TRAIN.EPOCHS:
        logger.info('all %d epochs are already done (%s); pass --resume \'\' to train again',
                    cfg.TRAIN.EPOCHS, osp.join(checkpoint_dir, 'last.pth'))
    writer = SummaryWriter(osp.join(out_dir, 'tensorboard'), purge_step=start_epoch * len(train_loader))
    try:
        for epoch in range(start_epoch, cfg.TRAIN.EPOCHS):
            started = time.time()
            lr = multistep_lr(cfg.TRAIN.BASE_LR, cfg.TRAIN.LR_STEPS, cfg.TRAIN.LR_DECAY, epoch)
            set_lr(optimizer, lr)
            torch.manual_seed(cfg.SEED * 1000 + epoch)
            train_set.set_epoch(epoch)
            train_loader.sampler.set_epoch(epoch)
            train_loss, train_top1 = train_one_epoch(model, train_loader, optimizer, device, cfg,
                                                     epoch, writer, logger)
            record = {'epoch': epoch + 1, 'lr': lr, 'train_loss': train_loss,
                      'train_top1': train_top1, 'val_top1': None, 'val_top5': None}
            last_epoch = epoch + 1 == cfg.TRAIN.EPOCHS
            if (epoch + 1) % cfg.TRAIN.EVAL_FREQ == 0 or last_epoch:
                metrics = validate(model, val_loader, device, cfg)
                record.update(val_top1=metrics['top1'], val_top5=metrics['top5'],
                              val_mean_class_accuracy=metrics['mean_class_accuracy'])
                for key in ('top1', 'top5', 'mean_class_accuracy', 'nll'):
                    writer.add_scalar(f'val/{key}', metrics[key], epoch + 1)
                logger.info('epoch %d validation: top1 %.2f top5 %.2f mean class acc %.2f',
                            epoch + 1, metrics['top1'], metrics['top5'],
                            metrics['mean_class_accuracy'])
            record['epoch_time_s'] = round(time.time() - started, 2)
            history.append(record)
            writer.add_scalar('train/epoch_loss', train_loss, epoch + 1)
            writer.add_scalar('time/epoch', record['epoch_time_s'], epoch + 1)

            is_best = record['val_top1'] is not None and (best_top1 is None or
                                                         record['val_top1'] > best_top1)
            if is_best:
                best_top1 = record['val_top1']
                save_atomic({'model': unwrap(model).state_dict(), 'epoch': epoch + 1,
                             'top1': best_top1, 'config': to_plain(cfg)},
                            osp.join(checkpoint_dir, 'best.pth'))
            save_atomic({'model': unwrap(model).state_dict(), 'optimizer': optimizer.state_dict(),
                         'epoch': epoch + 1, 'best_top1': best_top1, 'history': history,
                         'config': to_plain(cfg)}, osp.join(checkpoint_dir, 'last.pth'))
            write_policy(osp.join(out_dir, 'training_policy.json'), cfg, history)
            save_curves_png(history, osp.join(out_dir, 'curves.png'))
            logger.info('epoch %d done in %.1fs (lr %.5f)%s', epoch + 1, record['epoch_time_s'],
                        lr, ', new best' if is_best else '')
    finally:
        writer.close()
    logger.info('training finished: best val top1 %s', 'n/a' if best_top1 is None else f'{best_top1:.2f}')
    return best_top1


def main(argv=None):
    parser = build_parser('Train a DLAC model')
    parser.add_argument('--resume', default=None,
                        help="'auto' (default: last.pth if present), a checkpoint path, or '' "
                             'to start fresh; overrides TRAIN.RESUME')
    cfg, args = parse_config(argv, parser=parser, exp_type='T')
    if args.resume is not None:
        cfg.TRAIN.RESUME = args.resume
    return run_entry_point(run_training, cfg)


if __name__ == '__main__':
    sys.exit(main())
