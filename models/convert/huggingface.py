"""Hugging Face `transformers` VideoMAE checkpoints: a folder as `save_pretrained` writes it
(`config.json`, `model.safetensors` or `pytorch_model.bin`, and `preprocessor_config.json`
when the processor was saved too), e.g. MCG-NJU/videomae-base-finetuned-kinetics. Names
`videomae.embeddings.patch_embeddings.projection`, `videomae.encoder.layer.N.attention.
attention.query/key/value` (q_bias, v_bias), `...intermediate.dense`, `...output.dense`,
`layernorm_before/after`; the query, key and value weights become one qkv matrix.
- VideoMAEForVideoClassification: `fc_norm`, `classifier` -> a whole model (`backbone.`,
  `head.fc`);
- VideoMAEForPreTraining (e.g. MCG-NJU/videomae-base): `videomae.layernorm`,
  `encoder_to_decoder`, `mask_token`, `decoder.decoder_layers.N` (named as the encoder's
  layers), `decoder.norm`, `decoder.head` -> models/videomae_pretrain.py's names (`encoder.`,
  `decoder.`); its decoder norm is a LayerNorm of PyTorch's default eps (1e-5).
Size, LayerNorm eps and input convention come from the folder's config files.
"""
import json
import os.path as osp

import torch

from ..videomae import SIZES as VIT_SIZES
from ..videomae_pretrain import HEAD_WIDTH
from ..weights import WeightsError
from .common import (CLASSIFIER, IMAGENET, KIND_MODEL, KIND_PRETRAIN, MAE_FIRST_CONV, Converted, rename,
                     rgb_convention)

NAME = 'huggingface'
DESCRIPTION = ('Hugging Face transformers folder (config.json + model.safetensors): '
               'VideoMAEForVideoClassification or VideoMAEForPreTraining')
SIZES = {shape: size for size, shape in VIT_SIZES.items()}    # (width, depth, heads) -> BACKBONE
TORCH_LAYER_NORM_EPS = 1e-5      # transformers' fc_norm and decoder norm: nn.LayerNorm's default


def read_folder(path):
    """{'hf_config', 'hf_state', 'hf_preprocessor'} of a save_pretrained folder; the weights
    are read as tensors only (safetensors, or torch.load with weights_only)."""
    config_path = osp.join(path, 'config.json')
    if not osp.isfile(config_path):
        raise WeightsError(f'{path} is a folder without config.json: not a Hugging Face checkpoint')
    with open(config_path, encoding='utf-8') as handle:
        config = json.load(handle)
    weights = osp.join(path, 'model.safetensors')
    if osp.isfile(weights):
        from safetensors.torch import load_file
        state = load_file(weights)
    elif osp.isfile(osp.join(path, 'pytorch_model.bin')):
        state = torch.load(osp.join(path, 'pytorch_model.bin'), map_location='cpu', weights_only=True)
    else:
        raise WeightsError(f'{path}: neither model.safetensors nor pytorch_model.bin')
    preprocessor = None
    if osp.isfile(osp.join(path, 'preprocessor_config.json')):
        with open(osp.join(path, 'preprocessor_config.json'), encoding='utf-8') as handle:
            preprocessor = json.load(handle)
    return {'hf_config': config, 'hf_state': state, 'hf_preprocessor': preprocessor}


def recognises(checkpoint):
    return isinstance(checkpoint, dict) and 'hf_config' in checkpoint and 'hf_state' in checkpoint


def layer_rules(theirs, ours):
    """Rules for one transformers ViT layer `theirs` (a pattern ending in the layer number's
    group and a dot) into our Block `ours` (ours.N); query/key/value are fused separately."""
    return [
        (theirs + r'attention\.attention\.([qv]_bias)', ours + r'.\1.attn.\2'),
        (theirs + r'attention\.attention\.(query|key|value)\.weight', None),     # fused_qkv
        (theirs + r'attention\.output\.dense\.(.+)', ours + r'.\1.attn.proj.\2'),
        (theirs + r'intermediate\.dense\.(.+)', ours + r'.\1.mlp.fc1.\2'),
        (theirs + r'output\.dense\.(.+)', ours + r'.\1.mlp.fc2.\2'),
        (theirs + r'layernorm_before\.(.+)', ours + r'.\1.norm1.\2'),
        (theirs + r'layernorm_after\.(.+)', ours + r'.\1.norm2.\2'),
    ]


