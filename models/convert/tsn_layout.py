"""The `base_model.` / `new_fc.` layout that the TSN and TSM authors' code and the original DLAC
share (one TSN class around a torchvision ResNet or BN-Inception, DataParallel's `module.`),
read into our TSN or TSM: always a whole model (kind 'model', `new_fc` its classifier).
Shifted ResNet blocks wrap conv1 (`conv1.net`): which blocks carry it must be the ones our TSM
shifts (all, or every other block from ResNet-101 on)."""
import re

from ..backbones.mobilenetv2 import mobilenetv2, shiftable_blocks
from ..tsm import shift_interval
from ..weights import WeightsError
from .common import CAFFE_BGR, IMAGENET, KIND_MODEL, Converted, present, rename, resnet_depth

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
    if 'base_model.features.0.0.weight' in state:
        return convert_mobilenetv2(state, source)
    ours = rename(squeeze_bn(state), RULES, source)
    if 'backbone.conv1_7x7_s2.weight' in ours:
        return Converted(ours, 'tsn', {'BACKBONE': 'bninception'}, dict(CAFFE_BGR),
                         ['base_model. -> backbone., new_fc -> head.fc',
                          'BN-Inception: BGR, values 0-255, mean [104, 117, 128], std 1',
                          'a TSM BN-Inception file loads the same way into MODEL_NAME tsm '
                          '(its block shift has no parameters; the file cannot say which it is)'],
                         kind=KIND_MODEL, classifier=present(ours), first_conv='backbone.conv1_7x7_s2.weight')
    depth = resnet_depth(ours, 'backbone.')
    shifted = sorted(re.match(r'base_model\.(layer\d\.\d+)\.', k)[1] for k in state if '.conv1.net.' in k)
    notes = ['base_model. -> backbone., new_fc -> head.fc']
    if not shifted:
        return Converted(ours, 'tsn', {'BACKBONE': f'resnet{depth}'}, dict(IMAGENET), notes,
                         kind=KIND_MODEL, classifier=present(ours), first_conv='backbone.conv1.weight')
    blocks = {f'layer{layer}': len({k.split('.')[2] for k in ours if k.startswith(f'backbone.layer{layer}.')})
              for layer in range(1, 5)}
    every = shift_interval(blocks['layer3'])
    expected = sorted(f'{layer}.{i}' for layer, count in blocks.items() for i in range(0, count, every))
    if shifted != expected:
        raise WeightsError(f'{source} TSM file shifts blocks {shifted}, DLAC\'s TSM shifts {expected}')
    notes.append(f'TSM: the shift wrapper conv1.net -> conv1 ({len(shifted)} shifted blocks), shift '
                 'div 8 as in every released file')
    return Converted(ours, 'tsm', {'BACKBONE': f'resnet{depth}', 'MODEL.TSM_SHIFT_DIV': 8},
                     dict(IMAGENET), notes, kind=KIND_MODEL, classifier=present(ours),
                     first_conv='backbone.conv1.weight')


# the TSM authors' MobileNetV2 (archs/mobilenet_v2.py) keeps each inverted residual as one flat
# Sequential; ours (torchvision's names) nests conv-BN-ReLU6 triples
MOBILENET_EXPANDING = {'0': 'conv.0.0', '1': 'conv.0.1', '3': 'conv.1.0', '4': 'conv.1.1', '6': 'conv.2', '7': 'conv.3'}
MOBILENET_FIRST = {'0': 'conv.0.0', '1': 'conv.0.1', '3': 'conv.1', '4': 'conv.2'}


def _mobilenet_key(match):
    block, layer, rest = match[1], match[2], match[3]
    table = MOBILENET_FIRST if block == '1' else MOBILENET_EXPANDING
    return f'backbone.features.{block}.{table[layer]}.{rest}'


MOBILENET_RULES = [
    (r'base_model\.features\.(\d+)\.conv\.(\d)(?:\.net)?\.(.+)', _mobilenet_key),
    (r'base_model\.features\.(0|18)\.(.+)', r'backbone.features.\1.\2'),
    (r'new_fc\.(weight|bias)', r'head.fc.\1'),
]


def convert_mobilenetv2(state, source):
    """The TSM authors' (TSM or TSN) MobileNetV2: the flat conv indices to torchvision's; the
    shift wrapper (`conv.0.net`) must sit where our TSM shifts."""
    ours = rename(state, MOBILENET_RULES, source)
    shifted = sorted(int(k.split('.')[2]) for k in state if k.endswith('.conv.0.net.weight'))
    notes = ["base_model.features.N.conv.K (the TSM authors' flat layout) -> torchvision's names, "
             'new_fc -> head.fc']
    if not shifted:
        return Converted(ours, 'tsn', {'BACKBONE': 'mobilenetv2'}, dict(IMAGENET), notes,
                         kind=KIND_MODEL, classifier=present(ours), first_conv='backbone.features.0.0.weight')
    reference = mobilenetv2(num_classes=0)
    position = {id(block): index for index, block in enumerate(reference.features)}
    expected = sorted(position[id(block)] for block in shiftable_blocks(reference))
    if shifted != expected:
        raise WeightsError(f'{source} TSM MobileNetV2 shifts blocks {shifted}, DLAC\'s shifts {expected}')
    notes.append(f'TSM: the shift wrapper conv.0.net -> conv.0.0 ({len(shifted)} shifted blocks)')
    return Converted(ours, 'tsm', {'BACKBONE': 'mobilenetv2', 'MODEL.TSM_SHIFT_DIV': 8},
                     dict(IMAGENET), notes, kind=KIND_MODEL, classifier=present(ours),
                     first_conv='backbone.features.0.0.weight')
