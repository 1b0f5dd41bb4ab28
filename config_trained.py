"""The config a trained model carries, as a layer of `config.build_config`.

Every checkpoint (best.pth, last.pth, `python -m models.convert` output) holds the resolved
config of the run that wrote it and the class names; every export's meta.json too. Evaluation,
prediction, the demo and export start from that layer: defaults < the trained model's config <
--cfg files < KEY VALUE. So after training, `--checkpoint` alone is enough, and evaluation sees
the sizes, sampling, views and input convention the model was trained with.

Not taken from it: what belongs to this machine and this run (RUN_KEYS). An override of a key
that sets the model's shape (SHAPE_KEYS) to another value is an error naming both: the weights
would not fit. Files written before configs travelled with the weights are read as before,
with a warning naming what had to be assumed.
"""
import json
import os.path as osp
from dataclasses import dataclass, field
from typing import Optional

# what this machine and this run decide, whatever the trained model's run had
RUN_KEYS = ('GPUS', 'USE_DISTRIBUTED', 'EXP_TYPE', 'NUM_THREADS', 'DATASET.NUM_WORKERS',
            'DATASET.LOADER', 'DATASET.PREFETCH', 'DATASET.LOADER_TIMEOUT', 'TRAIN.RESUME',
            'VAL.CHECKPOINT', 'MODEL.PRETRAINED', 'MODEL.PRETRAINED_FROM')
# what the weights' shapes depend on: an override to another value cannot load them
SHAPE_KEYS = ('MODEL_NAME', 'BACKBONE', 'MODALITY', 'DATASET.CLASS_NUM', 'DATA.NEW_LENGTH',
              'MODEL.SLOWFAST_ALPHA', 'MODEL.SLOWFAST_BETA_INV', 'MODEL.SLOWFAST_FUSION_KERNEL',
              'MODEL.SLOWFAST_LATERAL', 'MODEL.INFLATE_BASIC_CONV2', 'MODEL.NON_LOCAL')
EXPORT_SUFFIXES = ('.onnx', '.ts', '.pt2')
SHOWN = 8                    # keys listed in a warning before '... and N more'


@dataclass
class TrainedModel:
    """Where a trained model's config came from, and what it held."""
    path: str
    config: Optional[dict]             # the saved config (nested dict), None in old files
    class_names: Optional[list]        # the saved class names, None in old files
    kind: str = 'checkpoint'           # 'checkpoint' or 'export'
    assumed: list = field(default_factory=list)     # keys not in an old file's config


def read_trained(path):
    """The TrainedModel of a checkpoint (.pth and the like) or an export (.onnx, .ts: the
    meta.json beside it); None when the file is missing or cannot be read, which the step
    that loads the weights then reports with its own clear message."""
    if path.lower().endswith(EXPORT_SUFFIXES):
        meta_path = osp.join(osp.dirname(osp.abspath(path)), 'meta.json')
        try:
            with open(meta_path, encoding='utf-8') as handle:
                meta = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict):
            return None
        return TrainedModel(path, _dict_or_none(meta.get('config')),
                            _names_or_none(meta.get('class_names')), 'export')
    if not osp.isfile(path):
        return None
    import torch
    try:     # memory-mapped: only the config is read here, the tensors when the model loads
        state = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - any unreadable file: load_checkpoint explains it later
        return None
    if not isinstance(state, dict):
        return None
    return TrainedModel(path, _dict_or_none(state.get('config')),
                        _names_or_none(state.get('class_names')))


def _dict_or_none(value):
    return value if isinstance(value, dict) else None


def _names_or_none(value):
    if isinstance(value, (list, tuple)) and all(isinstance(name, str) for name in value):
        return list(value)
    return None


