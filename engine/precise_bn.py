"""Precise BN (BN.USE_PRECISE_STATS): before validation, replace the running statistics of
every BN layer in training mode by the exact mean and (unbiased) variance of its input over
BN.NUM_BATCHES_PRECISE training batches, as PySlowFast does; the running averages that
training keeps lag behind the weights. Under DDP the sums are added over all processes, so
every replica ends with the same statistics. BN layers in eval mode (partial BN) keep theirs."""
import torch
import torch.nn as nn

from utils.distributed import sum_across


@torch.no_grad()
def recompute_bn_stats(model, batches, ctx=None):
    """Run `model` (the bare model, on float inputs) over `batches` in training mode and set
    each training-mode BN layer's running_mean / running_var to the exact statistics of its
    inputs. Returns the number of layers updated."""
    model.train()
    layers = [m for m in model.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]
    sums = {id(m): [0.0, 0.0, 0.0] for m in layers}          # sum, sum of squares, count

    def collect(module, inputs):
        x = inputs[0].detach().double().transpose(0, 1).reshape(module.num_features, -1)
        totals = sums[id(module)]
        totals[0] = totals[0] + x.sum(dim=1)
        totals[1] = totals[1] + (x * x).sum(dim=1)
        totals[2] += x.shape[1]
    hooks = [m.register_forward_pre_hook(collect) for m in layers]
    try:
        for clips in batches:
            model(clips)
    finally:
        for hook in hooks:
            hook.remove()
    for module in layers:
        total, squares, count = sums[id(module)]
        if not count:
            continue
        if ctx is not None and ctx.distributed:
            merged = sum_across(total.tolist() + squares.tolist() + [count], ctx)
            size = module.num_features
            total, squares = torch.tensor(merged[:size]), torch.tensor(merged[size:2 * size])
            count = merged[-1]
        mean = total / count
        variance = (squares - count * mean * mean) / max(count - 1, 1)
        module.running_mean.copy_(mean.to(module.running_mean))
        module.running_var.copy_(variance.to(module.running_var))
    return len(layers)
