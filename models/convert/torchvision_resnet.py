"""torchvision and timm ImageNet ResNets (`resnet50-0676ba61.pth`, timm's `resnet50.a1_in1k`):
torchvision's names (conv1, bn1, layer1..4 with downsample.0/1, fc), which our ResNets use too.
Converted to a TSN with that backbone and the ImageNet classifier as its head."""
import torch

from .common import IMAGENET, Converted, resnet_depth

NAME = 'torchvision'
DESCRIPTION = 'torchvision / timm ImageNet ResNet (conv1, layer1..4, fc)'


def _state(checkpoint):
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


def recognises(checkpoint):
    if not isinstance(checkpoint, dict):
        return False
    state = _state(checkpoint)
    conv = state.get('conv1.weight')
    return (isinstance(conv, torch.Tensor) and conv.dim() == 4 and 'layer1.0.conv1.weight' in state
            and 'bn1.weight' in state)


def convert(checkpoint):
    state = _state(checkpoint)
    depth = resnet_depth(state)
    ours = {('head.' + k if k.startswith('fc.') else 'backbone.' + k): v for k, v in state.items()}
    return Converted(ours, 'tsn', {'BACKBONE': f'resnet{depth}'}, dict(IMAGENET),
                     [f'ResNet-{depth}: backbone.* <- the file\'s names, head.fc <- fc'])
