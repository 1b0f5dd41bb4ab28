"""Hugging Face `transformers` VideoMAE checkpoints: a folder as `save_pretrained` writes it
(`config.json`, `model.safetensors` or `pytorch_model.bin`, and `preprocessor_config.json`
when the processor was saved too), e.g. MCG-NJU/videomae-base-finetuned-kinetics. Names
`videomae.embeddings.patch_embeddings.projection`, `videomae.encoder.layer.N.attention.
attention.query/key/value` (q_bias, v_bias), `...intermediate.dense`, `...output.dense`,
`layernorm_before/after`, `fc_norm`, `classifier`; the query, key and value weights become one
qkv matrix. Size, LayerNorm eps and input convention come from the folder's config files.
"""
import json
import os.path as osp

import torch

from ..weights import WeightsError
from .common import CLASSIFIER, IMAGENET, KIND_MODEL, Converted, rename, rgb_convention

NAME = 'huggingface'
DESCRIPTION = 'Hugging Face transformers folder (config.json + model.safetensors): VideoMAEForVideoClassification'
SIZES = {(384, 12, 6): 'vit_small', (768, 12, 12): 'vit_base'}


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


LAYER = r'videomae\.encoder\.layer\.(\d+)\.'
RULES = [
    (r'videomae\.embeddings\.patch_embeddings\.projection\.(.+)', r'backbone.patch_embed.proj.\1'),
    (LAYER + r'attention\.attention\.([qv]_bias)', r'backbone.blocks.\1.attn.\2'),
    (LAYER + r'attention\.attention\.(query|key|value)\.weight', None),     # fused below
    (LAYER + r'attention\.output\.dense\.(.+)', r'backbone.blocks.\1.attn.proj.\2'),
    (LAYER + r'intermediate\.dense\.(.+)', r'backbone.blocks.\1.mlp.fc1.\2'),
    (LAYER + r'output\.dense\.(.+)', r'backbone.blocks.\1.mlp.fc2.\2'),
    (LAYER + r'layernorm_before\.(.+)', r'backbone.blocks.\1.norm1.\2'),
    (LAYER + r'layernorm_after\.(.+)', r'backbone.blocks.\1.norm2.\2'),
    (r'fc_norm\.(.+)', r'backbone.fc_norm.\1'),
    (r'classifier\.(.+)', r'head.fc.\1'),
]


def convert(checkpoint):
    config, state = checkpoint['hf_config'], checkpoint['hf_state']
    if config.get('model_type') != 'videomae':
        raise WeightsError(f"Hugging Face model_type {config.get('model_type')!r}: only videomae is supported")
    size = SIZES.get((config.get('hidden_size'), config.get('num_hidden_layers'),
                      config.get('num_attention_heads')))
    if size is None or config.get('patch_size', 16) != 16 or config.get('tubelet_size', 2) != 2:
        raise WeightsError('VideoMAE config not ViT-S/B with 2x16x16 tubelets: '
                           f"{ {k: config.get(k) for k in ('hidden_size', 'num_hidden_layers', 'num_attention_heads', 'patch_size', 'tubelet_size')} }")
    if not config.get('use_mean_pooling', True) or not config.get('qkv_bias', True):
        raise WeightsError('VideoMAE without mean pooling or without q/v biases (a pre-training '
                           'checkpoint?): the fine-tuning form is what DLAC trains')
    if 'classifier.weight' not in state:
        raise WeightsError('a VideoMAE without its classifier (VideoMAEModel or VideoMAEForPreTraining): '
                           'save a VideoMAEForVideoClassification')
    ours = rename(state, RULES, 'Hugging Face VideoMAE')
    for layer in range(config['num_hidden_layers']):
        prefix = f'videomae.encoder.layer.{layer}.attention.attention.'
        ours[f'backbone.blocks.{layer}.attn.qkv.weight'] = torch.cat(
            [state[prefix + f'{part}.weight'] for part in ('query', 'key', 'value')])
    options = {'BACKBONE': size, 'MODEL.LAYER_NORM_EPS': float(config.get('layer_norm_eps', 1e-12)),
               'MODEL.FC_NORM_EPS': 1e-5}       # transformers builds fc_norm with LayerNorm's default
    processor = checkpoint.get('hf_preprocessor') or {}
    convention = (rgb_convention(processor['image_mean'], processor['image_std'], 1)
                  if 'image_mean' in processor and 'image_std' in processor else dict(IMAGENET))
    notes = ['videomae.encoder.layer.N -> backbone.blocks.N (query/key/value fused into qkv), '
             'classifier -> head.fc', f"clip trained on: {config.get('num_frames')} frames at "
             f"{config.get('image_size')} px", 'input convention from preprocessor_config.json'
             if processor else 'no preprocessor_config.json: ImageNet mean/std (VideoMAE\'s)']
    # VideoMAEForVideoClassification (a file without `classifier` was refused above)
    return Converted(ours, 'videomae', options, convention, notes, kind=KIND_MODEL, classifier=CLASSIFIER,
                     first_conv='backbone.patch_embed.proj.weight')
