"""DLAC's own checkpoints (best.pth, last.pth, `python -m models.convert` output): `model` (our
parameter names) and `config` (the run's config, with the architecture options and the input
convention the weights were trained with). A TRAIN.TASK pretrain run's file holds a VideoMAE
pre-training model (models/videomae_pretrain.py: `encoder.`, `decoder.`, `encoder_to_decoder`,
`mask_token`, the VideoMAE repository's names: told from its files by our `config`)."""
import torch

from ..weights import WeightsError
from .common import (ARCHITECTURE_KEYS, CONVENTION_KEYS, IMAGENET, KIND_MODEL, KIND_PRETRAIN, MAE_FIRST_CONV,
                     Converted, first_conv_of, guess_model_name, is_masked_autoencoder,
                     masked_autoencoder_options, present)

NAME = 'dlac'
DESCRIPTION = "this project's checkpoints: {'model', 'config'} (best.pth, last.pth, models.convert output)"


OUR_PREFIXES = ('backbone.', 'head.', 'slow.', 'fast.', 'lateral.')
# a VideoMAE pre-training model's: the VideoMAE repository's names, ours only with our config
PRETRAINING_PREFIXES = ('encoder.', 'decoder.', 'encoder_to_decoder.', 'mask_token')


def recognises(checkpoint):
    model = checkpoint.get('model') if isinstance(checkpoint, dict) else None
    if not isinstance(model, dict) or not model:
        return False
    prefixes = OUR_PREFIXES
    if 'config' in checkpoint and is_masked_autoencoder(model):
        prefixes = PRETRAINING_PREFIXES
    return all(isinstance(v, torch.Tensor) and k.startswith(prefixes) for k, v in model.items())


def lookup(config, key):
    node = config
    for part in key.split('.'):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def convert(checkpoint):
    state = checkpoint['model']
    config = checkpoint.get('config') or {}
    if not isinstance(config, dict):
        raise WeightsError(f"the checkpoint's config is a {type(config).__name__}, not the dict of "
                           f'settings this project writes: the file is damaged or not ours')
    model_name = (config.get('MODEL_NAME') or guess_model_name(state)).lower()
    options = {key: lookup(config, key) for key in ('BACKBONE',) + ARCHITECTURE_KEYS
               if lookup(config, key) is not None}
    pretraining = is_masked_autoencoder(state)
    if pretraining:         # the decoder as its tensors have it (DECODER_WIDTH 0: the default)
        options.update(masked_autoencoder_options(state, 'our VideoMAE pre-training checkpoint'))
    convention = {}
    if config:      # files from before the convention keys were RGB in [0, 1]
        convention = {key: lookup(config, key) if lookup(config, key) is not None else IMAGENET[key]
                      for key in CONVENTION_KEYS}
    notes = ['no renaming (our own names)']
    if not config:
        notes.append(f'no config in the file: model {model_name!r} guessed from the names')
    if pretraining:
        return Converted(dict(state), model_name, options, convention, notes, kind=KIND_PRETRAIN,
                         classifier=(), first_conv=MAE_FIRST_CONV)
    # a whole model of ours, whatever it was trained from (`python -m models.convert` of an
    # ImageNet file writes a TSN of the ImageNet classes)
    return Converted(dict(state), model_name, options, convention, notes, kind=KIND_MODEL,
                     classifier=present(state), first_conv=first_conv_of(model_name, state))
