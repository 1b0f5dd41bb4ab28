"""What the per-source converters share: the result type and the kinds of weight file,
renaming by rules, input conventions, and reading the config text some checkpoints carry."""
import ast
import re
from dataclasses import dataclass, field
from typing import Optional

from ..videomae import SIZES as VIT_SIZES
from ..weights import CLASSIFIER, WeightsError

BN_PARAMS = r'(weight|bias|running_mean|running_var|num_batches_tracked)'

# The input conventions of the published weights: pixels scaled to [0, VALUE_RANGE], channels
# in CHANNEL_ORDER, then (x - MEAN) / STD.
IMAGENET = {'DATASET.MEAN': [0.485, 0.456, 0.406], 'DATASET.STD': [0.229, 0.224, 0.225],
            'DATASET.CHANNEL_ORDER': 'RGB', 'DATASET.VALUE_RANGE': 1.0}
CAFFE_BGR = {'DATASET.MEAN': [104.0, 117.0, 128.0], 'DATASET.STD': [1.0, 1.0, 1.0],
             'DATASET.CHANNEL_ORDER': 'BGR', 'DATASET.VALUE_RANGE': 255.0}
KINETICS_SLOWFAST = {'DATASET.MEAN': [0.45, 0.45, 0.45], 'DATASET.STD': [0.225, 0.225, 0.225],
                     'DATASET.CHANNEL_ORDER': 'RGB', 'DATASET.VALUE_RANGE': 1.0}
CONVENTION_KEYS = tuple(IMAGENET)

# Architecture options a weight file may imply (on top of MODEL_NAME and BACKBONE).
ARCHITECTURE_KEYS = ('MODEL.SLOWFAST_ALPHA', 'MODEL.SLOWFAST_BETA_INV', 'MODEL.SLOWFAST_FUSION_KERNEL',
                     'MODEL.SLOWFAST_LATERAL', 'MODEL.SLOWFAST_SLOW_FRAMES',
                     'MODEL.STEM_TEMPORAL_STRIDE', 'MODEL.INFLATE_BASIC_CONV2', 'MODEL.TSM_SHIFT_DIV',
                     'MODEL.LAYER_NORM_EPS', 'MODEL.FC_NORM_EPS', 'MODEL.NON_LOCAL',
                     'MODEL.NON_LOCAL_SUBSAMPLE', 'MODEL.NON_LOCAL_SCALED',
                     'MODEL.DECODER_DEPTH', 'MODEL.DECODER_WIDTH')


# What a weight file holds (Converted.kind), as its converter declares it; models.weights
# loads each kind its own way (load_converted).
KIND_MODEL = 'model'
"""A whole recognition model in our names, backbone and classifier: our checkpoints, mmaction2,
PySlowFast, pytorchvideo, TSN/TSM-authors, original-DLAC and MFNet3D files, torchvision's video
ResNets, Hugging Face VideoMAE classification. Loaded whole into the model it is (its
classifier re-initialised for another class count)."""
KIND_2D_BACKBONE = '2d_backbone'
"""An ImageNet 2D network (torchvision/timm ResNets, Caffe BN-Inception, MFNet2D, MobileNetV2,
Inception-v3): its backbone goes into TSN/TSM as it is, or inflated into a 3D model; its
ImageNet classifier is used only by a model that is that very network (a TSN of its classes)."""
KIND_3D_BACKBONE = '3d_backbone'
"""A 3D network without a usable classifier (no source produces one yet)."""
KIND_ENCODER = 'encoder'
"""A transformer encoder without a classifier (a VideoMAE file without its head)."""
KIND_PRETRAIN = 'masked_autoencoder'
"""A VideoMAE pre-training model: encoder and pixel decoder, no classifier (the VideoMAE
repository's pre-training checkpoint.pth, Hugging Face VideoMAEForPreTraining, our TRAIN.TASK
pretrain runs), in models/videomae_pretrain.py's names (`encoder.`, `decoder.`,
`encoder_to_decoder`, `mask_token`). Loaded whole into a VideoMAEPretrain; its encoder alone
into a VideoMAE classification model (fine-tuning), the decoder dropped."""
KINDS = (KIND_MODEL, KIND_2D_BACKBONE, KIND_3D_BACKBONE, KIND_ENCODER, KIND_PRETRAIN)


