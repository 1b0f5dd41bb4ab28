"""DLAC configuration: the one place that says how every stage runs.

Edit the defaults below, or override them per run:
    python train.py --cfg my_exp.yaml TRAIN.EPOCHS 3 MODEL_NAME tsn
    python train.py --cfg experiments/hmdb51_tsn_bninception_rgb.yaml --cfg data/hmdb51/dataset_split1.yaml
Unknown keys and values of the wrong type stop the program (exit code 2) with a message that
names the key and the closest known key.

Every entry point builds its config once with `build_config` (defaults, a trained model's
config, the weights' convention, --cfg files, KEY VALUE; then paths and derived values) and
gets it frozen: nothing changes it afterwards, and it travels in every checkpoint and export.
"""
import argparse
import difflib
import os
import os.path as osp
import runpy
import sys
from dataclasses import dataclass, field
from typing import Optional

import yaml
from easydict import EasyDict

from config_frozen import FrozenConfig, thaw
from config_trained import TrainedModel, apply_trained, describe_assumed, describe_taken, read_trained, rounded

PROJECT_ROOT = osp.dirname(osp.abspath(__file__))

__C = EasyDict()
ActivityConfig = __C

# ---------------------------------------------------------------- experiment
__C.GPUS = [0]                 # GPU ids for nn.DataParallel, or a count (DLAC's `GPUS 8`: that many,
                               # or what there is, with a warning); ignored on a CPU-only machine
                               # and under torchrun (DDP: one process per GPU, GPU = LOCAL_RANK)
__C.USE_DISTRIBUTED = False    # DDP is used whenever torchrun starts the job; True also forces
                               # a one-process group outside torchrun
__C.EXP_TYPE = 'T'             # 'T' train, 'E' evaluate
__C.MODEL_NAME = 'tsn'
__C.EXP_TAG = 'synthetic_rgb_resnet18'
__C.BACKBONE = 'resnet18'
__C.MODALITY = 'RGB'           # 'RGB', 'Flow' (stacked optical flow) or 'RGBDiff' (differences
                               # of neighbouring frames); Flow/RGBDiff: TSN and TSM, frames input
__C.SNAPSHOT_ROOT = osp.join(PROJECT_ROOT, 'output')
__C.SEED = 0
__C.NUM_THREADS = 0            # torch CPU threads; 0 = all cores

# ---------------------------------------------------------------- dataset
__C.DATASET = EasyDict()
__C.DATASET.NAME = 'synthetic'
__C.DATASET.ROOT_PATH = osp.join(PROJECT_ROOT, 'data')
__C.DATASET.VIDEO_SEQ_PATH = ''     # '' = ROOT_PATH/<NAME>/VideoSeq
__C.DATASET.TRAIN_META_PATH = ''    # '' = ROOT_PATH/<NAME>/MetafileSeq/train_split1[_video|_flow].txt
__C.DATASET.VAL_META_PATH = ''      # '' = ROOT_PATH/<NAME>/MetafileSeq/val_split1[_video|_flow].txt
__C.DATASET.INPUT_TYPE = 'frames'   # which default metafiles: 'frames' or 'video'; 'shards':
                                    # train from packed shards (DATASET.SHARDS)
__C.DATASET.SHARDS = ''             # shards: the index.json DataTool.pack wrote (path or URL), or
                                    # a pattern of shard URLs: /data/k400/train-{000000..000999}.tar,
                                    # 'pipe:curl -s http://host/train-{000000..000999}.tar'
__C.DATASET.VAL_SHARDS = ''         # the same for validation ('' = VAL_META_PATH as usual)
__C.DATASET.SHARD_INDEX = ''        # the index.json of a pattern not beside it (pipe: URLs)
__C.DATASET.SHUFFLE_BUFFER = 100    # shards: samples shuffled in a buffer per loader worker
                                    # (frames mode keeps only the sampled frames of each)
__C.DATASET.CLASS_NUM = 8
__C.DATASET.IMG_FORMAT = 'img_{:05d}.jpg'
__C.DATASET.FRAME_START = 1         # number of the first frame file of a folder: 1 (img_00001.jpg)
                                    # or 0 (img_00000.jpg, DLAC's frame folders)
__C.DATASET.FLOW_FORMAT = 'flow_{}_{:05d}.jpg'  # flow_x_00001.jpg / flow_y_00001.jpg
__C.DATASET.FLOW_MEAN = [0.5]       # flow JPEGs: 128 = no motion, [0, 255] = [-20, 20] pixels
__C.DATASET.FLOW_STD = [0.5]
__C.DATASET.NUM_WORKERS = 2         # loader processes (0 = load in the training process)
__C.DATASET.LOADER = 'SuperLoader'  # 'SuperLoader' (whole batches built in worker processes into
                                    # shared memory), 'DataLoaderX' (torch DataLoader with a
                                    # prefetch thread) or 'DataLoader' (plain torch)
__C.DATASET.PREFETCH = 2            # batches queued ahead per worker
__C.DATASET.LOADER_TIMEOUT = 300    # seconds one batch may take before the loader raises
__C.DATASET.MAX_BAD_FRACTION = 0.01 # unreadable training samples are replaced by others; more
                                    # than this fraction of them in an epoch stops training
__C.DATASET.SAMPLING = 'auto'       # 'segment' (TSN, TSM), 'dense' (3D models), 'auto' = the
                                    # model's own (MODEL_DEFAULTS below)
# The input convention of the weights (set from MODEL.PRETRAINED or a checkpoint unless given
# here or on the command line): pixels scaled to [0, VALUE_RANGE] in CHANNEL_ORDER, then
# (x - MEAN) / STD. Caffe BN-Inception: BGR, 255, [104, 117, 128], [1, 1, 1].
__C.DATASET.MEAN = [0.485, 0.456, 0.406]
__C.DATASET.STD = [0.229, 0.224, 0.225]
__C.DATASET.CHANNEL_ORDER = 'RGB'   # 'RGB' or 'BGR'
__C.DATASET.VALUE_RANGE = 1.0       # 1.0 (pixels in [0, 1]) or 255.0 (pixels in [0, 255])
__C.DATASET.SCALE_SIZE = 72         # short side before cropping (256 for real datasets)
__C.DATASET.CROP_SIZE = 64          # network input (224 for real datasets)
__C.DATASET.MULTI_SCALES = [1.0, 0.875]    # TSN uses [1, .875, .75, .66] on real data
__C.DATASET.FLIP = False            # horizontal flip in training: off where a mirror changes
                                    # the class (synthetic left/right, clockwise, SSv2)
