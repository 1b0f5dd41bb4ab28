"""Learning-rate schedules as pure functions of the epoch, so a resumed run gets the same LR."""


def multistep_lr(base_lr, steps, decay, epoch):
    """LR for `epoch` (0-based): base_lr * decay ** (number of steps <= epoch)."""
    return base_lr * decay ** sum(1 for step in steps if epoch >= step)


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group['lr'] = lr * group.get('lr_mult', 1.0)