@dataclass
class Converted:
    """A weight file in our terms: `state_dict` in the parameter names of our `model_name`
    with `options['BACKBONE']`; `options` the architecture settings it needs (dotted config
    keys), `convention` its input convention, `notes` what the conversion did.

    What the file is, as its converter declares it (timm's pretrained_cfg): `kind` one of
    KINDS; `classifier` the names of its classifier's tensors in `state_dict` (empty when it
    has none); `first_conv` the name of its first convolution's weight (the input layer: what
    cross-modality initialisation and channel checks read)."""
    state_dict: dict
    model_name: str
    options: dict
    convention: dict
    notes: list = field(default_factory=list)
    source: str = ''
    kind: str = field(kw_only=True)
    classifier: tuple = field(kw_only=True)
    first_conv: Optional[str] = field(kw_only=True)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f'weight kind {self.kind!r} is not one of {list(KINDS)}')
        self.classifier = tuple(self.classifier)

    @property
    def num_classes(self):
        """The classes of the file's classifier (None without one)."""
        weights = [self.state_dict[name] for name in self.classifier if name.endswith('weight')]
        return int(weights[0].shape[0]) if weights else None

    def description(self):
        """'our own checkpoint (notes)' or '<source> weights (notes)', for the log."""
        what = 'our own checkpoint' if self.source == 'dlac' else f'{self.source} weights'
        return f'{what} ({"; ".join(self.notes)})'


def present(state_dict, names=CLASSIFIER):
    """The `names` (a classifier's tensors) that `state_dict` holds, in order."""
    return tuple(name for name in names if name in state_dict)


# the first convolution of our models (what models.modality.first_conv_key finds on them):
# the segment models' depends on the 2D backbone (ResNet, BN-Inception, MFNet2D, MobileNetV2,
# Inception-v3)
FIRST_CONV_2D = ('backbone.conv1.weight', 'backbone.conv1_7x7_s2.weight', 'backbone.conv1.conv.weight',
                 'backbone.features.0.0.weight', 'backbone.Conv2d_1a_3x3.conv.weight')
FIRST_CONV = {'i3d': 'backbone.conv1.weight', 'mfnet3d': 'backbone.conv1.conv.weight',
              'slowfast': 'fast.conv1.weight',        # the Fast pathway is built first
              'r3d': 'backbone.stem.0.weight', 'mc3': 'backbone.stem.0.weight',
              'r2plus1d': 'backbone.stem.0.weight', 'x3d': 'backbone.stem.conv_xy.weight',
              'videomae': 'backbone.patch_embed.proj.weight'}


def first_conv_of(model_name, state_dict):
    """The name of the first convolution's weight in `state_dict`, a model `model_name` of
    ours; None when it has none of the names that model's first convolution can have."""
    candidates = FIRST_CONV_2D if model_name in ('tsn', 'tsm') else (FIRST_CONV.get(model_name),)
    return next((name for name in candidates if name in state_dict), None)


def rgb_convention(mean, std, value_range):
    """The convention of RGB weights with this mean and std (in [0, value_range] units)."""
    return {'DATASET.MEAN': [float(v) for v in mean], 'DATASET.STD': [float(v) for v in std],
            'DATASET.CHANNEL_ORDER': 'RGB', 'DATASET.VALUE_RANGE': float(value_range)}


def unwrap(checkpoint, key):
    """checkpoint[key] without DataParallel's `module.` prefixes, or None when the checkpoint
    holds no such dict."""
    state = checkpoint.get(key) if isinstance(checkpoint, dict) else None
    return strip_prefix(state, 'module.') if isinstance(state, dict) else None


