"""pytorchvideo hub checkpoints (`I3D_8x8_R50.pyth`, `SLOWFAST_8x8_R50.pyth`,
`SLOWFAST_8x8_R101.pyth`; `create_slowfast` and `create_resnet` models): `{'model_state': ...}`
with the `blocks.N` names of pytorchvideo's Net. PySlowFast's PTV wrappers save the same
under a `model.` prefix.

X3D (`X3D_XS.pyth` ... `X3D_L.pyth`, `create_x3d`): the stem's convs are named the other way
round (`conv_t` is the 1x3x3 spatial one); the first block of the first stage has no BN on its
shortcut (only the stride changes there), where PySlowFast's and ours have one: it becomes an
identity BN (exact in evaluation; it trains like any BN when fine-tuning).

Architecture: identical to ours, layer by layer; what differs is around it. The Slow pathway
takes frames `linspace(0, T - 1, T / alpha)` (MODEL.SLOWFAST_SLOW_FRAMES linspace); inputs are
normalised with mean 0.45 and std 0.225. Every SlowFast file of the hub is 8x8 (alpha 4; the
lateral kernel is 7 for R50 and 5 for R101), and alpha is not in the weights.
"""
from .common import (KINETICS_SLOWFAST, KIND_MODEL, Converted, identity_bn, present, rename, resnet_depth,
                     strip_prefix, x3d_options)

NAME = 'pytorchvideo'
DESCRIPTION = "pytorchvideo hub .pyth: {'model_state'} with blocks.N.multipathway_blocks / res_blocks"

PATHWAY = {'0': 'slow', '1': 'fast'}
LAYER = {'conv': 'conv', 'norm': 'bn'}
CONV = {'a': '1', 'b': '2', 'c': '3'}
I3D_STAGES = {'1': '1', '3': '2', '4': '3', '5': '4'}     # blocks.2 is the parameter-free pool1


def _state(checkpoint):
    state = checkpoint.get('model_state') if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        return None
    return strip_prefix(strip_prefix(state, 'module.'), 'model.')


def recognises(checkpoint):
    state = _state(checkpoint)
    return state is not None and any(k.startswith('blocks.0.') for k in state)


def _stem(m):
    return f'{PATHWAY[m[1]]}.{"conv1" if m[2] == "conv" else "bn1"}.{m[3]}'


def _branch2(m):
    return f'{PATHWAY[m[2]]}.layer{m[1]}.{m[3]}.{LAYER[m[4]]}{CONV[m[5]]}.{m[6]}'


def _branch1(m):
    return f'{PATHWAY[m[2]]}.layer{m[1]}.{m[3]}.downsample.{0 if m[4] == "conv" else 1}.{m[5]}'


SLOWFAST_RULES = [
    (r'blocks\.0\.multipathway_blocks\.([01])\.(conv|norm)\.(.+)', _stem),
    (r'blocks\.([1-4])\.multipathway_blocks\.([01])\.res_blocks\.(\d+)\.branch2\.(conv|norm)_([abc])\.(.+)',
     _branch2),
    (r'blocks\.([1-4])\.multipathway_blocks\.([01])\.res_blocks\.(\d+)\.branch1_(conv|norm)\.(.+)', _branch1),
    (r'blocks\.([0-3])\.multipathway_fusion\.conv_fast_to_slow\.(.+)', r'lateral.\1.0.\2'),
    (r'blocks\.([0-3])\.multipathway_fusion\.norm\.(.+)', r'lateral.\1.1.\2'),
    (r'blocks\.6\.proj\.(.+)', r'head.fc.\1'),
]
I3D_RULES = [
    (r'blocks\.0\.conv\.(.+)', r'backbone.conv1.\1'),
    (r'blocks\.0\.norm\.(.+)', r'backbone.bn1.\1'),
    (r'blocks\.([1345])\.res_blocks\.(\d+)\.branch2\.(conv|norm)_([abc])\.(.+)',
     lambda m: f'backbone.layer{I3D_STAGES[m[1]]}.{m[2]}.{LAYER[m[3]]}{CONV[m[4]]}.{m[5]}'),
    (r'blocks\.([1345])\.res_blocks\.(\d+)\.branch1_(conv|norm)\.(.+)',
     lambda m: f'backbone.layer{I3D_STAGES[m[1]]}.{m[2]}.downsample.{0 if m[3] == "conv" else 1}.{m[4]}'),
    (r'blocks\.6\.proj\.(.+)', r'head.fc.\1'),
]