def fused_qkv(state, theirs, ours, layers):
    """{ours.N.attn.qkv.weight: [query; key; value]} for layers 0..layers-1 of `theirs`
    (a prefix with {} for the layer number): our attention projects q, k, v with one matrix."""
    return {f'{ours}.{layer}.attn.qkv.weight': torch.cat(
        [state[theirs.format(layer) + f'attention.attention.{part}.weight'] for part in ('query', 'key', 'value')])
        for layer in range(layers)}


LAYER = r'videomae\.encoder\.layer\.(\d+)\.'
ENCODER_LAYER = 'videomae.encoder.layer.{}.'
PATCH_EMBEDDING = r'videomae\.embeddings\.patch_embeddings\.projection\.(.+)'
RULES = [
    (PATCH_EMBEDDING, r'backbone.patch_embed.proj.\1'),
    *layer_rules(LAYER, 'backbone.blocks'),
    (r'fc_norm\.(.+)', r'backbone.fc_norm.\1'),
    (r'classifier\.(.+)', r'head.fc.\1'),
]
DECODER_LAYER = r'decoder\.decoder_layers\.(\d+)\.'
PRETRAINING_RULES = [
    (PATCH_EMBEDDING, r'encoder.patch_embed.proj.\1'),
    *layer_rules(LAYER, 'encoder.blocks'),
    (r'videomae\.layernorm\.(.+)', r'encoder.norm.\1'),
    (r'encoder_to_decoder\.weight', 'encoder_to_decoder.weight'),
    (r'mask_token', 'mask_token'),
    *layer_rules(DECODER_LAYER, 'decoder.blocks'),
    (r'decoder\.norm\.(.+)', r'decoder.norm.\1'),
    (r'decoder\.head\.(.+)', r'decoder.head.\1'),
]


def _size(config):
    """BACKBONE of a VideoMAE config (ViT-S/B with 2x16x16 tubelets and q/v biases)."""
    if config.get('model_type') != 'videomae':
        raise WeightsError(f"Hugging Face model_type {config.get('model_type')!r}: only videomae is supported")
    size = SIZES.get((config.get('hidden_size'), config.get('num_hidden_layers'),
                      config.get('num_attention_heads')))
    if size is None or config.get('patch_size', 16) != 16 or config.get('tubelet_size', 2) != 2:
        raise WeightsError('VideoMAE config not ViT-S/B with 2x16x16 tubelets: '
                           f"{ {k: config.get(k) for k in ('hidden_size', 'num_hidden_layers', 'num_attention_heads', 'patch_size', 'tubelet_size')} }")
    if not config.get('qkv_bias', True):
        raise WeightsError('VideoMAE without q/v biases (qkv_bias false): our blocks have them, as '
                           'every published VideoMAE does')
    return size


def _convention(checkpoint):
    """(the input convention, a note saying where it came from)."""
    processor = checkpoint.get('hf_preprocessor') or {}
    if 'image_mean' in processor and 'image_std' in processor:
        return (rgb_convention(processor['image_mean'], processor['image_std'], 1),
                'input convention from preprocessor_config.json')
    return dict(IMAGENET), 'no preprocessor_config.json: ImageNet mean/std (VideoMAE\'s)'


def _clip_note(config):
    return f"clip trained on: {config.get('num_frames')} frames at {config.get('image_size')} px"


