"""The original DLAC's config.py (cvnovice95/DLAC), read as it is, in DLAC's meaning.

`python train.py --cfg dlac/config.py` runs the file (it builds an EasyDict `__C` /
`ActivityConfig` with DLAC's key names and derived values) and `translate` maps every key to
ours: renamed keys, DLAC's semantics (the batch over all GPUs, no LR scaling, TSN's parameter
groups, sgdr with warmup, comma metafiles with frames from img_00000.jpg) and keys with no
meaning here, which are accepted with one warning that lists them. DLAC key names also work
as KEY VALUE overrides (`translate_pair`). docs/dlac.md ("Coming from DLAC") has the table.
"""
import os.path as osp

THREE_D_MODELS = ('i3d', 'slowfast', 'mfnet3d')

# keys of DLAC's config that have no meaning in this DLAC: derived folder names (ours are
# SNAPSHOT_ROOT/ar_output/<MODEL_NAME>/<EXP_TAG>/...), bookkeeping, and the in-house data
# pipelines (DPFlow/Redis, the humanaction set)
NO_MEANING = ('TIMESTAMP', 'WORKSPACE_PATH', 'KEEP_HISTORY', 'DEBUG_MODE', 'USE_SUMMARY',
              'MODEL_LIST', 'PRETRAIN_TYPE_LIST', 'EXP_NAME', 'SNAPSHOT_LOG', 'SNAPSHOT_LOG_DEBUG',
              'SNAPSHOT_CHECKPOINT', 'SNAPSHOT_SUMMARY', 'SNAPSHOT_CONFIG', 'PRETRAIN_MODEL_ZOO',
              'DATASET.LOAD_METHOD', 'DATASET.LOAD_METHOD_LIST', 'TRAIN.START_EPOCH', 'TRAIN.BEST_PREC',
              'TRAIN.CROP_NUM', 'TRAIN.IS_SHIFT', 'VAL.PRINT_FREQ', 'VAL.MODALITY', 'IMG.MEAN',
              'IMG.STD')
IGNORED_PREFIXES = ('REDIS_', 'HUMANACTION_')
# keys read together with others by translate() (the batch through TRAIN.BATCH_SIZE, the
# schedule, the weights), or equal to another (the validation sampling): no pair of their own
USED_INDIRECTLY = ('TRAIN.BASE_BATCH_SIZE', 'TRAIN.PRETRAIN_MODEL', 'TRAIN.RESUME',
                   'TRAIN.WARMUP_EPOCH', 'TRAIN.PERIOD_EPOCH', 'PRETRAIN_TYPE',
                   'PRETRAIN_MODEL_DICT', 'RESUME_TYPE', 'DATASET.VAL_SAMPLE_METHOD')

# DLAC key -> our key, same meaning and values
SAME_MEANING = {
    'USE_DISTRIBUTED': 'USE_DISTRIBUTED', 'EXP_TYPE': 'EXP_TYPE', 'MODEL_NAME': 'MODEL_NAME',
    'EXP_TAG': 'EXP_TAG', 'SNAPSHOT_ROOT': 'SNAPSHOT_ROOT',
    'DATASET.ROOT_PATH': 'DATASET.ROOT_PATH', 'DATASET.NAME': 'DATASET.NAME',
    'DATASET.CLASS_NUM': 'DATASET.CLASS_NUM', 'DATASET.VIDEO_SEQ_PATH': 'DATASET.VIDEO_SEQ_PATH',
    'DATASET.TRAIN_META_PATH': 'DATASET.TRAIN_META_PATH', 'DATASET.VAL_META_PATH': 'DATASET.VAL_META_PATH',
    'DATASET.IMG_FORMART': 'DATASET.IMG_FORMAT', 'TRAIN.EPOCHS': 'TRAIN.EPOCHS',
    'TRAIN.BASE_LR': 'TRAIN.BASE_LR', 'TRAIN.LR_STEPS': 'TRAIN.LR_STEPS',
    'TRAIN.MOMENTUM': 'TRAIN.MOMENTUM', 'TRAIN.WEIGHT_DECAY': 'TRAIN.WEIGHT_DECAY',
    'TRAIN.CLIP_GRADIENT': 'TRAIN.CLIP_GRAD', 'TRAIN.PRINT_FREQ': 'TRAIN.PRINT_FREQ',
    'TRAIN.EVALUATE_FREQ': 'TRAIN.EVAL_FREQ', 'TRAIN.DROPOUT': 'MODEL.DROPOUT',
    'TRAIN.MODALITY': 'MODALITY', 'TRAIN.PARTIAL_BN': 'MODEL.PARTIAL_BN',
    'TRAIN.SHIFT_DIV': 'MODEL.TSM_SHIFT_DIV', 'VAL.BATCH_SIZE': 'VAL.BATCH_SIZE',
    'VAL.CROP_NUM': 'VAL.NUM_CROPS', 'IMG.CROP_SIZE': 'DATASET.CROP_SIZE',
    'IMG.SCALE_SIZE': 'DATASET.SCALE_SIZE', 'USE_SYNC_BN': 'MODEL.SYNC_BN', 'GPUS': 'GPUS',
}