X3D_BRANCH2 = {'conv_a': 'conv_a', 'norm_a': 'bn_a', 'conv_b': 'conv_b', 'norm_b.0': 'bn_b',
               'norm_b.1.block.0': 'se.fc1', 'norm_b.1.block.2': 'se.fc2', 'conv_c': 'conv_c',
               'norm_c': 'bn_c'}
X3D_RULES = [
    (r'blocks\.0\.conv\.conv_t\.(.+)', r'backbone.stem.conv_xy.\1'),     # the spatial conv
    (r'blocks\.0\.conv\.conv_xy\.(.+)', r'backbone.stem.conv_t.\1'),     # the temporal one
    (r'blocks\.0\.norm\.(.+)', r'backbone.stem.bn.\1'),
    (r'blocks\.([1-4])\.res_blocks\.(\d+)\.branch2\.(conv_[abc]|norm_[ac]|norm_b\.0|norm_b\.1\.block\.[02])\.(.+)',
     lambda m: f'backbone.layer{m[1]}.{m[2]}.{X3D_BRANCH2[m[3]]}.{m[4]}'),
    (r'blocks\.([1-4])\.res_blocks\.(\d+)\.branch1_(conv|norm)\.(.+)',
     lambda m: f'backbone.layer{m[1]}.{m[2]}.shortcut.{0 if m[3] == "conv" else 1}.{m[4]}'),
    (r'blocks\.5\.pool\.pre_conv\.(.+)', r'head.conv_5.\1'),
    (r'blocks\.5\.pool\.pre_norm\.(.+)', r'head.bn_5.\1'),
    (r'blocks\.5\.pool\.post_conv\.(.+)', r'head.lin_5.\1'),
    (r'blocks\.5\.proj\.(.+)', r'head.fc.\1'),
]


def convert_x3d(state):
    ours = rename(state, X3D_RULES, 'pytorchvideo X3D')
    notes = ['blocks.0 -> stem (conv_t/conv_xy swapped), blocks.1-4 -> layer1-4, '
             'blocks.5 pool/proj -> head']
    for key in [k for k in ours if k.endswith('.shortcut.0.weight')]:
        prefix = key[:-len('0.weight')] + '1'
        if prefix + '.weight' not in ours:
            identity_bn(ours, prefix, ours[key].shape[0])
            notes.append(f'{prefix}: identity BN (pytorchvideo has none on this shortcut)')
    return Converted(ours, 'x3d', x3d_options(ours, notes), dict(KINETICS_SLOWFAST), notes,
                     kind=KIND_MODEL, classifier=present(ours), first_conv='backbone.stem.conv_xy.weight')


def convert(checkpoint):
    state = _state(checkpoint)
    if 'blocks.0.conv.conv_t.weight' in state:
        return convert_x3d(state)
    if any('multipathway_blocks' in k for k in state):
        ours = rename(state, SLOWFAST_RULES, 'pytorchvideo SlowFast')
        depth, kernel = resnet_depth(ours, 'slow.'), int(ours['lateral.0.0.weight'].shape[2])
        options = {'BACKBONE': f'resnet{depth}', 'MODEL.SLOWFAST_ALPHA': 4,
                   'MODEL.SLOWFAST_FUSION_KERNEL': kernel, 'MODEL.SLOWFAST_BETA_INV': 8,
                   'MODEL.SLOWFAST_LATERAL': 'conv_bn_relu', 'MODEL.SLOWFAST_SLOW_FRAMES': 'linspace'}
        notes = ['blocks.N.multipathway_blocks -> slow./fast., multipathway_fusion -> lateral, '
                 'blocks.6.proj -> head.fc',
                 f'alpha 4 (every pytorchvideo hub SlowFast is 8x8), fusion kernel {kernel} from '
                 'the lateral weights', 'Slow pathway frames: linspace (MODEL.SLOWFAST_SLOW_FRAMES)']
        return Converted(ours, 'slowfast', options, dict(KINETICS_SLOWFAST), notes, kind=KIND_MODEL,
                         classifier=present(ours), first_conv='fast.conv1.weight')
    ours = rename(state, I3D_RULES, 'pytorchvideo I3D')
    depth = resnet_depth(ours, 'backbone.')
    return Converted(ours, 'i3d', {'BACKBONE': f'resnet{depth}', 'MODEL.STEM_TEMPORAL_STRIDE': [1, 1]},
                     dict(KINETICS_SLOWFAST),
                     ['blocks.0 -> stem, blocks.1/3/4/5 -> layer1..4, blocks.6.proj -> head.fc'],
                     kind=KIND_MODEL, classifier=present(ours), first_conv='backbone.conv1.weight')
