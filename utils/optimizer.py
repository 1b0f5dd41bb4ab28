"""The optimizer and its parameter groups.

TRAIN.PARAM_GROUPS:
- 'none': one group, every trainable parameter with TRAIN.WEIGHT_DECAY (the default);
- 'tsn': the policy of TSN and DLAC (their get_optim_policies): convolution and linear weights
  at the LR with weight decay, their biases at twice the LR without decay, BN (and other
  norm) parameters at the LR without decay. Frozen parameters (partial BN) are left out.
Each group carries `lr_mult` and `decay_mult`; the LR schedule multiplies by lr_mult.
"""
import torch
import torch.nn as nn

PARAM_GROUP_POLICIES = ('none', 'tsn')
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def parameter_groups(model, policy='none'):
    """[{'params', 'lr_mult', 'decay_mult', 'name'}] of the model's trainable parameters."""
    if policy == 'none':
        return [{'params': [p for p in model.parameters() if p.requires_grad], 'lr_mult': 1.0,
                 'decay_mult': 1.0, 'name': 'all'}]
    if policy != 'tsn':
        raise ValueError(f'TRAIN.PARAM_GROUPS must be one of {list(PARAM_GROUP_POLICIES)}, got {policy!r}')
    weights, biases, norms, seen = [], [], [], set()
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            if isinstance(module, NORM_TYPES):
                norms.append(parameter)
            elif name == 'bias':
                biases.append(parameter)
            else:
                weights.append(parameter)
    return [{'params': weights, 'lr_mult': 1.0, 'decay_mult': 1.0, 'name': 'weights'},
            {'params': biases, 'lr_mult': 2.0, 'decay_mult': 0.0, 'name': 'biases'},
            {'params': norms, 'lr_mult': 1.0, 'decay_mult': 0.0, 'name': 'norms'}]


def build_optimizer(model, cfg, lr):
    """SGD with momentum over parameter_groups(model, TRAIN.PARAM_GROUPS), at `lr`."""
    groups = [group for group in parameter_groups(model, cfg.TRAIN.PARAM_GROUPS) if group['params']]
    for group in groups:
        group['lr'] = lr * group['lr_mult']
        group['weight_decay'] = cfg.TRAIN.WEIGHT_DECAY * group['decay_mult']
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.TRAIN.MOMENTUM,
                           weight_decay=cfg.TRAIN.WEIGHT_DECAY)
