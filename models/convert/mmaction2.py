"""mmaction2 1.x checkpoints: `{'meta': {'cfg': <config text>, ...}, 'state_dict': ...}` with
the recognizer's `backbone.` and `cls_head.` prefixes. Models: TSN and TSM (ResNet,
ResNetTSM), I3D (ResNet3d) and SlowFast (ResNet3dSlowFast), R50 and R101.

Names: mmcv's ConvModule keeps conv and BN as `convN.conv` / `convN.bn` (ours `convN` /
`bnN`); ResNetTSM wraps the shifted conv as `conv1.conv.net`; SlowFast has `slow_path` /
`fast_path` and `*_lateral` convolutions. Architecture: the config text says it; without it
(files converted from mmaction2 0.x), shapes and the published configs do.
- I3D: the stem conv and stem max pool have temporal stride 2 (MODEL.STEM_TEMPORAL_STRIDE).
  I3D-NL (the i3d_nl embedded-gaussian configs): `non_local_block` -> MODEL.NON_LOCAL, with
  its sub_sample and use_scale; the output conv has no bias there (a zero bias here).
- SlowFast: the lateral is a conv alone unless `lateral_norm` (MODEL.SLOWFAST_LATERAL); the
  head takes (fast, slow) features, ours (slow, fast): the classifier's columns are swapped.
"""
import torch

from ..weights import WeightsError
from .common import (BN_PARAMS, CLASSIFIER, FIRST_CONV, KIND_MODEL, alpha_from_fusion_kernel, Converted,
                     config_assignments, has_key, rename, resnet_depth, rgb_convention, unwrap)

NAME = 'mmaction2'
DESCRIPTION = "mmaction2 1.x: {'meta', 'state_dict'} with backbone. and cls_head."

# (mmaction2 key inside one ResNet / ResNetTSM / ResNet3d pathway, our key)
RESNET_RULES = [
    (r'conv1\.conv\.weight', r'conv1.weight'),
    (rf'conv1\.bn\.{BN_PARAMS}', r'bn1.\1'),
    (r'(layer\d+\.\d+)\.downsample\.conv\.weight', r'\1.downsample.0.weight'),
    (rf'(layer\d+\.\d+)\.downsample\.bn\.{BN_PARAMS}', r'\1.downsample.1.\2'),
    (r'(layer\d+\.\d+)\.conv(\d)\.conv(?:\.net)?\.weight', r'\1.conv\2.weight'),
    (rf'(layer\d+\.\d+)\.conv(\d)\.bn\.{BN_PARAMS}', r'\1.bn\2.\3'),
    (r'(layer\d+\.\d+)\.non_local_block\.(theta|phi|g)(?:\.0)?\.conv\.(weight|bias)', r'\1.non_local.\2.\3'),
    (r'(layer\d+\.\d+)\.non_local_block\.conv_out\.conv\.(weight|bias)', r'\1.non_local.out.0.\2'),
    (rf'(layer\d+\.\d+)\.non_local_block\.conv_out\.bn\.{BN_PARAMS}', r'\1.non_local.out.1.\2'),
]
LATERAL_RULES = [
    (r'conv1_lateral\.conv\.weight', r'lateral.0.0.weight'),
    (rf'conv1_lateral\.bn\.{BN_PARAMS}', r'lateral.0.1.\1'),
    (r'layer(\d)_lateral\.conv\.weight', r'lateral.\1.0.weight'),
    (rf'layer(\d)_lateral\.bn\.{BN_PARAMS}', r'lateral.\1.1.\2'),
]
# mmaction2's ActionDataPreprocessor default for the Kinetics configs: RGB in [0, 255]
DEFAULT_CONVENTION = {'DATASET.MEAN': [123.675, 116.28, 103.53], 'DATASET.STD': [58.395, 57.12, 57.375],
                      'DATASET.CHANNEL_ORDER': 'RGB', 'DATASET.VALUE_RANGE': 255.0}


def recognises(checkpoint):
    state = checkpoint.get('state_dict') if isinstance(checkpoint, dict) else None
    return (isinstance(state, dict) and any(k.startswith('backbone.') for k in state)
            and any(k.startswith('cls_head.') for k in state))


