"""The MFNet authors' files (cypw/PyTorch-MFNet): `MFNet2D_ImageNet1k-0000.pth` (2D, ImageNet)
and the MFNet-3D Kinetics/UCF101 checkpoints (`{'epoch', 'state_dict'}`, `module.` of
DataParallel). Our MFNet has their names (conv1.conv, conv2.B01.conv_i1..., tail); their
classifier `classifier` is our `head.fc`, kept with its trained weights. Input: RGB in [0, 1],
mean [124, 117, 104] / 255, std 1 / (0.0167 * 255) (their data/iterator_factory.py)."""
import torch

from .common import KIND_2D_BACKBONE, KIND_MODEL, Converted, present, rgb_convention, strip_prefix, unwrap

NAME = 'mfnet-authors'
DESCRIPTION = 'MFNet authors (cypw/PyTorch-MFNet): conv1.conv, conv2.B01.conv_i1, ..., classifier'
CONVENTION = rgb_convention([124 / 255, 117 / 255, 104 / 255], [1 / (0.0167 * 255)] * 3, 1)


def _state(checkpoint):
    if not isinstance(checkpoint, dict):
        return {}
    return unwrap(checkpoint, 'state_dict') or strip_prefix(checkpoint, 'module.')


def recognises(checkpoint):
    state = _state(checkpoint)
    return (isinstance(state.get('conv1.conv.weight'), torch.Tensor)
            and any(k.startswith('conv2.B01.') for k in state))


def convert(checkpoint):
    state = _state(checkpoint)
    three_d = state['conv1.conv.weight'].dim() == 5
    ours = {('head.fc.' + k[len('classifier.'):] if k.startswith('classifier.') else 'backbone.' + k): v
            for k, v in state.items()}
    # MFNet-3D: a Kinetics/UCF101 model; MFNet2D: the ImageNet network MFNet-3D inflates from
    model_name, backbone, kind = (('mfnet3d', 'mfnet3d', KIND_MODEL) if three_d else
                                  ('tsn', 'mfnet2d', KIND_2D_BACKBONE))
    return Converted(ours, model_name, {'BACKBONE': backbone}, dict(CONVENTION),
                     [f'MFNet{"3D" if three_d else "2D"}: backbone.* <- the authors\' names, '
                      'head.fc <- classifier (kept)'],
                     kind=kind, classifier=present(ours), first_conv='backbone.conv1.conv.weight')
