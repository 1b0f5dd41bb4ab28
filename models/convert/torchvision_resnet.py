"""torchvision and timm ImageNet ResNets (`resnet50-0676ba61.pth`, timm's `resnet50.a1_in1k`):
torchvision's names (conv1, bn1, layer1..4 with downsample.0/1, fc), which our ResNets use too.
Converted to a TSN with that backbone and the ImageNet classifier as its head.

torchvision's video ResNets (`r3d_18-b3b3357e.pth`, `mc3_18-a90a0ba3.pth`,
`r2plus1d_18-91a641e6.pth`): stem.N, layer1..4, fc, the names of models/video_resnet.py under
`backbone.`; trained on Kinetics-400 clips of 16 frames at 112x112 with their own mean/std."""
import torch

from ..video_resnet import KINETICS_VIDEO
from .common import (IMAGENET, KIND_2D_BACKBONE, KIND_MODEL, Converted, present, resnet_depth,
                     rgb_convention, video_resnet_variant)

NAME = 'torchvision'
DESCRIPTION = ('torchvision / timm ImageNet ResNet (conv1, layer1..4, fc), MobileNetV2 (features.N, '
               'classifier.1) and Inception-v3 (Conv2d_1a_3x3, Mixed_5b, ..., fc); torchvision video '
               'ResNet (stem.N, layer1..4, fc)')


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
    image = (isinstance(conv, torch.Tensor) and conv.dim() == 4 and 'layer1.0.conv1.weight' in state
             and 'bn1.weight' in state)
    mobilenet = (isinstance(state.get('features.0.0.weight'), torch.Tensor)
                 and state['features.0.0.weight'].dim() == 4 and 'classifier.1.weight' in state)
    inception = 'Conv2d_1a_3x3.conv.weight' in state and 'Mixed_7c.branch_pool.conv.weight' in state
    stem = state.get('stem.0.weight')
    video = (isinstance(stem, torch.Tensor) and stem.dim() == 5 and 'fc.weight' in state
             and ('layer1.0.conv1.0.weight' in state or 'layer1.0.conv1.0.0.weight' in state))
    return image or video or mobilenet or inception


def convert(checkpoint):
    state = _state(checkpoint)
    if 'Conv2d_1a_3x3.conv.weight' in state:
        ours = {('head.fc.' + k.split('.', 1)[1] if k.startswith(('fc.', 'last_linear.')) else 'backbone.' + k): v
                for k, v in state.items() if not k.startswith('AuxLogits.')}
        return Converted(ours, 'tsn', {'BACKBONE': 'inceptionv3'}, rgb_convention([0.5] * 3, [0.5] * 3, 1),
                         ['Inception-v3: backbone.* <- the names, head.fc <- fc (Cadene: last_linear), AuxLogits left out',
                          'input scaled to [-1, 1] (mean 0.5, std 0.5), what transform_input did'],
                         kind=KIND_2D_BACKBONE, classifier=present(ours),
                         first_conv='backbone.Conv2d_1a_3x3.conv.weight')
    if 'features.0.0.weight' in state:
        ours = {('head.fc.' + k[len('classifier.1.'):] if k.startswith('classifier.1.') else 'backbone.' + k): v
                for k, v in state.items()}
        return Converted(ours, 'tsn', {'BACKBONE': 'mobilenetv2'}, dict(IMAGENET),
                         ['MobileNetV2: backbone.* <- features, head.fc <- classifier.1'],
                         kind=KIND_2D_BACKBONE, classifier=present(ours),
                         first_conv='backbone.features.0.0.weight')
    if 'stem.0.weight' in state:
        variant = video_resnet_variant(state)
        ours = {('head.' + k if k.startswith('fc.') else 'backbone.' + k): v for k, v in state.items()}
        return Converted(ours, variant, {'BACKBONE': 'resnet18'}, dict(KINETICS_VIDEO),
                         [f'torchvision {variant}_18: backbone.* <- stem/layer1..4, head.fc <- fc'],
                         kind=KIND_MODEL, classifier=present(ours), first_conv='backbone.stem.0.weight')
    depth = resnet_depth(state)
    ours = {('head.' + k if k.startswith('fc.') else 'backbone.' + k): v for k, v in state.items()}
    return Converted(ours, 'tsn', {'BACKBONE': f'resnet{depth}'}, dict(IMAGENET),
                     [f'ResNet-{depth}: backbone.* <- the file\'s names, head.fc <- fc'],
                     kind=KIND_2D_BACKBONE, classifier=present(ours), first_conv='backbone.conv1.weight')