__C.DATASET.SYNTHETIC_VIDEOS_PER_CLASS = [40, 12]   # train, val: used when generating
__C.DATASET.SYNTHETIC_FRAMES = [24, 40]             # min, max frames per generated video

# ---------------------------------------------------------------- sampling
__C.DATA = EasyDict()
__C.DATA.NUM_SEGMENTS = 3           # TSN segments in training
__C.DATA.NEW_LENGTH = 0             # consecutive frames per segment; 0 = the modality's (RGB 1,
                                    # Flow 5 flow fields, RGBDiff 5 differences of 6 frames)
__C.DATA.CLIP_LEN = 8               # dense sampling: frames per clip
__C.DATA.FRAME_INTERVAL = 2         # dense sampling: stride between frames

# ---------------------------------------------------------------- model
__C.MODEL = EasyDict()
__C.MODEL.CONSENSUS = 'avg'
__C.MODEL.DROPOUT = 0.5
__C.MODEL.PARTIAL_BN = False
__C.MODEL.PRETRAINED = ''           # 'imagenet' (BACKBONE's ImageNet file), a path, or a file
                                    # name in SNAPSHOT_ROOT/ar_output/
                                    # pretrain_model_zoo/: a 2D ImageNet file (torchvision ResNet,
                                    # TSN BN-Inception, MFNet2D: inflated for 3D models) or a
                                    # checkpoint of this model (classifier re-initialised if the
                                    # number of classes differs)
__C.MODEL.PRETRAINED_FROM = 'auto'  # the file's source, detected from its content ('auto'), or
                                    # one of: dlac, mmaction2, pyslowfast, pytorchvideo,
                                    # tsm-authors, mfnet-authors, dlac-original,
                                    # bninception-caffe, torchvision (python -m models.convert -h)
__C.MODEL.SLOWFAST_ALPHA = 8        # Fast/Slow frame-rate ratio (4 for the published 8x8)
__C.MODEL.SLOWFAST_BETA_INV = 8     # Slow/Fast channel ratio
__C.MODEL.SLOWFAST_FUSION_KERNEL = 5    # temporal kernel of the lateral connections (7 for 8x8)
__C.MODEL.SLOWFAST_LATERAL = 'conv_bn_relu'  # lateral connection: 'conv_bn_relu' (PySlowFast,
                                    # pytorchvideo) or 'conv' (mmaction2 without lateral_norm)
__C.MODEL.SLOWFAST_SLOW_FRAMES = 'stride'    # Slow pathway frames: 'stride' (every alpha-th,
                                    # mmaction2) or 'linspace' (PySlowFast, pytorchvideo)
__C.MODEL.STEM_TEMPORAL_STRIDE = [1, 1]      # I3D: temporal stride of the stem conv and of its
                                    # max pool; [2, 2] is mmaction2's I3D (32x2x1 configs)
__C.MODEL.INFLATE_BASIC_CONV2 = False        # I3D ResNet-18/34: inflated blocks' second conv
                                    # 3x3x3 too (mmaction2's BasicBlock3d), not 1x3x3
__C.MODEL.TSM_SHIFT_DIV = 8         # TSM shifts 1/SHIFT_DIV of the channels each way
__C.MODEL.TSM_SHIFT = 'bidirectional'   # 'bidirectional' (published TSM: from the previous and
                                    # the next frame) or 'online' (causal: 1/SHIFT_DIV of the
                                    # channels from the previous frame only; runs one frame at
                                    # a time on live video, demo.py --stream)
__C.MODEL.NON_LOCAL = False         # I3D-NL: embedded-Gaussian non-local blocks after every other
                                    # block of res3 and res4 (5 in ResNet-50)
__C.MODEL.NON_LOCAL_SUBSAMPLE = True  # max-pool phi and g 1x2x2 (mmaction2's i3d_nl); False: DLAC's
__C.MODEL.NON_LOCAL_SCALED = False  # affinities / sqrt(C/2) before the softmax (mmaction2 use_scale)
__C.MODEL.DROP_PATH = 0.1           # VideoMAE: stochastic depth, rising linearly to this in the
                                    # last block (its fine-tuning recipes: 0.1 ViT-S/B)
__C.MODEL.LAYER_NORM_EPS = 1e-6     # VideoMAE blocks' LayerNorm eps: 1e-6 (its repository), the
                                    # config's (1e-12) in Hugging Face files; set from the weights
__C.MODEL.FC_NORM_EPS = 1e-6        # VideoMAE head LayerNorm eps (fc_norm; in pre-training the
                                    # decoder's norm): 1e-6, 1e-5 in Hugging Face's models
__C.MODEL.MASK_RATIO = 0.9          # VideoMAE pre-training: share of each clip's spatial positions
                                    # hidden, the same in every tubelet (tube masking; 0.9 the
                                    # paper's Kinetics / SSv2, 0.75 its UCF101 / HMDB51 runs)
__C.MODEL.DECODER_DEPTH = 4         # VideoMAE pre-training: decoder blocks (its scripts: 4)
__C.MODEL.DECODER_WIDTH = 0         # ... decoder width; 0 = the published one (ViT-S 192, ViT-B 384)
__C.MODEL.NORM_PIX_LOSS = True      # ... loss on each tubelet's pixels normalised by its own mean
                                    # and std (the paper's default); False: plain pixels
__C.MODEL.GRAD_CHECKPOINT = False   # VideoMAE: recompute each block's activations in the backward
                                    # pass instead of keeping them (less memory, ~1/3 more compute)
__C.MODEL.SYNC_BN = False           # DDP on GPUs: BatchNorm statistics over all processes' batches