def flat_items(node, prefix=''):
    """{'TRAIN.EPOCHS': 12, ...} of a nested dict (leaves only)."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from flat_items(value, f'{prefix}{key}.')
        else:
            yield f'{prefix}{key}', value


def apply_trained(cfg, explicit, trained, assign):
    """Put the trained model's config under the keys this run did not set (`explicit`), by
    `assign(key, value)`; ConfigError when an explicit key changes the model's shape. Returns
    the saved keys that no longer exist (ignored) and fills trained.assumed with the keys an
    old file lacks."""
    from config import ConfigError
    saved = dict(flat_items(trained.config or {}))
    current = dict(flat_items(cfg))
    for key in SHAPE_KEYS:
        if key in explicit and key in saved and _differs(saved[key], current[key]):
            raise ConfigError(
                f'{key} {current[key]!r} here, but {trained.path} was trained with '
                f'{key} {saved[key]!r}: its weights do not fit another {key}. Drop the override '
                f'to use it as it is, or train from it (MODEL.PRETRAINED {trained.path}) to '
                f'change it')
    unknown = []
    for key, value in saved.items():
        if key in RUN_KEYS or key in explicit:
            continue
        if key not in current:
            unknown.append(key)
            continue
        assign(key, value)
    trained.assumed = [key for key in current if key not in saved and key not in RUN_KEYS]
    return unknown


def _differs(saved, current):
    if isinstance(saved, str) and isinstance(current, str):
        return saved.lower() != current.lower()
    return saved != current


def describe_taken(cfg, trained):
    """One line: what this run took from the trained model."""
    sampling = cfg.DATASET.SAMPLING
    views = (f'{cfg.VAL.NUM_SEGMENTS} segments' if sampling == 'segment'
             else f'{cfg.VAL.NUM_CLIPS} clips of {cfg.DATA.CLIP_LEN}x{cfg.DATA.FRAME_INTERVAL}')
    names = trained.class_names
    classes = (f'{cfg.DATASET.CLASS_NUM} classes ({", ".join(names[:3])}{", ..." if len(names) > 3 else ""})'
               if names else f'{cfg.DATASET.CLASS_NUM} classes')
    return (f'from {trained.path}: {cfg.MODEL_NAME}/{cfg.BACKBONE} {cfg.MODALITY}, {classes}, '
            f'input {cfg.DATASET.CHANNEL_ORDER} 0-{cfg.DATASET.VALUE_RANGE:g} mean '
            f'{rounded(cfg.DATASET.MEAN)} std {rounded(cfg.DATASET.STD)}, '
            f'{cfg.DATASET.SCALE_SIZE}/{cfg.DATASET.CROP_SIZE} px, {sampling} sampling, '
            f'{views} x {cfg.VAL.NUM_CROPS} crops')


def describe_assumed(trained, cfg):
    """The warning for a file written before configs (or class names) travelled with it."""
    parts = []
    if trained.config is None:
        parts.append('it carries no config, so the settings are this run\'s (defaults, --cfg, '
                     'KEY VALUE)')
    elif trained.assumed:
        current = dict(flat_items(cfg))
        shown = ', '.join(f'{key} {rounded(current[key])}' for key in trained.assumed[:SHOWN])
        more = f' ... and {len(trained.assumed) - SHOWN} more' if len(trained.assumed) > SHOWN else ''
        parts.append(f'{len(trained.assumed)} settings are not in it and were assumed: {shown}{more}')
    if trained.class_names is None:
        parts.append('it carries no class names: they come from classInd.txt beside '
                     'DATASET.VAL_META_PATH, else class_<i>')
    if not parts:
        return None
    return f'{trained.path} was written by an older DLAC: ' + '; '.join(parts)


def rounded(value, digits=4):
    """Numbers for the log: 66.67, not 66.66666666666666 (lists element by element); small
    ones in significant digits (1e-12, not 0.0)."""
    if isinstance(value, float):
        return round(value, digits) if abs(value) >= 10 ** -digits or value == 0 else float(f'{value:.{digits}g}')
    if isinstance(value, (list, tuple)):
        return [rounded(item, digits) for item in value]
    return value
