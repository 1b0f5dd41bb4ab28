"""Learning-rate schedules as pure functions of the global optimizer step, so a run resumed
mid-epoch gets exactly the LRs an uninterrupted one had.

TRAIN.LR_POLICY:
- 'step': BASE_LR x LR_DECAY ** (LR_STEPS passed), per epoch (the default);
- 'cosine': one half cosine from BASE_LR at the first step to 0 at the end of training
  (PySlowFast's and mmaction2's cosine);
- 'sgdr': DLAC's cosine with warm restarts: after the warmup, a half cosine from BASE_LR to 0
  every SGDR_PERIOD_EPOCHS, starting again at BASE_LR.
Each may start with TRAIN.WARMUP_EPOCHS of linear warmup per iteration, from WARMUP_START_LR
to the policy's value at the warmup's end (PySlowFast's warmup; DLAC's sgdr from 0).
"""
import math

LR_POLICIES = ('step', 'cosine', 'sgdr')


def multistep_lr(base_lr, steps, decay, epoch):
    """LR for `epoch` (0-based): base_lr * decay ** (number of steps <= epoch)."""
    return base_lr * decay ** sum(1 for step in steps if epoch >= step)


def policy_lr(train, base_lr, step, steps_per_epoch, warmup_steps):
    """The policy's LR at global step `step`, warmup aside."""
    if train.LR_POLICY == 'step':
        return multistep_lr(base_lr, train.LR_STEPS, train.LR_DECAY, step // steps_per_epoch)
    if train.LR_POLICY == 'cosine':
        progress = step / max(train.EPOCHS * steps_per_epoch, 1)
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    if train.LR_POLICY == 'sgdr':
        period = max(int(train.SGDR_PERIOD_EPOCHS * steps_per_epoch), 1)
        within = (step - warmup_steps) % period
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * within / period))
    raise ValueError(f'TRAIN.LR_POLICY must be one of {list(LR_POLICIES)}, got {train.LR_POLICY!r}')


def learning_rate(train, base_lr, step, steps_per_epoch):
    """LR of global optimizer step `step` (0-based; epoch * steps_per_epoch + step in epoch)
    under cfg.TRAIN `train`, for a base LR of `base_lr` (BASE_LR after DDP scaling)."""
    warmup_steps = int(train.WARMUP_EPOCHS * steps_per_epoch)
    if step < warmup_steps:
        start, end = train.WARMUP_START_LR, policy_lr(train, base_lr, warmup_steps, steps_per_epoch,
                                                      warmup_steps)
        return start + (end - start) * step / warmup_steps
    return policy_lr(train, base_lr, step, steps_per_epoch, warmup_steps)


def set_lr(optimizer, lr):
    """`lr` to every parameter group, times the group's lr_mult (parameter-group policies)."""
    for group in optimizer.param_groups:
        group['lr'] = lr * group.get('lr_mult', 1.0)
