"""The VideoMAE repository's checkpoints (MCG-NJU/VideoMAE, `checkpoint.pth`), `{'model': ...}`
or `{'module': ...}`, usually beside 'optimizer', 'epoch', 'scaler' and 'args' (an
argparse.Namespace, which utils.checkpoint reads as plain data):
- fine-tuning runs: patch_embed.proj, blocks.N.attn.qkv (q_bias, v_bias), blocks.N.mlp.fc1/fc2,
  norm1/norm2, fc_norm, head: our names under `backbone.`, the head as `head.fc`;
- pre-training runs (run_mae_pretraining.py): encoder.patch_embed, encoder.blocks.N,
  encoder.norm, encoder_to_decoder, mask_token, decoder.blocks.N, decoder.norm, decoder.head:
  models/videomae_pretrain.py's names as they are. Decoder depth and width come from its
  tensors (heads of 64 channels, as every published decoder has).
LayerNorm eps 1e-6 and ImageNet mean/std, as the repository uses."""
from .common import (IMAGENET, KIND_ENCODER, KIND_MODEL, KIND_PRETRAIN, MAE_FIRST_CONV, VIT_WIDTHS, Converted,
                     is_masked_autoencoder, masked_autoencoder_options, present)

NAME = 'videomae-authors'
DESCRIPTION = ("VideoMAE repository .pth: {'model' or 'module'} with patch_embed.proj, blocks.N.attn.qkv, "
               "fc_norm, head (fine-tuning) or encoder.*, decoder.*, mask_token (pre-training)")
SIZES = VIT_WIDTHS
# the repository's LayerNorms (blocks, fc_norm / the decoder's norm) and input convention
EPS = {'MODEL.LAYER_NORM_EPS': 1e-6, 'MODEL.FC_NORM_EPS': 1e-6}


def _state(checkpoint):
    for key in ('model', 'module'):
        state = checkpoint.get(key) if isinstance(checkpoint, dict) else None
        if isinstance(state, dict):
            return state
    return None


def _is_fine_tuning(state):
    return ('patch_embed.proj.weight' in state
            and getattr(state['patch_embed.proj.weight'], 'dim', lambda: 0)() == 5
            and 'blocks.0.attn.qkv.weight' in state)


def _is_pretraining(checkpoint, state):
    """Our own pre-training checkpoints have the same names: they carry our 'config' (ours.py
    takes them), the repository's never do."""
    return 'config' not in checkpoint and is_masked_autoencoder(state)


def recognises(checkpoint):
    state = _state(checkpoint)
    return state is not None and (_is_fine_tuning(state) or _is_pretraining(checkpoint, state))


def convert(checkpoint):
    state = _state(checkpoint)
    if _is_pretraining(checkpoint, state):
        return _convert_pretraining(state)
    ours = {('head.fc.' + k[len('head.'):] if k.startswith('head.') else 'backbone.' + k): v
            for k, v in state.items()}
    width = state['patch_embed.proj.weight'].shape[0]
    classifier = present(ours)
    # a fine-tuning checkpoint is a whole model; one saved without `head` only its encoder
    return Converted(ours, 'videomae', {'BACKBONE': SIZES.get(width, f'width {width}'), **EPS},
                     dict(IMAGENET),
                     ['patch_embed/blocks/fc_norm -> backbone., head -> head.fc'],
                     kind=KIND_MODEL if classifier else KIND_ENCODER, classifier=classifier,
                     first_conv='backbone.patch_embed.proj.weight')


def _convert_pretraining(state):
    """A pre-training checkpoint: no renaming (models/videomae_pretrain.py uses its names)."""
    options = masked_autoencoder_options(state, 'VideoMAE pre-training checkpoint')
    notes = ['no renaming (the pre-training names are ours)',
             f"decoder: {options['MODEL.DECODER_DEPTH']} blocks of {options['MODEL.DECODER_WIDTH']} "
             'channels, read off its tensors (heads of 64 channels)']
    return Converted(dict(state), 'videomae', {**options, **EPS}, dict(IMAGENET), notes,
                     kind=KIND_PRETRAIN, classifier=(), first_conv=MAE_FIRST_CONV)