# ---------------------------------------------------------------- training
__C.TRAIN = EasyDict()
__C.TRAIN.TASK = 'classify'         # 'classify' (labels, cross-entropy) or 'pretrain' (VideoMAE
                                    # masked-autoencoder pre-training on unlabelled videos:
                                    # MODEL_NAME videomae; labels in the metafiles are ignored)
__C.TRAIN.EPOCHS = 12
__C.TRAIN.BASE_BATCH_SIZE = 8       # clips per process and step (DDP: the global batch is this
                                    # times the number of processes)
__C.TRAIN.BASE_LR = 0.01            # learning rate for one process's batch, see LR_SCALING
__C.TRAIN.LR_SCALING = 'linear'     # DDP: 'linear' = BASE_LR x number of processes (Goyal et al.
                                    # 2017, as the global batch grows); 'none' = BASE_LR as is
__C.TRAIN.LR_STEPS = [8, 11]
__C.TRAIN.LR_DECAY = 0.1
__C.TRAIN.LR_POLICY = 'step'        # 'step' (LR_STEPS, LR_DECAY), 'cosine' (half cosine to 0 at the
                                    # end) or 'sgdr' (DLAC: cosine restarts every SGDR_PERIOD_EPOCHS)
__C.TRAIN.WARMUP_EPOCHS = 0.0       # linear warmup per iteration over this many epochs
__C.TRAIN.WARMUP_START_LR = 0.0     # ... from this LR
__C.TRAIN.SGDR_PERIOD_EPOCHS = 10.0 # 'sgdr': epochs between restarts
__C.TRAIN.PARAM_GROUPS = 'none'     # 'none' or 'tsn' (TSN/DLAC: biases x2 LR, no decay on biases
                                    # and BN)
__C.TRAIN.OPTIMIZER = 'sgd'         # 'sgd' (momentum) or 'adamw'
__C.TRAIN.MOMENTUM = 0.9
__C.TRAIN.NESTEROV = False          # SGD: Nesterov momentum
__C.TRAIN.ADAMW_BETAS = [0.9, 0.999]    # AdamW's (beta1, beta2); VideoMAE pre-training: [0.9, 0.95]
__C.TRAIN.WEIGHT_DECAY = 5e-4
__C.TRAIN.ZERO_WD_1D_PARAM = False  # no weight decay on biases and norm parameters (PySlowFast)
__C.TRAIN.HEAD_LR_MULT = 1.0        # the classifier head's LR multiplier
__C.TRAIN.LAYER_DECAY = 1.0         # layer-wise LR decay (VideoMAE fine-tuning: 0.75): block i of
                                    # D gets LR x LAYER_DECAY^(D + 1 - (i + 1)), the patch
                                    # embedding ^(D + 1), the head x1; 1.0 = off
__C.TRAIN.LABEL_SMOOTHING = 0.0     # cross-entropy label smoothing (also applied to mixup targets)
__C.TRAIN.ACCUM_STEPS = 1           # gradient accumulation: an optimizer step every N batches
                                    # (a global batch of BASE_BATCH_SIZE x processes x N)
__C.TRAIN.EMA_DECAY = 0.0           # EMA of the weights (e.g. 0.999), evaluated beside them; 0 = off
__C.TRAIN.CLIP_GRAD = 20.0          # max gradient norm; 0 = off
__C.TRAIN.EVAL_FREQ = 1             # validate every N epochs
__C.TRAIN.REPORT_HTML = False       # after training, evaluate best.pth as evaluate.py does and write
                                    # eval/ with its report page, eval/report.html
__C.TRAIN.PRINT_FREQ = 10           # log every N iterations
__C.TRAIN.RESUME = 'auto'           # 'auto' = last.pth if present, '' = fresh start, or a path
__C.TRAIN.MAX_BAD_STEPS = 5         # steps with a NaN/inf loss are skipped; this many in a row
                                    # stop training (exit 2), keeping the last good checkpoint
__C.TRAIN.AMP = False               # autocast the forward pass to AMP_DTYPE (CPU and GPU)
__C.TRAIN.AMP_DTYPE = 'bfloat16'    # 'bfloat16' or 'float16' (float16 adds loss scaling; GPU)
__C.TRAIN.CHANNELS_LAST = False     # channels-last weights and inputs (faster convs on GPUs)
__C.TRAIN.COMPILE = False           # torch.compile the model (slow first steps, then faster)
__C.TRAIN.DETERMINISTIC = False     # deterministic cuDNN and torch kernels: what "a resumed run
                                    # gives the same losses" needs on a GPU (slower); the CPU
                                    # is deterministic without it

# ---------------------------------------------------------------- mixup / cutmix (PySlowFast's)
__C.MIXUP = EasyDict()
__C.MIXUP.ENABLE = False            # mix training clips in pairs; soft targets, top1 vs the dominant label
__C.MIXUP.ALPHA = 0.8               # Mixup: lambda ~ Beta(ALPHA, ALPHA); 0 = no Mixup
__C.MIXUP.CUTMIX_ALPHA = 1.0        # CutMix: the same box in every frame; 0 = no CutMix
__C.MIXUP.PROB = 1.0                # share of batches mixed
__C.MIXUP.SWITCH_PROB = 0.5         # CutMix rather than Mixup, when both are on

# ---------------------------------------------------------------- augmentation
__C.AUG = EasyDict()
__C.AUG.RAND_AUGMENT = ''           # '' off, or 'rand-m9-n2' (magnitude 9 of 10, 2 ops; '-mstd0.5'
                                    # adds noise to the magnitude): the same ops on every frame
__C.AUG.RE_PROB = 0.0               # random erasing: one box, the same in every frame, of noise

# ---------------------------------------------------------------- BatchNorm
__C.BN = EasyDict()
__C.BN.USE_PRECISE_STATS = False    # recompute BN statistics on training batches before validation
__C.BN.NUM_BATCHES_PRECISE = 200    # ... this many batches (PySlowFast's default)

# ---------------------------------------------------------------- validation / test
__C.VAL = EasyDict()
__C.VAL.BATCH_SIZE = 8
__C.VAL.NUM_SEGMENTS = 0            # segment sampling: test segments (0 = model default)
__C.VAL.NUM_CLIPS = 0               # dense sampling: clips per video (0 = model default)
__C.VAL.NUM_CROPS = 0               # 1 (centre), 3 or 10 (0 = model default)
__C.VAL.CHECKPOINT = ''             # '' = <experiment>/checkpoints/best.pth

