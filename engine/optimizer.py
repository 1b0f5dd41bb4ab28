"""The optimizer and its parameter groups.

Every trainable parameter gets an LR multiplier and a weight-decay multiplier from:
- TRAIN.PARAM_GROUPS 'tsn' (TSN's and DLAC's get_optim_policies): biases at twice the LR
  without decay, BN (and other norm) parameters without decay; 'none': all alike;
- TRAIN.ZERO_WD_1D_PARAM (PySlowFast): no weight decay on any parameter of one dimension or
  less (biases, norm weights), nor on those the model names in `no_weight_decay()` (timm's
  convention: VideoMAE pre-training's mask token);
- TRAIN.HEAD_LR_MULT: the classifier head's LR times this (fine-tuning a pretrained backbone);
- TRAIN.LAYER_DECAY < 1 (BEiT / VideoMAE fine-tuning), for models that say each parameter's
  depth (`layer_of(name)`, 0 = input .. D + 1 = head): LR times LAYER_DECAY^(D + 1 - depth).
Parameters with the same multipliers share a group; frozen ones (partial BN) are left out.
TRAIN.OPTIMIZER is 'sgd' (momentum, TRAIN.NESTEROV) or 'adamw' (decoupled weight decay, with
TRAIN.ADAMW_BETAS).
"""
import torch
import torch.nn as nn

PARAM_GROUP_POLICIES = ('none', 'tsn')
OPTIMIZERS = ('sgd', 'adamw')
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
HEAD_PREFIXES = ('head.', 'module.head.')


def _multipliers(name, parameter, module, policy, zero_wd_1d, head_lr_mult, no_decay=()):
    lr_mult, decay_mult = 1.0, 1.0
    if policy == 'tsn':
        if isinstance(module, NORM_TYPES):
            decay_mult = 0.0
        elif name.rsplit('.', 1)[-1] == 'bias':
            lr_mult, decay_mult = 2.0, 0.0
    if zero_wd_1d and (parameter.dim() <= 1 or name in no_decay):
        decay_mult = 0.0
    if name.startswith(HEAD_PREFIXES):
        lr_mult *= head_lr_mult
    return lr_mult, decay_mult


def layer_decay_multiplier(model, name, layer_decay):
    if layer_decay >= 1.0 or not hasattr(model, 'layer_of'):
        return 1.0
    top = model.layer_of('head.fc.weight')
    return layer_decay ** (top - model.layer_of(name))


def parameter_groups(model, policy='none', zero_wd_1d=False, head_lr_mult=1.0, layer_decay=1.0):
    """[{'params', 'lr_mult', 'decay_mult', 'name'}] of the model's trainable parameters, one
    group per distinct (lr_mult, decay_mult), in order of first appearance."""
    if policy not in PARAM_GROUP_POLICIES:
        raise ValueError(f'TRAIN.PARAM_GROUPS must be one of {list(PARAM_GROUP_POLICIES)}, got {policy!r}')
    owner = {f'{prefix}.{name}' if prefix else name: module
             for prefix, module in model.named_modules() for name, _ in module.named_parameters(recurse=False)}
    no_decay = set(model.no_weight_decay()) if hasattr(model, 'no_weight_decay') else set()
    groups = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        lr_mult, decay_mult = _multipliers(name, parameter, owner[name], policy, zero_wd_1d, head_lr_mult,
                                           no_decay)
        key = (lr_mult * layer_decay_multiplier(model, name, layer_decay), decay_mult)
        if key not in groups:
            groups[key] = {'params': [], 'lr_mult': key[0], 'decay_mult': key[1],
                           'name': f'lr x{key[0]:g}, decay x{key[1]:g}', 'param_names': []}
        groups[key]['params'].append(parameter)
        groups[key]['param_names'].append(name)
    return list(groups.values())


def build_optimizer(model, cfg, lr):
    """TRAIN.OPTIMIZER over parameter_groups(model, ...), at `lr`."""
    train = cfg.TRAIN
    groups = parameter_groups(model, train.PARAM_GROUPS, train.ZERO_WD_1D_PARAM, train.HEAD_LR_MULT,
                              train.LAYER_DECAY)
    for group in groups:
        group['lr'] = lr * group['lr_mult']
        group['weight_decay'] = train.WEIGHT_DECAY * group['decay_mult']
    if train.OPTIMIZER == 'sgd':
        return torch.optim.SGD(groups, lr=lr, momentum=train.MOMENTUM, nesterov=train.NESTEROV,
                               weight_decay=train.WEIGHT_DECAY)
    if train.OPTIMIZER == 'adamw':
        return torch.optim.AdamW(groups, lr=lr, weight_decay=train.WEIGHT_DECAY,
                                 betas=tuple(train.ADAMW_BETAS))
    raise ValueError(f'TRAIN.OPTIMIZER must be one of {list(OPTIMIZERS)}, got {train.OPTIMIZER!r}')