# what every DLAC config means beyond its keys
DLAC_POLICY = {'DATASET.FRAME_START': 0, 'TRAIN.LR_SCALING': 'none', 'TRAIN.PARAM_GROUPS': 'tsn'}

BACKBONES = {'bninception': 'bninception', 'resnet18': 'resnet18', 'resnet34': 'resnet34',
             'resnet50': 'resnet50', 'resnet101': 'resnet101', 'mfnet2d': 'mfnet2d'}


class DlacConfigError(ValueError):
    """A DLAC setting with no counterpart here."""


def flatten(node, prefix=''):
    """{'TRAIN.SEG_NUM': 5, ...} of a nested (Easy)dict."""
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict) and key != 'PRETRAIN_MODEL_DICT':
            flat.update(flatten(value, f'{prefix}{key}.'))
        else:
            flat[prefix + key] = value
    return flat


def is_dlac_config(namespace):
    """True for the globals of a DLAC config.py: an EasyDict `__C` or `ActivityConfig` with
    DLAC's own keys (TRAIN.SEG_NUM, IMG)."""
    node = namespace.get('__C', namespace.get('ActivityConfig'))
    return isinstance(node, dict) and isinstance(node.get('TRAIN'), dict) and (
        'SEG_NUM' in node['TRAIN'] or 'IMG' in node)


def _backbone(value, model_name):
    name = str(value).lower()
    if model_name == 'mfnet3d' and name in ('mfnet2d', 'mfnet3d'):
        return 'mfnet3d'            # DLAC names MFNet3D's 2D ImageNet backbone
    if name not in BACKBONES:
        raise DlacConfigError(f"DLAC BACKBONE {value!r} is not available here yet; choose one of "
                              f"{sorted(BACKBONES)}")
    return BACKBONES[name]


def translate_pair(key, value, model_name='tsn'):
    """[(our key, value, why)] for one DLAC key; [] for a key with no meaning here; None when
    `key` is not a DLAC key."""
    if key in SAME_MEANING:
        return [(SAME_MEANING[key], value, 'same meaning')]
    if key == 'BACKBONE':
        return [('BACKBONE', _backbone(value, model_name), 'lower-case name')]
    if key == 'TRAIN.SEG_NUM':
        target = 'DATA.CLIP_LEN' if model_name in THREE_D_MODELS else 'DATA.NUM_SEGMENTS'
        return [(target, value, f'segments (TSN/TSM) or clip frames (3D models): {model_name}')]
    if key == 'VAL.SEG_NUM':
        if model_name in THREE_D_MODELS:
            return []
        return [('VAL.NUM_SEGMENTS', value, 'test segments')]
    if key == 'TRAIN.BATCH_SIZE':
        return [('TRAIN.BASE_BATCH_SIZE', value, "DLAC's per-process batch: BASE_BATCH_SIZE over "
                 'GPUS under DDP, the whole batch under DataParallel')]
    if key == 'TRAIN.LR_STEP_TYPE':
        return [('TRAIN.LR_POLICY', value, "'step' or 'sgdr' (warm restarts)")]
    if key == 'DATASET.TRAIN_SAMPLE_METHOD':
        return [('DATASET.SAMPLING', 'segment' if str(value).startswith('seg') else 'dense',
                 f'{value}: TSN segments' if str(value).startswith('seg') else f'{value}: dense clips')]
    if key == 'TRAIN.SHIFT_PLACE':
        if value != 'blockres' and model_name == 'tsm':
            raise DlacConfigError(f"TSM with TRAIN.SHIFT_PLACE {value!r} (BN-Inception) is not "
                                  "available here yet: use a ResNet BACKBONE ('blockres')")
        return []
    if key == 'SUPER_LOADER':
        return [('DATASET.LOADER', 'SuperLoader' if value else 'DataLoaderX', 'the loader')]
    if key == 'USE_APEX':
        return [('TRAIN.AMP', bool(value), 'apex mixed precision -> torch AMP')] + (
            [('TRAIN.AMP_DTYPE', 'float16', "apex's float16, with loss scaling")] if value else [])
    if key in USED_INDIRECTLY or key in NO_MEANING or key.startswith(IGNORED_PREFIXES):
        return []
    return None


