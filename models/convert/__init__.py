"""Weight files from the whole ecosystem, read into our models exactly.

One module per source says how to recognise its files by content (`recognises`) and turns one
into our parameter names with the architecture options and input convention it implies
(`convert` -> Converted). `read_weights` asks every source: exactly one must recognise the
file, or the error names the candidates (choose with MODEL.PRETRAINED_FROM or --from).
`apply_settings` writes the options and the convention into the config, except the keys the
user set on this run's command line or --cfg files, and logs each.

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


def apply_settings(cfg, converted, logger=None, architecture=True, path=''):
    """Write the file's input convention, and (when `architecture`) its architecture options,
    into `cfg`, except keys given explicitly on this run; log what was set and what was kept."""
    import config as config_module
    wanted = dict(converted.convention)
    if architecture:
        wanted.update({k: v for k, v in converted.options.items() if k in ARCHITECTURE_KEYS})
    applied, kept = {}, {}
    for key, value in wanted.items():
        if config_module.set_unless_explicit(key, value, cfg):
            applied[key] = value
        else:
            kept[key] = value
    if logger:
        logger.info('%s: %s weights (%s)', path or 'weights', converted.source,
                    '; '.join(converted.notes))
        if applied:
            logger.info('settings from the weights: %s',
                        ', '.join(f'{key} {value}' for key, value in applied.items()))
        if kept:
            logger.info('kept as given on the command line (the weights say otherwise): %s',
                        ', '.join(f'{key} {value}' for key, value in kept.items()))
    return applied


__all__ = ['SOURCES', 'Converted', 'CONVENTION_KEYS', 'ARCHITECTURE_KEYS', 'apply_settings',
           'detect', 'read_weights']