def strip_prefix(state_dict, prefix):
    """Keys without `prefix` where they have it ('module.' of DataParallel files)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def rename(state_dict, rules, source):
    """Each key through the first (pattern, replacement) rule whose pattern matches it whole;
    the replacement is a re.sub template or a function of the match; None drops the key. A
    key that no rule matches is a WeightsError naming it."""
    renamed, unmatched = {}, []
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    for key, value in state_dict.items():
        for pattern, replacement in compiled:
            if pattern.fullmatch(key):
                if replacement is not None:
                    renamed[pattern.sub(replacement, key)] = value
                break
        else:
            unmatched.append(key)
    if unmatched:
        shown = ', '.join(unmatched[:6]) + (f' ... and {len(unmatched) - 6} more' if len(unmatched) > 6 else '')
        raise WeightsError(f'{source}: keys this converter has no rule for: {shown}')
    return renamed


def resnet_depth(state_dict, prefix=''):
    """18/34/50/101/152 from the block counts of layer1..4 (and the block type)."""
    counts = []
    for layer in range(1, 5):
        blocks = {int(m.group(1)) for k in state_dict
                  for m in [re.match(rf'{re.escape(prefix)}layer{layer}\.(\d+)\.', k)] if m}
        counts.append(len(blocks))
    bottleneck = any(re.match(rf'{re.escape(prefix)}layer1\.0\.conv3\.', k) for k in state_dict)
    depths = {(2, 2, 2, 2, False): 18, (3, 4, 6, 3, False): 34, (3, 4, 6, 3, True): 50,
              (3, 4, 23, 3, True): 101, (3, 8, 36, 3, True): 152}
    depth = depths.get(tuple(counts) + (bottleneck,))
    if depth is None:
        raise WeightsError(f'not a ResNet of a known depth: blocks per stage {counts}')
    return depth


def alpha_from_fusion_kernel(kernel, source, notes):
    """SlowFast's alpha when the file does not say it: every published configuration pairs
    lateral kernel 7 with alpha 4 (8x8) and kernel 5 with alpha 8 (4x16)."""
    alpha = {7: 4, 5: 8}.get(kernel)
    if alpha is None:
        raise WeightsError(f'{source} SlowFast without its config and with fusion kernel {kernel}: '
                           'set MODEL.SLOWFAST_ALPHA')
    notes.append(f'alpha {alpha} inferred from fusion kernel {kernel} (every published configuration '
                 'pairs kernel 7 with alpha 4 and 5 with alpha 8)')
    return alpha


X3D_NOTE = ('X3D-XS, S and M share one architecture (depth factor 2.2) and differ in the clip '
            'they were trained on: XS 4x160, S 13x160, M 16x224; L (depth 5.0) 16x312')


def x3d_options(state_dict, notes):
    """BACKBONE of an X3D state dict in our names, from the blocks of its third stage."""
    blocks = len({k.split('.')[2] for k in state_dict if k.startswith('backbone.layer3.')})
    variant = {11: 'x3d_m', 25: 'x3d_l'}.get(blocks)
    if variant is None:
        raise WeightsError(f'X3D with {blocks} blocks in its third stage: not XS/S/M (11) or L (25)')
    notes.append(X3D_NOTE)
    return {'BACKBONE': variant}


def video_resnet_variant(state_dict, prefix=''):
    """'r2plus1d' (a 2+1D stem), 'mc3' (1x3x3 convs after the first stage) or 'r3d'."""
    if f'{prefix}stem.3.weight' in state_dict:
        return 'r2plus1d'
    return 'mc3' if state_dict[f'{prefix}layer2.0.conv1.0.weight'].shape[2] == 1 else 'r3d'


def identity_bn(state_dict, prefix, channels, eps=1e-5):
    """A BN that passes its input through in evaluation (var 1 - eps), for files of models
    that have no BN where ours has one."""
    import torch
    state_dict.update({f'{prefix}.weight': torch.ones(channels), f'{prefix}.bias': torch.zeros(channels),
                       f'{prefix}.running_mean': torch.zeros(channels),
                       f'{prefix}.running_var': torch.full((channels,), 1 - eps),
                       f'{prefix}.num_batches_tracked': torch.tensor(0)})


# ---------------------------------------------------------------- VideoMAE pre-training
# the names of a pre-training model (models/videomae_pretrain.py, the VideoMAE repository's)
MAE_FIRST_CONV = 'encoder.patch_embed.proj.weight'
MAE_PARTS = r'(encoder\.(patch_embed\.proj|blocks\.\d+\.[\w.]+|norm)|decoder\.(blocks\.\d+\.[\w.]+|norm|head))' \
            r'\.(weight|bias|q_bias|v_bias)|encoder_to_decoder\.weight|mask_token'
VIT_WIDTHS = {width: size for size, (width, _, _) in VIT_SIZES.items()}     # 384: vit_small, ...


def is_masked_autoencoder(state_dict):
    """True for a VideoMAE pre-training state in our (its repository's) names: an encoder's
    tubelet embedding and a decoder's pixel head."""
    conv = state_dict.get(MAE_FIRST_CONV) if isinstance(state_dict, dict) else None
    return getattr(conv, 'dim', lambda: 0)() == 5 and 'decoder.head.weight' in state_dict


def masked_autoencoder_options(state_dict, source):
    """BACKBONE, MODEL.DECODER_DEPTH and MODEL.DECODER_WIDTH of a pre-training state, read
    off its tensors (the files carry no config we can read); a key outside the model's
    names (a learnt position table, an encoder head) is a WeightsError naming it."""
    rename(state_dict, [(MAE_PARTS, r'\g<0>')], source)
    width = int(state_dict[MAE_FIRST_CONV].shape[0])
    if width not in VIT_WIDTHS:
        raise WeightsError(f'{source}: an encoder {width} wide; VideoMAE ViT-S is 384, ViT-B 768')
    depth = len({k.split('.')[2] for k in state_dict if k.startswith('decoder.blocks.')})
    return {'BACKBONE': VIT_WIDTHS[width], 'MODEL.DECODER_DEPTH': depth,
            'MODEL.DECODER_WIDTH': int(state_dict['decoder.head.weight'].shape[1])}


def has_key(state_dict, pattern):
    compiled = re.compile(pattern)
    return any(compiled.fullmatch(k) for k in state_dict)


# ---------------------------------------------------------------- config text in checkpoints
def _literal(node):
    """A Python config expression of literals, dict(...) calls, lists and tuples."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict' \
            and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg}
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    return ast.literal_eval(node)


def config_assignments(text):
    """{name: value} of the top-level `name = <literal or dict(...)>` lines of an mmengine
    config text (meta['cfg'] of mmaction2 checkpoints); other lines are skipped. Nothing is
    executed."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):    # ValueError: NUL bytes
        return {}
    values = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                and isinstance(statement.targets[0], ast.Name):
            try:
                values[statement.targets[0].id] = _literal(statement.value)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                pass
    return values


def guess_model_name(state_dict):
    """Our MODEL_NAME from our own parameter names (TSM has TSN's names: 'tsn')."""
    if 'backbone.stem.conv_xy.weight' in state_dict:
        return 'x3d'
    if 'backbone.patch_embed.proj.weight' in state_dict or is_masked_autoencoder(state_dict):
        return 'videomae'
    if 'backbone.stem.0.weight' in state_dict:
        return video_resnet_variant(state_dict, 'backbone.')
    if any(k.startswith('slow.') for k in state_dict) and any(k.startswith('fast.') for k in state_dict):
        return 'slowfast'
    conv = state_dict.get('backbone.conv1.conv.weight')
    if conv is not None:
        return 'mfnet3d' if conv.dim() == 5 else 'tsn'
    conv = state_dict.get('backbone.conv1.weight')
    if conv is not None and conv.dim() == 5:
        return 'i3d'
    return 'tsn'