def _model_config(checkpoint):
    meta = checkpoint.get('meta') or {}
    text = meta.get('cfg') if isinstance(meta, dict) else None
    model = config_assignments(text).get('model') if isinstance(text, str) else None
    return model if isinstance(model, dict) else None


def _model_name(model_config, state):
    """'tsn', 'tsm', 'i3d' or 'slowfast', from the config or else the names and shapes."""
    backbone_type = ((model_config or {}).get('backbone') or {}).get('type')
    by_type = {'ResNet': 'tsn', 'ResNetTSM': 'tsm', 'ResNet3d': 'i3d', 'ResNet3dSlowFast': 'slowfast'}
    if backbone_type in by_type:
        return by_type[backbone_type]
    if backbone_type:
        raise WeightsError(f'mmaction2 backbone {backbone_type!r} has no DLAC counterpart; '
                           f'supported: {sorted(by_type)}')
    if any(k.startswith('backbone.slow_path.') for k in state):
        return 'slowfast'
    if state['backbone.conv1.conv.weight'].dim() == 5:
        return 'i3d'
    return 'tsm' if has_key(state, r'backbone\..*\.conv\.net\.weight') else 'tsn'


def _prefixed(state, prefix, rules, source):
    part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return rename(part, rules, source)


def _convention(model_config):
    preprocessor = (model_config or {}).get('data_preprocessor') or {}
    if 'mean' in preprocessor and 'std' in preprocessor:
        return rgb_convention(preprocessor['mean'], preprocessor['std'], 255)
    return dict(DEFAULT_CONVENTION)


def convert(checkpoint):
    state = {k: v for k, v in unwrap(checkpoint, 'state_dict').items()
             if not k.startswith('data_preprocessor.')}
    model_config = _model_config(checkpoint)
    model_name = _model_name(model_config, state)
    backbone_config = (model_config or {}).get('backbone') or {}
    notes = ['config read from meta["cfg"]' if model_config else
             'no config text in the file: architecture inferred from names and shapes']
    ours = {'head.fc.weight': state['cls_head.fc_cls.weight'],
            'head.fc.bias': state['cls_head.fc_cls.bias']}
    notes.append('convN.conv/convN.bn -> convN/bnN, downsample.conv/bn -> downsample.0/1, '
                 'cls_head.fc_cls -> head.fc')
    options = {}
    if model_name == 'slowfast':
        ours.update(_slowfast(state, backbone_config, options, notes))
        depth = resnet_depth(ours, 'slow.')
    else:
        ours.update({'backbone.' + k: v for k, v in
                     _prefixed(state, 'backbone.', RESNET_RULES, 'mmaction2 backbone').items()})
        depth = resnet_depth(ours, 'backbone.')
        if model_name == 'tsm':
            options['MODEL.TSM_SHIFT_DIV'] = int(backbone_config.get('shift_div', 8))
            notes.append('TSM: the shift wrapper conv1.conv.net -> conv1')
        if model_name == 'i3d':
            _i3d_options(backbone_config, depth, options, notes)
            if any('.non_local.' in k for k in ours):
                _non_local_options(ours, backbone_config, options, notes)
    leftover = [k for k in state if not k.startswith(('backbone.', 'cls_head.fc_cls.'))]
    if leftover:
        raise WeightsError(f'mmaction2 file: keys this converter has no rule for: {leftover[:6]}')
    options['BACKBONE'] = f'resnet{depth}'
    # a recognizer: backbone and cls_head, always whole
    return Converted(ours, model_name, options, _convention(model_config), notes, kind=KIND_MODEL,
                     classifier=CLASSIFIER, first_conv=FIRST_CONV.get(model_name, 'backbone.conv1.weight'))