def convert(checkpoint):
    config, state = checkpoint['hf_config'], checkpoint['hf_state']
    size = _size(config)
    if 'decoder.head.weight' in state:
        return _convert_pretraining(checkpoint, config, state, size)
    if not config.get('use_mean_pooling', True):
        raise WeightsError('a VideoMAE without mean pooling and without a decoder (a VideoMAEModel of a '
                           'pre-training checkpoint?): save the VideoMAEForPreTraining it belongs to '
                           '(encoder and decoder), or a VideoMAEForVideoClassification')
    if 'classifier.weight' not in state:
        raise WeightsError('a VideoMAE without its classifier and without a decoder (VideoMAEModel): save '
                           'a VideoMAEForVideoClassification, or the VideoMAEForPreTraining it came from')
    ours = rename(state, RULES, 'Hugging Face VideoMAE')
    ours.update(fused_qkv(state, ENCODER_LAYER, 'backbone.blocks', config['num_hidden_layers']))
    options = {'BACKBONE': size, 'MODEL.LAYER_NORM_EPS': float(config.get('layer_norm_eps', 1e-12)),
               'MODEL.FC_NORM_EPS': TORCH_LAYER_NORM_EPS}
    convention, where = _convention(checkpoint)
    notes = ['videomae.encoder.layer.N -> backbone.blocks.N (query/key/value fused into qkv), '
             'classifier -> head.fc', _clip_note(config), where]
    # VideoMAEForVideoClassification (a file without `classifier` was refused above)
    return Converted(ours, 'videomae', options, convention, notes, kind=KIND_MODEL, classifier=CLASSIFIER,
                     first_conv='backbone.patch_embed.proj.weight')


def _decoder_options(config):
    """MODEL.DECODER_DEPTH and DECODER_WIDTH of a VideoMAEForPreTraining config (transformers'
    defaults where it leaves them out); a decoder our blocks cannot be is refused."""
    width = config.get('decoder_hidden_size', 384)
    depth = config.get('decoder_num_hidden_layers', 4)
    heads = config.get('decoder_num_attention_heads', 6)
    hidden = config.get('decoder_intermediate_size', 1536)
    if heads * HEAD_WIDTH != width:
        raise WeightsError(f'a VideoMAE decoder {width} wide with {heads} attention heads: ours has heads '
                           f'of {HEAD_WIDTH} channels (decoder_num_attention_heads * {HEAD_WIDTH} must be '
                           f'decoder_hidden_size, as in every published VideoMAE)')
    if hidden != 4 * width:
        raise WeightsError(f'a VideoMAE decoder {width} wide with an MLP of {hidden}: ours is 4 x its width')
    return {'MODEL.DECODER_DEPTH': depth, 'MODEL.DECODER_WIDTH': width}


def _convert_pretraining(checkpoint, config, state, size):
    """VideoMAEForPreTraining: encoder, its final LayerNorm, and the pixel decoder."""
    if config.get('use_mean_pooling', False):
        raise WeightsError('a VideoMAEForPreTraining with use_mean_pooling true has no final encoder '
                           'norm (videomae.layernorm); VideoMAE pre-trains with it (use_mean_pooling false)')
    options = {'BACKBONE': size, **_decoder_options(config),
               'MODEL.LAYER_NORM_EPS': float(config.get('layer_norm_eps', 1e-12)),
               'MODEL.FC_NORM_EPS': TORCH_LAYER_NORM_EPS}       # the decoder's norm
    ours = rename(state, PRETRAINING_RULES, 'Hugging Face VideoMAEForPreTraining')
    ours.update(fused_qkv(state, ENCODER_LAYER, 'encoder.blocks', config['num_hidden_layers']))
    ours.update(fused_qkv(state, 'decoder.decoder_layers.{}.', 'decoder.blocks', options['MODEL.DECODER_DEPTH']))
    convention, where = _convention(checkpoint)
    notes = ['videomae.encoder.layer.N -> encoder.blocks.N, decoder.decoder_layers.N -> decoder.blocks.N '
             '(query/key/value fused into qkv), videomae.layernorm -> encoder.norm',
             f"decoder: {options['MODEL.DECODER_DEPTH']} blocks of {options['MODEL.DECODER_WIDTH']} channels",
             _clip_note(config), where]
    return Converted(ours, 'videomae', options, convention, notes, kind=KIND_PRETRAIN, classifier=(),
                     first_conv=MAE_FIRST_CONV)
