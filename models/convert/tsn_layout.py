"""The `base_model.` / `new_fc.` layout that the TSN and TSM authors' code and the original DLAC
share (one TSN class around a torchvision ResNet or BN-Inception, DataParallel's `module.`),
read into our TSN or TSM. Shifted ResNet blocks wrap conv1 (`conv1.net`): which blocks carry
it must be the ones our TSM shifts (all, or every other block from ResNet-101 on)."""
import re

from ..tsm import shift_interval
from ..weights import WeightsError
from .common import CAFFE_BGR, IMAGENET, Converted, rename, resnet_depth

RULES = [
    (r'base_model\.(layer[1-4]\.\d+\.conv1)\.net\.weight', r'backbone.\1.weight'),
    (r'new_fc\.(weight|bias)', r'head.fc.\1'),
    (r'base_model\.fc\.(weight|bias)', r'head.fc.\1'),
    (r'base_model\.(.+)', r'backbone.\1'),
]


def squeeze_bn(state):
    """yjxiong's older BN-Inception files store BN tensors as [1, C]."""
    return {k: (v.reshape(-1) if v.dim() == 2 and v.shape[0] == 1 and re.search(r'_bn\.', k) else v)
            for k, v in state.items()}


def convert_tsn_layout(state, source):
    """(Converted) of a `base_model.` state dict, `module.` already stripped."""
    if any('.nl.' in k or '.nl_block.' in k or '.block.' in k for k in state):
        raise WeightsError(f'{source} file with non-local blocks: DLAC has no non-local blocks yet '
                           '(the model-zoo issue adds them)')
    if any(k.startswith('base_model.layer2.net.') for k in state):
        raise WeightsError(f'{source} file with temporal pooling (--temporal_pool) has no DLAC counterpart')
    ours = rename(squeeze_bn(state), RULES, source)
    if 'backbone.conv1_7x7_s2.weight' in ours:
        return Converted(ours, 'tsn', {'BACKBONE': 'bninception'}, dict(CAFFE_BGR),
                         ['base_model. -> backbone., new_fc -> head.fc',
                          'BN-Inception: BGR, values 0-255, mean [104, 117, 128], std 1',
                          'a TSM BN-Inception file reads as TSN (its shift has no parameters; '
                          'DLAC has no TSM on BN-Inception yet)'])
    depth = resnet_depth(ours, 'backbone.')
    shifted = sorted(re.match(r'base_model\.(layer\d\.\d+)\.', k)[1] for k in state if '.conv1.net.' in k)
    notes = ['base_model. -> backbone., new_fc -> head.fc']
    if not shifted:
        return Converted(ours, 'tsn', {'BACKBONE': f'resnet{depth}'}, dict(IMAGENET), notes)
    blocks = {f'layer{layer}': len({k.split('.')[2] for k in ours if k.startswith(f'backbone.layer{layer}.')})
              for layer in range(1, 5)}
    every = shift_interval(blocks['layer3'])
    expected = sorted(f'{layer}.{i}' for layer, count in blocks.items() for i in range(0, count, every))
    if shifted != expected:
        raise WeightsError(f'{source} TSM file shifts blocks {shifted}, DLAC\'s TSM shifts {expected}')
    notes.append(f'TSM: the shift wrapper conv1.net -> conv1 ({len(shifted)} shifted blocks), shift '
                 'div 8 as in every released file')
    return Converted(ours, 'tsm', {'BACKBONE': f'resnet{depth}', 'MODEL.TSM_SHIFT_DIV': 8},
                     dict(IMAGENET), notes)
