"""Self-supervised pre-training (TRAIN.TASK 'pretrain', VideoMAE): what differs from
classification is the step's loss and what validation measures.

A training step masks each clip (tube masking with MODEL.MASK_RATIO, a fresh mask per clip
from the step's seed, so a resumed run draws the same ones), runs the masked autoencoder, and
takes the mean squared error of the masked tubelets' pixels (per-tubelet normalised with
MODEL.NORM_PIX_LOSS). The targets are the clip's pixels in [0, 1], RGB, before the input
convention is applied. Validation gives the same loss on the validation set with one mask per
video that depends only on the video's index and the seed (the same masks every epoch, on any
number of processes), and draws a few clips with their masked input and reconstruction.
"""
import os.path as osp

import torch

from datasets import build_normalizer
from models.videomae_pretrain import (masked_patch_loss, pixel_targets, reconstruct, token_grid,
                                      tube_mask)
from utils.distributed import sum_across
from utils.plots import save_reconstruction_png
from utils.progress import progress

PICTURE_CLIPS = 3               # clips drawn at each validation
VALIDATION_SEED = 7919          # mixed with SEED and the video's index for its validation mask


def clip_pixels(clips, device):
    """uint8 clips [N, 3, T, H, W] (RGB, as the loader gives them) -> float32 in [0, 1]."""
    return clips.to(device, non_blocking=True).float().div_(255.0)


class MaskedStepComputer:
    """Forward and backward of one optimizer step's micro-batches for pre-training: the same
    interface as engine.train_step.StepComputer, without top1 (`reports_top1` False)."""
    reports_top1 = False

    def __init__(self, model, cfg, device, scaler):
        self.model, self.scaler, self.device = model, scaler, device
        self.normalize = build_normalizer(cfg, device)
        self.ratio, self.norm_pix = cfg.MODEL.MASK_RATIO, cfg.MODEL.NORM_PIX_LOSS

    def __call__(self, micro_batches):
        """Gradients accumulated; returns (mean loss tensor, 0, clips, indices, bad)."""
        total = sum(clips.shape[0] for clips, *_ in micro_batches)
        loss_sum, indices, bad = 0.0, [], []
        for clips, _, batch_indices, *flags in micro_batches:
            inputs = self.normalize(clips)
            mask = tube_mask(clips.shape[0], token_grid(clips.shape), self.ratio, device=self.device)
            predicted = self.model(inputs, mask)
            loss = masked_patch_loss(predicted.float(), pixel_targets(clip_pixels(clips, self.device),
                                                                     self.norm_pix), mask)
            share = clips.shape[0] / total
            self.scaler.scale(loss * share).backward()
            loss_sum = loss_sum + loss.detach() * share
            indices.append(batch_indices)
            if flags:
                bad.append(flags[0])
        return loss_sum, 0, total, torch.cat(indices), (torch.cat(bad) if bad else None)


def validation_masks(indices, grid, ratio, seed, device):
    """One tube mask per video, drawn from a generator seeded by the video's dataset index."""
    masks = [tube_mask(1, grid, ratio, torch.Generator().manual_seed(
        (seed * 1000003 + VALIDATION_SEED) * 1000003 + int(index))) for index in indices.tolist()]
    return torch.cat(masks).to(device)


@torch.no_grad()
def reconstruction_loss(forward, loader, cfg, ctx, picture=None):
    """The mean masked-patch loss over this process's share of `loader`, summed over all
    processes (unreadable videos left out): (loss, videos). `picture`, a list, receives the
    first batch's (pixels, mask, reconstruction) for up to PICTURE_CLIPS clips."""
    normalize = build_normalizer(cfg, ctx.device)
    forward.eval()
    total, count = 0.0, 0
    for clips, _, indices, *flags in progress(loader, desc='validate', disable=not ctx.is_main):
        readable = flags[0] < 0 if flags else torch.ones(len(indices), dtype=torch.bool)
        if not readable.any():
            continue
        clips, indices = clips[readable], indices[readable]
        mask = validation_masks(indices, token_grid(clips.shape), cfg.MODEL.MASK_RATIO, cfg.SEED, ctx.device)
        predicted = forward(normalize(clips), mask).float()
        pixels = clip_pixels(clips, ctx.device)
        targets = pixel_targets(pixels, cfg.MODEL.NORM_PIX_LOSS)
        per_clip = masked_patch_loss(predicted, targets, mask, per_clip=True)
        total, count = total + float(per_clip.sum()), count + len(indices)
        if picture is not None and not picture:
            shown = slice(0, PICTURE_CLIPS)
            picture.append((pixels[shown], mask[shown],
                            reconstruct(predicted[shown], pixels[shown], mask[shown], cfg.MODEL.NORM_PIX_LOSS)))
    total, count = sum_across([total, count], ctx)
    return (total / count if count else None), int(count)


def validate_pretraining(run, epoch, record):
    """Validation of a pre-training run: the reconstruction loss of the raw weights (and of
    the EMA weights with TRAIN.EMA_DECAY) into `record` ('val_loss', 'val_loss_ema'),
    TensorBoard and the log, and the reconstruction picture of the raw weights
    (reconstruction/epoch_NNN.png and TensorBoard)."""
    for name, _, forward in run.validated_weights():
        suffix = '' if name == 'raw' else '_ema'
        picture = [] if not suffix and run.ctx.is_main else None
        loss, videos = reconstruction_loss(forward, run.val_loader, run.cfg, run.ctx, picture)
        record[f'val_loss{suffix}'] = loss
        if loss is None:
            run.logger.warning('epoch %d validation: no readable validation video', epoch + 1)
            continue
        run.writer.add_scalar(f'val{suffix}/reconstruction_loss', loss, epoch + 1)
        run.logger.info('epoch %d validation%s: reconstruction loss %.4f over %d videos (mask '
                        'ratio %.2f)', epoch + 1, ' (EMA weights)' if suffix else '', loss, videos,
                        run.cfg.MODEL.MASK_RATIO)
        if picture:
            path = osp.join(run.out_dir, 'reconstruction', f'epoch_{epoch + 1:03d}.png')
            image = save_reconstruction_png(*picture[0], path, f'epoch {epoch + 1}: validation loss {loss:.4f}')
            run.writer.add_image('val/reconstruction', image, epoch + 1, dataformats='HWC')
            run.logger.info('reconstructions of %d validation clips: %s', len(picture[0][0]), path)
