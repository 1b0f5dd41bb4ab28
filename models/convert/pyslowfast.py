"""PySlowFast's own checkpoints (`checkpoint_epoch_*.pyth` of facebookresearch/SlowFast):
`{'epoch', 'model_state', 'optimizer_state', 'cfg'}`, `cfg` being the run's config as YAML, and
the names of slowfast/models/video_model_builder.py (`s1.pathway0_stem`, `s2.pathway0_res0.
branch2.a`, `s1_fuse.conv_f2s`, `head.projection`). Models: SlowFast and the ResNet model class
with ARCH i3d. Architecture options come from `cfg` (SLOWFAST.ALPHA, FUSION_KERNEL_SZ,
BETA_INV, DATA.MEAN/STD); without it alpha is inferred from the lateral kernel (7: alpha 4,
5: alpha 8, as every published configuration pairs them). The Slow pathway takes frames
`linspace(0, T - 1, T / alpha)` (PackPathway). PySlowFast's Caffe2 `.pkl` zoo files are
pickles that cannot be read safely (weights_only): their `.pyth` versions are pytorchvideo's.
"""
import yaml

from ..weights import WeightsError
from .common import (KINETICS_SLOWFAST, KIND_MODEL, Converted, alpha_from_fusion_kernel,
                     present, rename, resnet_depth, rgb_convention, unwrap, x3d_options)

NAME = 'pyslowfast'
DESCRIPTION = "PySlowFast .pyth: {'model_state', 'cfg'} with s1.pathway0_stem ... head.projection"

PATHWAY = {'0': 'slow', '1': 'fast'}
CONV = {'a': '1', 'b': '2', 'c': '3'}


def recognises(checkpoint):
    state = unwrap(checkpoint, 'model_state')
    return state is not None and any(k.startswith('s1.pathway0_stem.') for k in state)


def _rules(slowfast):
    def pathway(index):
        return PATHWAY[index] if slowfast else 'backbone'
    return [
        (r's1\.pathway([01])_stem\.(conv|bn)\.(.+)',
         lambda m: f'{pathway(m[1])}.{m[2]}1.{m[3]}'),
        (r's([2-5])\.pathway([01])_res(\d+)\.branch2\.([abc])\.(.+)',
         lambda m: f'{pathway(m[2])}.layer{int(m[1]) - 1}.{m[3]}.conv{CONV[m[4]]}.{m[5]}'),
        (r's([2-5])\.pathway([01])_res(\d+)\.branch2\.([abc])_bn\.(.+)',
         lambda m: f'{pathway(m[2])}.layer{int(m[1]) - 1}.{m[3]}.bn{CONV[m[4]]}.{m[5]}'),
        (r's([2-5])\.pathway([01])_res(\d+)\.branch1\.(.+)',
         lambda m: f'{pathway(m[2])}.layer{int(m[1]) - 1}.{m[3]}.downsample.0.{m[4]}'),
        (r's([2-5])\.pathway([01])_res(\d+)\.branch1_bn\.(.+)',
         lambda m: f'{pathway(m[2])}.layer{int(m[1]) - 1}.{m[3]}.downsample.1.{m[4]}'),
        (r's([1-4])_fuse\.conv_f2s\.(.+)', lambda m: f'lateral.{int(m[1]) - 1}.0.{m[2]}'),
        (r's([1-4])_fuse\.bn\.(.+)', lambda m: f'lateral.{int(m[1]) - 1}.1.{m[2]}'),
        (r'head\.projection\.(.+)', r'head.fc.\1'),
    ]


X3D_BRANCH2 = {'a': 'conv_a', 'a_bn': 'bn_a', 'b': 'conv_b', 'b_bn': 'bn_b', 'se.fc1': 'se.fc1',
               'se.fc2': 'se.fc2', 'c': 'conv_c', 'c_bn': 'bn_c'}