def translate(dlac):
    """(overrides {our dotted key: value}, notes [line per key], ignored [DLAC keys]) for the
    EasyDict of a DLAC config.py."""
    flat = flatten(dlac)
    model_name = str(flat.get('MODEL_NAME', 'tsn')).lower()
    overrides, notes, ignored = {}, [], []
    for key, value in flat.items():
        pairs = translate_pair(key, value, model_name)
        if pairs is None:
            raise DlacConfigError(f'unknown DLAC config key {key!r}')
        if not pairs and key not in USED_INDIRECTLY:
            ignored.append(key)
        for ours, new_value, why in pairs:
            overrides[ours] = new_value
            notes.append(f'{key} {value!r} -> {ours} {new_value!r} ({why})')
    _schedule(flat, overrides, notes)
    _weights(flat, model_name, overrides, notes)
    for ours, value in DLAC_POLICY.items():
        overrides[ours] = value
    notes.append("DLAC's policy: DATASET.FRAME_START 0 (img_00000.jpg), TRAIN.LR_SCALING none, "
                 'TRAIN.PARAM_GROUPS tsn (biases x2 LR without decay, BN without decay); '
                 'comma-separated metafiles are read as they are')
    return overrides, notes, ignored


def _schedule(flat, overrides, notes):
    if flat.get('TRAIN.LR_STEP_TYPE') == 'sgdr':
        overrides['TRAIN.WARMUP_EPOCHS'] = float(flat.get('TRAIN.WARMUP_EPOCH') or 0)
        overrides['TRAIN.SGDR_PERIOD_EPOCHS'] = float(flat.get('TRAIN.PERIOD_EPOCH') or 10)
        overrides['TRAIN.WARMUP_START_LR'] = 0.0
        notes.append(f"TRAIN.WARMUP_EPOCH {flat.get('TRAIN.WARMUP_EPOCH')} / TRAIN.PERIOD_EPOCH "
                     f"{flat.get('TRAIN.PERIOD_EPOCH')} -> TRAIN.WARMUP_EPOCHS / SGDR_PERIOD_EPOCHS "
                     '(sgdr: linear warmup from 0 per iteration, then cosine restarts)')
    else:
        overrides['TRAIN.WARMUP_EPOCHS'] = 0.0
        notes.append("TRAIN.WARMUP_EPOCH -> TRAIN.WARMUP_EPOCHS 0 (DLAC warms up under 'sgdr' only)")


def _weights(flat, model_name, overrides, notes):
    """PRETRAIN_TYPE + PRETRAIN_MODEL_DICT -> MODEL.PRETRAINED; RESUME_TYPE + TRAIN.RESUME ->
    TRAIN.RESUME ('resume') or MODEL.PRETRAINED ('finetune')."""
    pretrained = flat.get('TRAIN.PRETRAIN_MODEL') if flat.get('PRETRAIN_TYPE') else ''
    if pretrained:
        overrides['MODEL.PRETRAINED'] = pretrained
        notes.append(f"PRETRAIN_TYPE {flat.get('PRETRAIN_TYPE')!r} + PRETRAIN_MODEL_DICT -> "
                     f'MODEL.PRETRAINED {pretrained!r} (looked up in pretrain_model_zoo/)')
    resume = flat.get('TRAIN.RESUME') or ''
    if resume and flat.get('RESUME_TYPE') == 'finetune':
        overrides['MODEL.PRETRAINED'] = resume
        notes.append(f"RESUME_TYPE 'finetune' + TRAIN.RESUME {resume!r} -> MODEL.PRETRAINED")
    elif resume:
        root = flat.get('SNAPSHOT_CHECKPOINT') or ''
        overrides['TRAIN.RESUME'] = resume if osp.isabs(resume) else osp.join(root, resume)
        notes.append(f"RESUME_TYPE 'resume' + TRAIN.RESUME {resume!r} -> TRAIN.RESUME")
    else:
        notes.append("RESUME_TYPE -> TRAIN.RESUME 'auto' (continue from last.pth when present)")
