"""The VideoMAE repository's checkpoints (MCG-NJU/VideoMAE, `checkpoint.pth` of fine-tuning
runs): `{'model': ...}` or `{'module': ...}` with patch_embed.proj, blocks.N.attn.qkv (q_bias,
v_bias), blocks.N.mlp.fc1/fc2, norm1/norm2, fc_norm, head: our names under `backbone.`, the
head as `head.fc`. LayerNorm eps 1e-6 and ImageNet mean/std, as the repository uses."""
from .common import IMAGENET, KIND_ENCODER, KIND_MODEL, Converted, present

NAME = 'videomae-authors'
DESCRIPTION = "VideoMAE repository .pth: {'model' or 'module'} with patch_embed.proj, blocks.N.attn.qkv, fc_norm, head"
SIZES = {384: 'vit_small', 768: 'vit_base'}


def _state(checkpoint):
    for key in ('model', 'module'):
        state = checkpoint.get(key) if isinstance(checkpoint, dict) else None
        if isinstance(state, dict):
            return state
    return None


def recognises(checkpoint):
    state = _state(checkpoint)
    return (state is not None and 'patch_embed.proj.weight' in state
            and getattr(state['patch_embed.proj.weight'], 'dim', lambda: 0)() == 5
            and 'blocks.0.attn.qkv.weight' in state)


def convert(checkpoint):
    state = _state(checkpoint)
    ours = {('head.fc.' + k[len('head.'):] if k.startswith('head.') else 'backbone.' + k): v
            for k, v in state.items()}
    width = state['patch_embed.proj.weight'].shape[0]
    classifier = present(ours)
    # a fine-tuning checkpoint is a whole model; one saved without `head` only its encoder
    return Converted(ours, 'videomae', {'BACKBONE': SIZES.get(width, f'width {width}'),
                                        'MODEL.LAYER_NORM_EPS': 1e-6, 'MODEL.FC_NORM_EPS': 1e-6},
                     dict(IMAGENET),
                     ['patch_embed/blocks/fc_norm -> backbone., head -> head.fc'],
                     kind=KIND_MODEL if classifier else KIND_ENCODER, classifier=classifier,
                     first_conv='backbone.patch_embed.proj.weight')