def _non_local_options(ours, backbone_config, options, notes):
    nl_config = backbone_config.get('non_local_cfg') or {}
    mode = nl_config.get('mode', 'embedded_gaussian')
    if mode != 'embedded_gaussian':
        raise WeightsError(f'mmaction2 non-local mode {mode!r}: DLAC has the embedded_gaussian form')
    for key in [k for k in ours if k.endswith('.non_local.out.0.weight')]:
        ours.setdefault(key[:-len('weight')] + 'bias', torch.zeros(ours[key].shape[0]))
    if backbone_config:      # the config's values, else mmcv NonLocal3d's own defaults
        sub_sample = bool(nl_config.get('sub_sample', False))
        scaled = bool(nl_config.get('use_scale', True))
    else:                    # no config text: the published i3d_nl embedded-gaussian config
        sub_sample, scaled = True, False
    options.update({'MODEL.NON_LOCAL': True, 'MODEL.NON_LOCAL_SUBSAMPLE': sub_sample,
                    'MODEL.NON_LOCAL_SCALED': scaled})
    notes.append(f'non-local blocks: sub_sample {sub_sample}, use_scale {scaled} '
                 + ('from the config (mmcv NonLocal3d defaults for what it leaves out)' if backbone_config
                    else '(the published i3d_nl embedded-gaussian config: no config text in the file)'))


def _i3d_options(backbone_config, depth, options, notes):
    if backbone_config:
        strides = [int(backbone_config.get('conv1_stride_t', 1)), int(backbone_config.get('pool1_stride_t', 1))]
        notes.append(f'I3D stem temporal strides {strides} from the config')
        if not backbone_config.get('with_pool2', True):
            raise WeightsError('mmaction2 I3D with with_pool2=False has no DLAC counterpart')
    else:
        strides = [2, 2]
        notes.append('I3D stem temporal strides [2, 2] inferred: every published mmaction2 I3D '
                     'config (i3d_r50 base) sets conv1_stride_t=2 and pool1_stride_t=2')
    options['MODEL.STEM_TEMPORAL_STRIDE'] = strides
    if depth in (18, 34):
        options['MODEL.INFLATE_BASIC_CONV2'] = True
        notes.append('ResNet3d-18/34: BasicBlock3d inflates conv2 too')


def _slowfast(state, backbone_config, options, notes):
    ours = {'slow.' + k: v for k, v in _prefixed(
        {k: v for k, v in state.items() if '_lateral.' not in k},
        'backbone.slow_path.', RESNET_RULES, 'mmaction2 slow_path').items()}
    ours.update({'fast.' + k: v for k, v in
                 _prefixed(state, 'backbone.fast_path.', RESNET_RULES, 'mmaction2 fast_path').items()})
    ours.update(_prefixed({k: v for k, v in state.items() if '_lateral.' in k},
                          'backbone.slow_path.', LATERAL_RULES, 'mmaction2 lateral'))
    kernel = int(ours['lateral.0.0.weight'].shape[2])
    normed = 'lateral.0.1.weight' in ours
    if backbone_config:
        alpha = int(backbone_config.get('speed_ratio', 8))
        if int(backbone_config.get('resample_rate', 8)) != alpha:
            raise WeightsError('mmaction2 SlowFast with resample_rate != speed_ratio (the Fast pathway '
                               'subsampled too) has no DLAC counterpart')
        options['MODEL.SLOWFAST_BETA_INV'] = int(backbone_config.get('channel_ratio', 8))
        notes.append(f'SlowFast alpha {alpha} from the config (speed_ratio)')
    else:
        alpha = alpha_from_fusion_kernel(kernel, 'mmaction2', notes)
    options.update({'MODEL.SLOWFAST_ALPHA': alpha, 'MODEL.SLOWFAST_FUSION_KERNEL': kernel,
                    'MODEL.SLOWFAST_LATERAL': 'conv_bn_relu' if normed else 'conv',
                    'MODEL.SLOWFAST_SLOW_FRAMES': 'stride'})
    notes.append('lateral: conv + BN + ReLU (lateral_norm)' if normed else
                 'lateral: conv alone (no lateral_norm): MODEL.SLOWFAST_LATERAL conv')
    fast_channels = ours['fast.layer4.0.conv3.weight'].shape[0] if 'fast.layer4.0.conv3.weight' in ours \
        else ours['fast.layer4.0.conv2.weight'].shape[0]
    weight = state['cls_head.fc_cls.weight']
    ours['head.fc.weight'] = torch.cat([weight[:, fast_channels:], weight[:, :fast_channels]], dim=1)
    notes.append(f'classifier columns permuted: (fast {fast_channels}, slow) -> (slow, fast)')
    return ours