# Frames (or flow fields) per segment of each modality, where DATA.NEW_LENGTH is 0.
MODALITY_NEW_LENGTH = {'RGB': 1, 'Flow': 5, 'RGBDiff': 5}

# What each model uses where the keys above say 'auto' / 0: its frame sampling and its test
# views (TSN: 25 segments x 1 crop; TSM: its training segments, 1 clip x 1 crop; 3D models:
# 10 clips x 3 crops, as in their papers). NUM_SEGMENTS None = DATA.NUM_SEGMENTS.
MODEL_DEFAULTS = {
    'tsn': {'SAMPLING': 'segment', 'NUM_SEGMENTS': 25, 'NUM_CLIPS': 1, 'NUM_CROPS': 1},
    'tsm': {'SAMPLING': 'segment', 'NUM_SEGMENTS': None, 'NUM_CLIPS': 1, 'NUM_CROPS': 1},
    'i3d': {'SAMPLING': 'dense', 'NUM_SEGMENTS': None, 'NUM_CLIPS': 10, 'NUM_CROPS': 3},
    'slowfast': {'SAMPLING': 'dense', 'NUM_SEGMENTS': None, 'NUM_CLIPS': 10, 'NUM_CROPS': 3},
    'mfnet3d': {'SAMPLING': 'dense', 'NUM_SEGMENTS': None, 'NUM_CLIPS': 10, 'NUM_CROPS': 3},
    'x3d': {'SAMPLING': 'dense', 'NUM_SEGMENTS': None, 'NUM_CLIPS': 10, 'NUM_CROPS': 3},
    'r2plus1d': {'SAMPLING': 'dense', 'NUM_SEGMENTS': None, 'NUM_CLIPS': 10, 'NUM_CROPS': 3},
    'r3d': {'SAMPLING': 'dense', 'NUM_SEGMENTS': None, 'NUM_CLIPS': 10, 'NUM_CROPS': 3},
    'mc3': {'SAMPLING': 'dense', 'NUM_SEGMENTS': None, 'NUM_CLIPS': 10, 'NUM_CROPS': 3},
    'videomae': {'SAMPLING': 'dense', 'NUM_SEGMENTS': None, 'NUM_CLIPS': 5, 'NUM_CROPS': 3},
}


class ConfigError(ValueError):
    """A config key or value that cannot be used; entry points exit with code 2."""


@dataclass
class Resolution:
    """What building a config took from elsewhere, kept with it for the run's log
    (log_resolution): the DLAC translation, the trained model's config, the weights' settings."""
    dlac_notes: list = field(default_factory=list)
    dlac_ignored: list = field(default_factory=list)
    trained: Optional[TrainedModel] = None        # the checkpoint or export read, if any
    trained_unknown: list = field(default_factory=list)     # its keys this version has not
    weights: str = ''                             # 'path: source weights (notes)'
    from_weights: dict = field(default_factory=dict)        # set from them (changed values)
    kept_over_weights: dict = field(default_factory=dict)   # what they said, explicit keys kept
    warnings: list = field(default_factory=list)


def default_config():
    """A mutable copy of the defaults (config.py as edited): where build_config starts, and
    what tests and benchmarks adjust by hand."""
    return thaw(__C)


# ---------------------------------------------------------------- merging
def _flat_keys(node, prefix=''):
    for key, value in node.items():
        full = prefix + key
        yield full
        if isinstance(value, dict):
            yield from _flat_keys(value, full + '.')


def _unknown_key(full_key):
    known = list(_flat_keys(__C))
    close = difflib.get_close_matches(full_key, known, n=1, cutoff=0.5)
    hint = f" (closest known key: '{close[0]}')" if close else ''
    return ConfigError(f"unknown config key '{full_key}'{hint}")


def _coerce(full_key, old, new):
    """Return `new` converted to the type of the default `old`, or raise ConfigError."""
    if isinstance(old, bool):
        if isinstance(new, bool):
            return new
    elif isinstance(old, int):
        if isinstance(new, int) and not isinstance(new, bool):
            return new
    elif isinstance(old, float):
        if isinstance(new, (int, float)) and not isinstance(new, bool):
            return float(new)
        if isinstance(new, str):            # YAML reads '1e-3' (no dot) as a string
            try:
                return float(new)
            except ValueError:
                pass
    elif isinstance(old, str):
        if isinstance(new, str):
            return new
        if isinstance(new, (int, float)) and not isinstance(new, bool):
            return str(new)
    elif isinstance(old, (list, tuple)):
        if isinstance(new, (list, tuple)):
            return list(new)
        if full_key == 'GPUS' and isinstance(new, int) and not isinstance(new, bool) and new >= 0:
            return new                  # a count, as DLAC's config has it
    elif isinstance(old, dict):
        if isinstance(new, dict):
            return new
    raise ConfigError(f"config key '{full_key}' expects {type(old).__name__} "
                      f"(default {old!r}), got {type(new).__name__} {new!r}")


