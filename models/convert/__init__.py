"""Weight files from the whole ecosystem, read into our models exactly.

One module per source says how to recognise its files by content (`recognises`) and turns one
into our parameter names with the architecture options and input convention it implies
(`convert` -> Converted). `read_weights` asks every source: exactly one must recognise the
file, or the error names the candidates (choose with MODEL.PRETRAINED_FROM or --from).
`settings_of` says which config keys a file implies for a model (config.build_config writes
them, except the keys the user set).

    python -m models.convert SRC OUT [--from auto|NAME] [--cfg F] [KEY VALUE ...]
"""
import os.path as osp

from utils.checkpoint import is_state_dict, load_checkpoint

from ..weights import WeightsError
from . import (bninception_caffe, dlac_original, huggingface, mfnet_authors, mmaction2, ours,
               pyslowfast, pytorchvideo, torchvision_resnet, tsm_authors, videomae_authors)
from .common import ARCHITECTURE_KEYS, CONVENTION_KEYS, Converted

# every source, in the order `read_weights` asks them (the order matters only for messages:
# a file two sources recognise is refused)
SOURCES = {module.NAME: module for module in (
    ours, dlac_original, mmaction2, pyslowfast, pytorchvideo, tsm_authors, mfnet_authors,
    bninception_caffe, torchvision_resnet, huggingface, videomae_authors)}


def detect(checkpoint, path):
    """The name of the one source that recognises `checkpoint` (the loaded file at `path`)."""
    found = [name for name, module in SOURCES.items() if module.recognises(checkpoint)]
    if len(found) == 1:
        return found[0]
    if found:
        raise WeightsError(f'{path} looks like several layouts: {", ".join(found)}; name one with '
                           'MODEL.PRETRAINED_FROM (or --from)')
    top = sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
    raise WeightsError(f'{path}: no known weight layout (top-level keys {top}). Known sources: '
                       + '; '.join(f'{name}: {module.DESCRIPTION}' for name, module in SOURCES.items()))


def read_weights(path, source='auto'):
    """The weight file (or Hugging Face folder) at `path` as a Converted, its source
    detected ('auto') or named."""
    checkpoint = huggingface.read_folder(path) if osp.isdir(path) else load_checkpoint(path)
    if source != 'auto' and source not in SOURCES:
        raise WeightsError(f'unknown weight source {source!r}; choose auto or one of {sorted(SOURCES)}')
    try:
        if source == 'auto':
            source = detect(checkpoint, path)
        elif not SOURCES[source].recognises(checkpoint):
            raise WeightsError(f'{path} is not a {source} file ({SOURCES[source].DESCRIPTION})')
        converted = SOURCES[source].convert(checkpoint)
    except WeightsError as err:
        if path in str(err):
            raise
        raise WeightsError(f'{path}: {err}') from err
    except (KeyError, IndexError, AttributeError, TypeError, ValueError, RecursionError) as err:
        # a file that names a layout but lacks its parts: its own words, not a traceback
        raise WeightsError(f'{path}: a malformed {source} weight file ({_what_is_wrong(err)})') from err
    if not is_state_dict(converted.state_dict):
        raise WeightsError(f'{path}: a malformed {source} weight file (its weights are not all tensors)')
    converted.source = source
    return converted


def _what_is_wrong(err):
    if isinstance(err, KeyError):
        return f'it has no {err.args[0]!r}' if err.args else 'a key is missing'
    text = ' '.join(str(err).split())[:200]
    return f'{type(err).__name__}: {text}' if text else type(err).__name__


# the architecture options each model reads (MODELS in models/__init__.py): a file's other
# options do not matter to it, and are neither set nor logged
OPTIONS_OF_MODEL = {
    'slowfast': ('MODEL.SLOWFAST_ALPHA', 'MODEL.SLOWFAST_BETA_INV', 'MODEL.SLOWFAST_FUSION_KERNEL',
                 'MODEL.SLOWFAST_LATERAL', 'MODEL.SLOWFAST_SLOW_FRAMES'),
    'i3d': ('MODEL.STEM_TEMPORAL_STRIDE', 'MODEL.INFLATE_BASIC_CONV2', 'MODEL.NON_LOCAL',
            'MODEL.NON_LOCAL_SUBSAMPLE', 'MODEL.NON_LOCAL_SCALED'),
    'tsm': ('MODEL.TSM_SHIFT_DIV',),
    'videomae': ('MODEL.LAYER_NORM_EPS', 'MODEL.FC_NORM_EPS', 'MODEL.DECODER_DEPTH', 'MODEL.DECODER_WIDTH'),
}


def settings_of(converted, model_name):
    """{dotted config key: value} a converted file implies for a model `model_name`: its
    input convention, and, when it holds that very model, the architecture options that
    model reads."""
    wanted = dict(converted.convention)
    if converted.model_name == model_name:
        wanted.update({key: value for key, value in converted.options.items()
                       if key in OPTIONS_OF_MODEL.get(model_name, ())})
    return wanted


__all__ = ['SOURCES', 'Converted', 'CONVENTION_KEYS', 'ARCHITECTURE_KEYS', 'OPTIONS_OF_MODEL',
           'detect', 'read_weights', 'settings_of']