X3D_RULES = [
    (r's1\.pathway0_stem\.conv_xy\.(.+)', r'backbone.stem.conv_xy.\1'),
    (r's1\.pathway0_stem\.conv\.(.+)', r'backbone.stem.conv_t.\1'),
    (r's1\.pathway0_stem\.bn\.(.+)', r'backbone.stem.bn.\1'),
    (r's([2-5])\.pathway0_res(\d+)\.branch2\.([abc]|[abc]_bn|se\.fc[12])\.(.+)',
     lambda m: f'backbone.layer{int(m[1]) - 1}.{m[2]}.{X3D_BRANCH2[m[3]]}.{m[4]}'),
    (r's([2-5])\.pathway0_res(\d+)\.branch1\.(.+)',
     lambda m: f'backbone.layer{int(m[1]) - 1}.{m[2]}.shortcut.0.{m[3]}'),
    (r's([2-5])\.pathway0_res(\d+)\.branch1_bn\.(.+)',
     lambda m: f'backbone.layer{int(m[1]) - 1}.{m[2]}.shortcut.1.{m[3]}'),
    (r'head\.conv_5\.(.+)', r'head.conv_5.\1'),
    (r'head\.conv_5_bn\.(.+)', r'head.bn_5.\1'),
    (r'head\.lin_5\.(.+)', r'head.lin_5.\1'),
    (r'head\.projection\.(.+)', r'head.fc.\1'),
]


def _config(checkpoint):
    text = checkpoint.get('cfg')
    if not isinstance(text, str):
        return {}
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _convention(config):
    data = config.get('DATA') or {}
    if 'MEAN' in data and 'STD' in data:
        return rgb_convention(data['MEAN'], data['STD'], 1)
    return dict(KINETICS_SLOWFAST)


def convert(checkpoint):
    state, config = unwrap(checkpoint, 'model_state'), _config(checkpoint)
    arch = ((config.get('MODEL') or {}).get('ARCH') or '').lower()
    slowfast = any(k.startswith('s1.pathway1_stem.') for k in state)
    if arch == 'x3d' or 's1.pathway0_stem.conv_xy.weight' in state:
        ours = rename(state, X3D_RULES, 'PySlowFast X3D')
        notes = ['s1.pathway0_stem.conv_xy/conv -> stem.conv_xy/conv_t, sS.pathway0_resI.branch2 -> '
                 'layer(S-1).I, head.conv_5/lin_5/projection -> head']
        return Converted(ours, 'x3d', x3d_options(ours, notes), _convention(config), notes,
                         kind=KIND_MODEL, classifier=present(ours), first_conv='backbone.stem.conv_xy.weight')
    if arch and arch not in ('slowfast', 'i3d'):
        raise WeightsError(f'PySlowFast MODEL.ARCH {arch!r} has no DLAC counterpart (slowfast, i3d '
                           f'and x3d do)')
    if any('nonlocal' in k for k in state):
        raise WeightsError("PySlowFast's non-local blocks max-pool before their phi and g convs and "
                           'scale the affinities; DLAC builds the form of mmaction2 and the original DLAC '
                           '(pooling after the convs), which cannot take these weights exactly')
    ours = rename(state, _rules(slowfast), 'PySlowFast')
    notes = ['s1.pathwayP_stem -> stem, sS.pathwayP_resI.branch2.a/b/c -> layer(S-1).I.conv1/2/3, '
             'branch1 -> downsample, sK_fuse -> lateral, head.projection -> head.fc',
             'config read from the file (cfg)' if config else 'no cfg in the file']
    convention = _convention(config)
    if not slowfast:
        depth = resnet_depth(ours, 'backbone.')
        return Converted(ours, 'i3d', {'BACKBONE': f'resnet{depth}', 'MODEL.STEM_TEMPORAL_STRIDE': [1, 1]},
                         convention, notes, kind=KIND_MODEL, classifier=present(ours),
                         first_conv='backbone.conv1.weight')
    depth, kernel = resnet_depth(ours, 'slow.'), int(ours['lateral.0.0.weight'].shape[2])
    settings = config.get('SLOWFAST') or {}
    if 'ALPHA' in settings:
        alpha = int(settings['ALPHA'])
        notes.append(f'alpha {alpha} from cfg SLOWFAST.ALPHA')
    else:
        alpha = alpha_from_fusion_kernel(kernel, 'PySlowFast', notes)
    options = {'BACKBONE': f'resnet{depth}', 'MODEL.SLOWFAST_ALPHA': alpha,
               'MODEL.SLOWFAST_FUSION_KERNEL': kernel,
               'MODEL.SLOWFAST_BETA_INV': int(settings.get('BETA_INV', 8)),
               'MODEL.SLOWFAST_LATERAL': 'conv_bn_relu', 'MODEL.SLOWFAST_SLOW_FRAMES': 'linspace'}
    notes.append('Slow pathway frames: linspace (MODEL.SLOWFAST_SLOW_FRAMES), as PackPathway')
    return Converted(ours, 'slowfast', options, convention, notes, kind=KIND_MODEL,
                     classifier=present(ours), first_conv='fast.conv1.weight')