def merge_dict(overrides, cfg, explicit=None, prefix=''):
    """Merge a nested dict of overrides into the mutable `cfg`, checking every key and type;
    the keys set go into `explicit` (a set) when given."""
    for key, value in overrides.items():
        full = prefix + str(key)
        if key not in cfg:
            raise _unknown_key(full)
        if isinstance(cfg[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{full}' is a section; give its sub-keys")
            merge_dict(value, cfg[key], explicit, full + '.')
        else:
            cfg[key] = _coerce(full, cfg[key], value)
            if explicit is not None:
                explicit.add(full)


def _parse_value(text):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def merge_list(pairs, cfg, explicit=None, resolution=None):
    """Merge ['TRAIN.EPOCHS', '3', 'MODEL_NAME', 'tsn'] into the mutable `cfg`; DLAC's key
    names are read in DLAC's meaning (what they became goes into `resolution`)."""
    if len(pairs) % 2:
        raise ConfigError(f"overrides come as KEY VALUE pairs; '{pairs[-1]}' has no value")
    explicit = set() if explicit is None else explicit
    resolution = resolution or Resolution()
    for key, text in zip(pairs[0::2], pairs[1::2]):
        *parents, leaf = key.split('.')
        node = cfg
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            if _merge_dlac_pair(key, text, cfg, explicit, resolution):   # in DLAC's meaning
                continue
            raise _unknown_key(key)
        if isinstance(node[leaf], dict):
            raise ConfigError(f"config key '{key}' is a section; give its sub-keys")
        value = text if isinstance(node[leaf], str) else _parse_value(text)
        node[leaf] = _coerce(key, node[leaf], value)
        explicit.add(key)


def _merge_dlac_pair(key, text, cfg, explicit, resolution):
    """A DLAC key name given as KEY VALUE, merged in DLAC's meaning; False if it is none."""
    import config_dlac
    try:
        pairs = config_dlac.translate_pair(key, _parse_value(text), str(cfg.MODEL_NAME).lower())
    except config_dlac.DlacConfigError as err:
        raise ConfigError(str(err)) from err
    if pairs is None:
        return False
    if not pairs:
        resolution.dlac_ignored.append(key)
    for ours, value, why in pairs:
        _assign(ours, value, cfg)
        explicit.add(ours)
        resolution.dlac_notes.append(f'{key} {text} -> {ours} {value!r} ({why})')
    return True


def _assign(key, value, cfg):
    """cfg[dotted key] = value, type-checked against the default."""
    *parents, leaf = key.split('.')
    node = cfg
    for part in parents:
        node = node[part]
    if leaf not in node:
        raise _unknown_key(key)
    node[leaf] = _coerce(key, node[leaf], value)


def _nested(flat):
    """{'TRAIN.EPOCHS': 3} -> {'TRAIN': {'EPOCHS': 3}}."""
    nested = {}
    for key, value in flat.items():
        *parents, leaf = key.split('.')
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _read_dlac_config(path, namespace, config_dlac, resolution):
    try:
        overrides, notes, ignored = config_dlac.translate(namespace.get('__C', namespace.get('ActivityConfig')))
    except config_dlac.DlacConfigError as err:
        raise ConfigError(f'{path}: {err}') from err
    resolution.dlac_notes.extend([f'read {path} as a DLAC config.py'] + notes)
    resolution.dlac_ignored.extend(ignored)
    return _nested(overrides)


def load_file(path, resolution=None):
    """Read overrides from a YAML file or a Python file that defines a dict named `cfg` (or a
    DLAC config.py, translated; what it became goes into `resolution`). A Python file is run:
    it is code the user chose, never a downloaded one."""
    if not osp.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    if path.endswith('.py'):
        namespace = runpy.run_path(path)
        if isinstance(namespace.get('cfg'), dict):
            return namespace['cfg']
        import config_dlac
        if config_dlac.is_dlac_config(namespace):
            return _read_dlac_config(path, namespace, config_dlac, resolution or Resolution())
        raise ConfigError(f"{path}: a Python config file must define a dict named 'cfg', or be "
                          "a DLAC config.py (an EasyDict __C / ActivityConfig)")
    with open(path, encoding='utf-8') as handle:
        try:
            data = yaml.safe_load(handle) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return data


# ---------------------------------------------------------------- derived values
def resolve_paths(cfg):
    """Fill the dataset paths left empty with DLAC's default layout under ROOT_PATH, derive
    what depends on other keys, and check the settings that only make sense together."""
    dataset_dir = osp.join(cfg.DATASET.ROOT_PATH, cfg.DATASET.NAME)
    suffix = {'frames': '', 'video': '_video', 'shards': ''}.get(cfg.DATASET.INPUT_TYPE)
    if suffix is None:
        raise ConfigError(f"DATASET.INPUT_TYPE must be 'frames', 'video' or 'shards', "
                          f"got {cfg.DATASET.INPUT_TYPE!r}")
    if cfg.DATASET.INPUT_TYPE == 'shards' and not cfg.DATASET.SHARDS:
        raise ConfigError("DATASET.INPUT_TYPE 'shards' needs DATASET.SHARDS: the index.json "
                          "written by python -m DataTool.pack, or a pattern of shard URLs")
    if cfg.MODALITY not in MODALITY_NEW_LENGTH:
        raise ConfigError(f'MODALITY must be one of {list(MODALITY_NEW_LENGTH)}, got {cfg.MODALITY!r}')
    if cfg.MODALITY == 'Flow':
        if cfg.DATASET.INPUT_TYPE != 'frames':
            raise ConfigError("MODALITY 'Flow' reads extracted flow frames: set DATASET.INPUT_TYPE "
                              "'frames' (extract them with a DataTool's --flow)")
        suffix = '_flow'
    if cfg.DATA.NEW_LENGTH == 0:
        cfg.DATA.NEW_LENGTH = MODALITY_NEW_LENGTH[cfg.MODALITY]
    if not cfg.DATASET.VIDEO_SEQ_PATH:
        cfg.DATASET.VIDEO_SEQ_PATH = osp.join(dataset_dir, 'VideoSeq')
    if not cfg.DATASET.TRAIN_META_PATH:
        cfg.DATASET.TRAIN_META_PATH = osp.join(dataset_dir, 'MetafileSeq', f'train_split1{suffix}.txt')
    if not cfg.DATASET.VAL_META_PATH:
        cfg.DATASET.VAL_META_PATH = osp.join(dataset_dir, 'MetafileSeq', f'val_split1{suffix}.txt')
    if cfg.EXP_TYPE not in ('T', 'E'):
        raise ConfigError(f"EXP_TYPE must be 'T' (train) or 'E' (evaluate), got {cfg.EXP_TYPE!r}")
    if cfg.DATASET.CROP_SIZE > cfg.DATASET.SCALE_SIZE:
        raise ConfigError(f'DATASET.CROP_SIZE ({cfg.DATASET.CROP_SIZE}) must not exceed '
                          f'DATASET.SCALE_SIZE ({cfg.DATASET.SCALE_SIZE}), the short side it is cut from')
    cfg.MODEL.PRETRAINED = resolve_pretrained(cfg.MODEL.PRETRAINED, cfg)
    resolve_model_defaults(cfg)
    validate(cfg)
    return cfg


def validate(cfg):
    """ConfigError for a value outside what its key takes (the key named)."""
    if cfg.TRAIN.LR_POLICY not in ('step', 'cosine', 'sgdr'):
        raise ConfigError(f"TRAIN.LR_POLICY must be 'step', 'cosine' or 'sgdr', got {cfg.TRAIN.LR_POLICY!r}")
    if cfg.AUG.RAND_AUGMENT or cfg.AUG.RE_PROB > 0:
        from datasets.rand_augment import parse_rand_augment
        if cfg.MODALITY != 'RGB':
            raise ConfigError(f'AUG.RAND_AUGMENT and AUG.RE_PROB are for RGB clips, not MODALITY {cfg.MODALITY}')
        if cfg.AUG.RAND_AUGMENT:
            try:
                parse_rand_augment(cfg.AUG.RAND_AUGMENT)
            except ValueError as err:
                raise ConfigError(str(err)) from None
    if cfg.TRAIN.TASK not in ('classify', 'pretrain'):
        raise ConfigError(f"TRAIN.TASK must be 'classify' or 'pretrain', got {cfg.TRAIN.TASK!r}")
    if cfg.TRAIN.TASK == 'pretrain' and cfg.MODEL_NAME.lower() != 'videomae':
        raise ConfigError(f"TRAIN.TASK 'pretrain' is VideoMAE's masked-autoencoder pre-training: "
                          f"set MODEL_NAME videomae (got {cfg.MODEL_NAME!r})")
    if len(cfg.TRAIN.ADAMW_BETAS) != 2 or not all(isinstance(beta, (int, float)) and 0.0 <= beta < 1.0
                                                  for beta in cfg.TRAIN.ADAMW_BETAS):
        raise ConfigError(f'TRAIN.ADAMW_BETAS must be two numbers in [0, 1), got {cfg.TRAIN.ADAMW_BETAS}')
    if cfg.TRAIN.TASK == 'pretrain' and cfg.MIXUP.ENABLE:
        raise ConfigError("MIXUP.ENABLE mixes labels, and TRAIN.TASK 'pretrain' has none: turn it off "
                          "for pre-training (the fine-tuning preset turns it on)")
    if not 0.0 < cfg.MODEL.MASK_RATIO < 1.0:
        raise ConfigError(f'MODEL.MASK_RATIO must be between 0 and 1, got {cfg.MODEL.MASK_RATIO}')
    if cfg.TRAIN.ACCUM_STEPS < 1:
        raise ConfigError(f'TRAIN.ACCUM_STEPS must be at least 1, got {cfg.TRAIN.ACCUM_STEPS}')
    if not 0.0 <= cfg.TRAIN.EMA_DECAY < 1.0:
        raise ConfigError(f'TRAIN.EMA_DECAY must be in [0, 1), got {cfg.TRAIN.EMA_DECAY}')
    if cfg.TRAIN.OPTIMIZER not in ('sgd', 'adamw'):
        raise ConfigError(f"TRAIN.OPTIMIZER must be 'sgd' or 'adamw', got {cfg.TRAIN.OPTIMIZER!r}")
    if cfg.TRAIN.PARAM_GROUPS not in ('none', 'tsn'):
        raise ConfigError(f"TRAIN.PARAM_GROUPS must be 'none' or 'tsn', got {cfg.TRAIN.PARAM_GROUPS!r}")
    if cfg.DATASET.FRAME_START not in (0, 1):
        raise ConfigError(f'DATASET.FRAME_START must be 0 or 1, got {cfg.DATASET.FRAME_START}')
    if cfg.TRAIN.LR_SCALING not in ('linear', 'none'):
        raise ConfigError(f"TRAIN.LR_SCALING must be 'linear' or 'none', got {cfg.TRAIN.LR_SCALING!r}")
    if cfg.DATASET.SAMPLING not in ('segment', 'dense'):
        raise ConfigError(f"DATASET.SAMPLING must be 'segment', 'dense' or 'auto', "
                          f"got {cfg.DATASET.SAMPLING!r}")
    if cfg.TRAIN.AMP_DTYPE not in ('bfloat16', 'float16'):
        raise ConfigError(f"TRAIN.AMP_DTYPE must be 'bfloat16' or 'float16', got {cfg.TRAIN.AMP_DTYPE!r}")
    if cfg.VAL.NUM_CROPS not in (1, 3, 10):
        raise ConfigError(f"VAL.NUM_CROPS must be 1, 3 or 10 (or 0 for the model's default), "
                          f"got {cfg.VAL.NUM_CROPS}")


def resolve_model_defaults(cfg):
    """Replace 'auto' sampling and 0 test views with MODEL_NAME's defaults."""
    defaults = MODEL_DEFAULTS.get(cfg.MODEL_NAME.lower(), MODEL_DEFAULTS['tsn'])
    if cfg.DATASET.SAMPLING == 'auto':
        cfg.DATASET.SAMPLING = defaults['SAMPLING']
    if cfg.VAL.NUM_SEGMENTS == 0:
        cfg.VAL.NUM_SEGMENTS = defaults['NUM_SEGMENTS'] or cfg.DATA.NUM_SEGMENTS
    if cfg.VAL.NUM_CLIPS == 0:
        cfg.VAL.NUM_CLIPS = defaults['NUM_CLIPS']
    if cfg.VAL.NUM_CROPS == 0:
        cfg.VAL.NUM_CROPS = defaults['NUM_CROPS']
    return cfg


def pretrain_zoo_dir(cfg):
    """SNAPSHOT_ROOT/ar_output/pretrain_model_zoo: where MODEL.PRETRAINED files are looked up."""
    return osp.join(cfg.SNAPSHOT_ROOT, 'ar_output', 'pretrain_model_zoo')


def resolve_pretrained(path, cfg):
    """A MODEL.PRETRAINED path as given if that file (or Hugging Face folder) exists, else the
    same name in the pretrained zoo folder (so a bare 'resnet50-0676ba61.pth' works);
    ConfigError if neither. 'imagenet' stays as it is (the weights' settings resolve it)."""
    if not path or osp.exists(path) or path == 'imagenet':
        return path
    in_zoo = osp.join(pretrain_zoo_dir(cfg), path)
    if not osp.exists(in_zoo):
        raise ConfigError(f'MODEL.PRETRAINED {path!r}: no such file, nor {in_zoo}')
    return in_zoo


def _settings_from_weights(cfg, explicit, resolution):
    """The MODEL.PRETRAINED file read once, here: its input convention, and its architecture
    options when it holds this very model (those that matter to MODEL_NAME), written into
    every key this run did not set. 'imagenet' becomes BACKBONE's ImageNet file."""
    if not cfg.MODEL.PRETRAINED:
        return
    from models.convert import read_weights, settings_of
    from models.named_weights import imagenet_file
    if cfg.MODEL.PRETRAINED == 'imagenet':
        cfg.MODEL.PRETRAINED = imagenet_file(cfg.BACKBONE.lower(), pretrain_zoo_dir(cfg))
    converted = read_weights(cfg.MODEL.PRETRAINED, cfg.MODEL.PRETRAINED_FROM)
    resolution.weights = f'{cfg.MODEL.PRETRAINED}: {converted.description()}'
    _take_weights_settings(cfg, explicit, resolution, settings_of(converted, cfg.MODEL_NAME.lower()))


def _take_weights_settings(cfg, explicit, resolution, settings):
    """Write what weights imply into every key this run did not set; note what changed,
    and what an explicit key kept against them."""
    for key, value in settings.items():
        if key in explicit:
            if value_at(cfg, key) != value:
                resolution.kept_over_weights[key] = value
        elif value_at(cfg, key) != value:
            _assign(key, value, cfg)
            resolution.from_weights[key] = value


def value_at(cfg, key):
    """cfg's value of dotted `key` ('TRAIN.EPOCHS')."""
    node = cfg
    for part in key.split('.'):
        node = node[part]
    return node


def _resolve_gpu_count(cfg, resolution):
    """GPUS as a count (DLAC's `GPUS 8`): the ids of that many visible GPUs; asking for more
    than there are warns and runs on what is there (the CPU when there is none)."""
    if isinstance(cfg.GPUS, bool) or not isinstance(cfg.GPUS, int):
        return
    from utils.device import gpu_ids
    wanted, cfg.GPUS = cfg.GPUS, gpu_ids(cfg.GPUS)
    if len(cfg.GPUS) < wanted:
        where = f'GPUs {cfg.GPUS}' if cfg.GPUS else 'the CPU'
        resolution.warnings.append(f'GPUS {wanted} asks for {wanted} GPUs, this machine shows '
                                   f'{len(cfg.GPUS)}: running on {where}')


def _lr_steps_warning(cfg, resolution):
    late = [step for step in cfg.TRAIN.LR_STEPS if step >= cfg.TRAIN.EPOCHS]
    if cfg.TRAIN.LR_POLICY == 'step' and cfg.EXP_TYPE == 'T' and late:
        resolution.warnings.append(
            f'TRAIN.LR_STEPS {list(cfg.TRAIN.LR_STEPS)}: {late} at or beyond TRAIN.EPOCHS '
            f'{cfg.TRAIN.EPOCHS} never take effect, so the LR '
            f'{"never decays" if len(late) == len(cfg.TRAIN.LR_STEPS) else "decays less than planned"}')


def exp_dir(cfg):
    """SNAPSHOT_ROOT/ar_output/<MODEL_NAME>/<EXP_TAG>: everything one experiment writes."""
    return osp.join(cfg.SNAPSHOT_ROOT, 'ar_output', cfg.MODEL_NAME, cfg.EXP_TAG)


def default_checkpoint(cfg):
    """VAL.CHECKPOINT if set, else the experiment's best.pth."""
    return cfg.VAL.CHECKPOINT or osp.join(exp_dir(cfg), 'checkpoints', 'best.pth')


def to_plain(node):
    """(Frozen)config -> plain dicts and lists, for YAML and checkpoints."""
    if isinstance(node, dict):
        return {key: to_plain(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [to_plain(value) for value in node]
    return node


def save_config(cfg, path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(to_plain(cfg), handle, sort_keys=False)


# ---------------------------------------------------------------- the one config of a run
def _config_arguments(argv):
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--cfg', dest='cfg_files', action='append', default=[])
    parser.add_argument('opts', nargs='*')
    args, unknown = parser.parse_known_intermixed_args(list(argv))
    if unknown:
        raise ConfigError(f'build_config takes --cfg FILE and KEY VALUE only, not {unknown}')
    return args


def build_config(argv=(), *, exp_type=None, trained=None, implied=None, base=None):
    """The one config of a run, resolved once and frozen; every entry point calls it.

    Layers, each over the ones before: the defaults (config.py as edited, or `base`) < a
    trained model's config (`trained`) < settings a weight file implies (`implied`) < the
    MODEL.PRETRAINED file's input convention and architecture options < --cfg files < KEY
    VALUE. Keys given in argv always win; then paths, the model's defaults and the GPUs are
    resolved, values validated, and the result frozen: nothing changes it afterwards.

    Args:
        argv: '--cfg FILE' and 'KEY VALUE' items, in command-line order.
        exp_type: 'T' or 'E' for this entry point ('E' evaluates whatever a file says, and
            reads no MODEL.PRETRAINED: its weights are the trained model's).
        trained: for evaluation, prediction, export and the demo: the checkpoint or export
            (.onnx/.ts, its meta.json) whose config and class names this run starts from
            (config_trained); 'default' = VAL.CHECKPOINT or the experiment's best.pth.
        implied: {dotted key: value} that a weight file implies (python -m models.convert).
        base: a mutable config to start from instead of the defaults.
    Returns a FrozenConfig, with `explicit` (the keys argv set) and `resolution` (what was
    taken from elsewhere, for log_resolution). Raises ConfigError naming the key.
    """
    args = _config_arguments(argv)
    cfg = thaw(base if base is not None else __C)
    explicit, resolution = set(), Resolution()
    if exp_type:
        cfg.EXP_TYPE = exp_type
    for path in args.cfg_files:
        merge_dict(load_file(path, resolution), cfg, explicit)
    merge_list(args.opts, cfg, explicit, resolution)
    if exp_type == 'E':         # evaluate.py evaluates, whatever a (DLAC) config file says
        cfg.EXP_TYPE = 'E'
    if trained is not None:
        _take_trained(cfg, explicit, resolution, trained)
    _take_weights_settings(cfg, explicit, resolution, implied or {})
    resolve_paths(cfg)
    if cfg.EXP_TYPE != 'E':
        _settings_from_weights(cfg, explicit, resolution)
    _resolve_gpu_count(cfg, resolution)
    _lr_steps_warning(cfg, resolution)
    return FrozenConfig(cfg, explicit=explicit, resolution=resolution)


def _take_trained(cfg, explicit, resolution, trained):
    """The trained model's config under this run's keys (config_trained)."""
    path = default_checkpoint(cfg) if trained == 'default' else trained
    model = read_trained(path)
    if model is None:
        return          # no such file yet: loading it later says so, clearly
    task = ((model.config or {}).get('TRAIN') or {}).get('TASK')
    if task == 'pretrain':
        raise ConfigError(f"{path} is a pre-training checkpoint (TRAIN.TASK 'pretrain', a VideoMAE "
                          f'masked autoencoder): it reconstructs pixels and has no classifier to '
                          f'evaluate, export or run. Fine-tune it first: python train.py MODEL_NAME '
                          f'videomae MODEL.PRETRAINED {path} (docs/pretraining.md)')
    resolution.trained = model
    resolution.trained_unknown = apply_trained(cfg, explicit, model,
                                               lambda key, value: _assign(key, value, cfg))
    if model.kind == 'checkpoint' and 'VAL.CHECKPOINT' not in explicit:
        cfg.VAL.CHECKPOINT = path
    if 'MODEL.PRETRAINED' not in explicit:
        cfg.MODEL.PRETRAINED = ''          # the trained weights replace any starting point


def updated(cfg, changes):
    """A new frozen config: `cfg` with `changes` ({dotted key: value}, type-checked) set as
    if given on the command line. For flags that stand for keys (--views, --resume)."""
    values = thaw(cfg)
    for key, value in changes.items():
        _assign(key, value, values)
    validate(values)
    return FrozenConfig(values, explicit=set(cfg.explicit) | set(changes),
                        resolution=cfg.resolution)


def log_resolution(cfg, logger):
    """Log, once per run, what building `cfg` took from elsewhere: a DLAC config's
    translation, the trained model's config, the weights' settings, and warnings."""
    resolution = cfg.resolution or Resolution()
    for line in resolution.dlac_notes:
        logger.info('DLAC config: %s', line)
    if resolution.dlac_ignored:
        logger.warning('DLAC config keys with no meaning here, ignored: %s',
                       ', '.join(resolution.dlac_ignored))
    if resolution.trained is not None:
        logger.info('settings %s', describe_taken(cfg, resolution.trained))
        old = describe_assumed(resolution.trained, cfg)
        if old:
            logger.warning(old)
        if resolution.trained_unknown:
            logger.warning('%s: keys this version does not have, ignored: %s',
                           resolution.trained.path, ', '.join(resolution.trained_unknown))
    if resolution.weights:
        logger.info('MODEL.PRETRAINED %s', resolution.weights)
    if resolution.from_weights:
        logger.info('settings from the weights: %s', ', '.join(
            f'{key} {rounded(value)}' for key, value in resolution.from_weights.items()))
    if resolution.kept_over_weights:
        logger.info('kept as given (the weights say otherwise): %s', ', '.join(
            f'{key} {rounded(value)}' for key, value in resolution.kept_over_weights.items()))
    for warning in resolution.warnings:
        logger.warning(warning)


def class_names_of(cfg):
    """The class names of a run: those the trained model carries, else classInd.txt beside
    the validation metafile (when it lists DATASET.CLASS_NUM), else class_<i>."""
    trained = cfg.resolution.trained if getattr(cfg, 'resolution', None) else None
    if trained is not None and trained.class_names and len(trained.class_names) == cfg.DATASET.CLASS_NUM:
        return list(trained.class_names)
    path = osp.join(osp.dirname(cfg.DATASET.VAL_META_PATH), 'classInd.txt')
    if osp.isfile(path):
        from datasets.records import read_class_names
        names = read_class_names(path)
        if len(names) == cfg.DATASET.CLASS_NUM:
            return names
    return [f'class_{index}' for index in range(cfg.DATASET.CLASS_NUM)]


# ---------------------------------------------------------------- command line
def build_parser(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--cfg', dest='cfg_files', action='append', default=[],
                        help='YAML or Python file of config overrides; give it again to merge '
                             'several in order (a preset, then a DataTool dataset_split1.yaml)')
    parser.add_argument('opts', nargs='*', metavar='KEY VALUE',
                        help='overrides with dotted keys, e.g. TRAIN.EPOCHS 3')
    return parser


def trained_source(args):
    """Where the config of evaluate, predict, demo and export starts (build_config's
    `trained`): --checkpoint, else an export given (--onnx, --pt2, --torchscript), else the
    experiment's best.pth."""
    return (getattr(args, 'checkpoint', None) or getattr(args, 'onnx', None)
            or getattr(args, 'pt2', None) or getattr(args, 'torchscript', None) or 'default')


def parse_config(argv=None, description='DLAC', parser=None, exp_type=None, trained=None):
    """An entry point's command line: its flags parsed, then build_config on its --cfg files
    and KEY VALUE pairs. `trained(args)` -> the checkpoint or export whose config to start
    from ('default': the experiment's best.pth), or None. Returns (frozen cfg, args); a
    config error exits with code 2 and a message naming the key."""
    parser = parser or build_parser(description)
    args = parser.parse_intermixed_args(argv)      # flags before, between or after KEY VALUE
    argv = [item for path in args.cfg_files for item in ('--cfg', path)] + list(args.opts)
    try:
        cfg = build_config(argv, exp_type=exp_type, trained=trained(args) if trained else None)
    except ConfigError as err:
        print(f'config error: {err}', file=sys.stderr)
        sys.exit(2)
    return cfg, args
