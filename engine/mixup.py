"""Mixup and CutMix on clip batches, with label smoothing, as PySlowFast's MIXUP.* does.

With probability MIXUP.PROB a batch is mixed with itself reversed: CutMix (when
MIXUP.CUTMIX_ALPHA > 0, chosen with MIXUP.SWITCH_PROB over Mixup) pastes one box, the same
in every frame of a clip, from the partner clip; Mixup (MIXUP.ALPHA > 0) blends the two
clips. lambda ~ Beta(alpha, alpha); for CutMix it is then the share of the area kept. The
targets are the two (smoothed) one-hot labels blended by lambda; top1 counts the dominant one.
Random draws use torch's generator, which the training loop seeds per step, so a resumed run
mixes the same way.
"""
import torch
import torch.nn.functional as F


def smoothed_one_hot(labels, num_classes, smoothing=0.0):
    """[N] -> [N, K]: 1 - smoothing + smoothing / K on the label, smoothing / K elsewhere."""
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return targets.scatter_(1, labels.view(-1, 1), 1.0 - smoothing + off)


def soft_target_cross_entropy(logits, targets):
    """Mean over the batch of -sum(targets * log_softmax(logits))."""
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def beta_sample(alpha):
    return float(torch.distributions.Beta(alpha, alpha).sample())


class Mixup:
    def __init__(self, num_classes, alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5,
                 label_smoothing=0.1):
        if alpha <= 0 and cutmix_alpha <= 0:
            raise ValueError('MIXUP.ENABLE needs MIXUP.ALPHA > 0 or MIXUP.CUTMIX_ALPHA > 0')
        self.num_classes, self.alpha, self.cutmix_alpha = num_classes, alpha, cutmix_alpha
        self.prob, self.switch_prob, self.smoothing = prob, switch_prob, label_smoothing

    def cutmix_box(self, lam, height, width):
        """(top, bottom, left, right) of a box of about (1 - lam) of the area, centred at a
        uniform random point and clipped to the frame."""
        ratio = (1.0 - lam) ** 0.5
        box_h, box_w = int(height * ratio), int(width * ratio)
        cy, cx = int(torch.randint(height, ()).item()), int(torch.randint(width, ()).item())
        return (max(cy - box_h // 2, 0), min(cy + box_h // 2, height),
                max(cx - box_w // 2, 0), min(cx + box_w // 2, width))

    def __call__(self, clips, labels):
        """(mixed clips [N, C, T, H, W], soft targets [N, K], dominant labels [N], lambda)."""
        lam = 1.0
        if torch.rand(()).item() < self.prob:
            use_cutmix = self.cutmix_alpha > 0 and (self.alpha <= 0 or torch.rand(()).item() < self.switch_prob)
            lam = beta_sample(self.cutmix_alpha if use_cutmix else self.alpha)
            partner = clips.flip(0)
            if use_cutmix:
                top, bottom, left, right = self.cutmix_box(lam, clips.shape[-2], clips.shape[-1])
                clips = clips.clone()
                clips[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
                lam = 1.0 - (bottom - top) * (right - left) / (clips.shape[-2] * clips.shape[-1])
            else:
                clips = clips * lam + partner * (1.0 - lam)
        targets = (smoothed_one_hot(labels, self.num_classes, self.smoothing) * lam
                   + smoothed_one_hot(labels.flip(0), self.num_classes, self.smoothing) * (1.0 - lam))
        dominant = labels if lam >= 0.5 else labels.flip(0)
        return clips, targets, dominant, lam


def build_mixup(cfg):
    """A Mixup from MIXUP.* and TRAIN.LABEL_SMOOTHING, or None when MIXUP.ENABLE is off."""
    if not cfg.MIXUP.ENABLE:
        return None
    return Mixup(cfg.DATASET.CLASS_NUM, cfg.MIXUP.ALPHA, cfg.MIXUP.CUTMIX_ALPHA, cfg.MIXUP.PROB,
                 cfg.MIXUP.SWITCH_PROB, cfg.TRAIN.LABEL_SMOOTHING)
