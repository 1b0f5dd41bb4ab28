"""VideoMAE pre-training (Tong et al., NeurIPS 2022): a masked autoencoder over space-time
tubelets, learnt from unlabelled videos.

A clip [N, 3, T, H, W] becomes T/2 x H/16 x W/16 tokens (2x16x16 tubelets). Tube masking hides
MASK_RATIO of the spatial positions, the same ones in every tubelet of the clip (the paper's
answer to the redundancy between frames: a masked patch cannot be copied from its neighbour in
time). The encoder (the fine-tuning ViT's patch embedding and blocks, then a LayerNorm `norm`)
sees the visible tokens only; `encoder_to_decoder` narrows them to the decoder's width, the
masked positions get a learnt `mask_token`, both get the decoder's position table, and a light
decoder (DECODER_DEPTH blocks of DECODER_WIDTH) predicts the pixels of the masked tubelets:
2x16x16x3 values each, laid out (time, row, column, channel). The loss is their mean squared
error against the clip's pixels (in [0, 1] for the ImageNet convention), each tubelet's pixels
normalised per channel by their own mean and standard deviation (NORM_PIX_LOSS, the paper's
default). Parameter names are the VideoMAE repository's (`encoder.`, `decoder.`,
`encoder_to_decoder`, `mask_token`), so its pre-training checkpoints load by name.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ModelOptionError, check_option
from .videomae import (PATCH, SIZES, TUBELET, Block, block_rates, embed_tubelets, init_vit_weights,
                       patch_embedding, position_table, run_blocks, vit_layer_of)

# the published decoder width of each encoder size (heads of HEAD_WIDTH); its scripts use depth 4
DECODER_WIDTH = {'vit_small': 192, 'vit_base': 384}
HEAD_WIDTH = 64                 # channels per attention head, in the encoder and the decoder
PATCH_VALUES = TUBELET * PATCH * PATCH * 3       # pixels a token predicts
NORM_PIX_EPS = 1e-6


def token_grid(clip_shape):
    """(t, h, w) tokens of a clip [..., T, H, W]; the clip must divide into whole tubelets."""
    frames, height, width = clip_shape[-3:]
    if frames % TUBELET or height % PATCH or width % PATCH:
        raise ValueError(f'a VideoMAE clip must divide into {TUBELET}x{PATCH}x{PATCH} tubelets, got '
                         f'{frames} frames of {height}x{width}')
    return frames // TUBELET, height // PATCH, width // PATCH


def tube_mask(batch, grid, ratio, generator=None, device='cpu'):
    """[batch, t*h*w] bool, True where a token is masked: int(ratio * h * w) spatial positions
    per clip, drawn uniformly without replacement, masked in all t tubelets (tokens ordered
    time, row, column, as the patch embedding flattens them)."""
    frames, height, width = grid
    positions = height * width
    hidden = int(ratio * positions)
    if not 0 < hidden < positions:
        raise ValueError(f'MODEL.MASK_RATIO {ratio} hides {hidden} of {positions} positions per '
                         f'frame: at least one must be hidden and one visible')
    order = torch.rand(batch, positions, generator=generator).argsort(dim=1)
    spatial = torch.zeros(batch, positions, dtype=torch.bool)
    spatial.scatter_(1, order[:, :hidden], True)
    return spatial.repeat(1, frames).to(device)


def patchify(pixels):
    """[N, 3, T, H, W] -> [N, tokens, 2*16*16, 3]: each tubelet's pixels, (time, row, column)
    by channel, in token order."""
    batch, channels = pixels.shape[:2]
    frames, height, width = token_grid(pixels.shape)
    x = pixels.reshape(batch, channels, frames, TUBELET, height, PATCH, width, PATCH)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)
    return x.reshape(batch, frames * height * width, TUBELET * PATCH * PATCH, channels)


def unpatchify(patches, clip_shape):
    """patchify's inverse: [N, tokens, 2*16*16*3] -> [N, 3, T, H, W] of `clip_shape`."""
    batch, channels = patches.shape[0], 3
    frames, height, width = token_grid(clip_shape)
    x = patches.reshape(batch, frames, height, width, TUBELET, PATCH, PATCH, channels)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(batch, channels, frames * TUBELET, height * PATCH, width * PATCH)


def patch_statistics(patches):
    """Per tubelet and channel of `patches` (patchify's): (mean, std) [N, tokens, 1, 3], the
    unbiased std plus NORM_PIX_EPS as VideoMAE normalises its targets."""
    return (patches.mean(dim=-2, keepdim=True),
            patches.var(dim=-2, unbiased=True, keepdim=True).sqrt() + NORM_PIX_EPS)


def pixel_targets(pixels, norm_pix=True):
    """What the decoder learns to predict, for every token: [N, tokens, 2*16*16*3], the
    tubelet's pixels normalised by its own statistics (norm_pix) or as they are."""
    patches = patchify(pixels)
    if norm_pix:
        mean, std = patch_statistics(patches)
        patches = (patches - mean) / std
    return patches.flatten(2)


def masked_patch_loss(predicted, targets, mask, per_clip=False):
    """Mean squared error over the masked tokens: `predicted` [N, masked, D] (the decoder's
    output, masked tokens in token order), `targets` [N, tokens, D], `mask` [N, tokens].
    `per_clip`: each clip's [N] instead (their mean is the loss: every clip hides as many)."""
    masked = targets[mask].reshape(predicted.shape)
    if per_clip:
        return (predicted - masked).pow(2).mean(dim=(1, 2))
    return F.mse_loss(predicted, masked)


def reconstruct(predicted, pixels, mask, norm_pix=True):
    """The clip as the model sees it: visible tubelets as they are, masked ones from the
    decoder's prediction (de-normalised with the tubelet's own statistics when the targets
    were normalised). [N, 3, T, H, W], in `pixels`' units."""
    tubelets = patchify(pixels)
    patches = tubelets.flatten(2).clone()
    guess = predicted.reshape(predicted.shape[0], -1, TUBELET * PATCH * PATCH, 3)
    if norm_pix:
        mean, std = patch_statistics(tubelets)
        guess = guess * std[mask].reshape(guess.shape[0], -1, 1, 3) + mean[mask].reshape(guess.shape[0], -1, 1, 3)
    patches[mask] = guess.reshape(-1, PATCH_VALUES).to(patches.dtype)
    return unpatchify(patches, pixels.shape)


class Encoder(nn.Module):
    """The ViT on the visible tokens only: patch embedding, position table, blocks, norm."""

    def __init__(self, size, drop_path, eps, grad_checkpoint):
        super().__init__()
        width, depth, heads = SIZES[size]
        self.patch_embed = patch_embedding(width)
        self.blocks = nn.ModuleList(Block(width, heads, rate, eps) for rate in block_rates(drop_path, depth))
        self.norm = nn.LayerNorm(width, eps=eps)
        self.width, self.grad_checkpoint = width, grad_checkpoint

    def forward(self, clips, mask):
        tokens = embed_tubelets(self.patch_embed, clips, self.width)
        visible = tokens[~mask].reshape(tokens.shape[0], -1, self.width)
        return self.norm(run_blocks(self.blocks, visible, self.grad_checkpoint))


class Decoder(nn.Module):
    """Blocks over [visible, masked] tokens, then norm and the pixel head on the masked ones."""

    def __init__(self, width, depth, drop_path, eps, norm_eps, grad_checkpoint):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width, width // HEAD_WIDTH, rate, eps)
                                    for rate in block_rates(drop_path, depth))
        self.norm = nn.LayerNorm(width, eps=norm_eps)
        self.head = nn.Linear(width, PATCH_VALUES)
        self.grad_checkpoint = grad_checkpoint

    def forward(self, tokens, masked):
        tokens = run_blocks(self.blocks, tokens, self.grad_checkpoint)
        return self.head(self.norm(tokens[:, -masked:]))


class VideoMAEPretrain(nn.Module):
    """forward(clips [N, 3, T, H, W] normalised, mask [N, tokens] bool) -> the predicted
    pixels of the masked tokens [N, masked, 1536], in token order. Every clip of a batch must
    hide the same number of tokens (tube_mask does). `eps`: the blocks' and the encoder norm's
    LayerNorm eps; `head_norm_eps` the decoder norm's (1e-6 in the VideoMAE repository, 1e-5
    in transformers' VideoMAEForPreTraining: MODEL.FC_NORM_EPS)."""

    def __init__(self, size='vit_base', decoder_depth=4, decoder_width=0, drop_path=0.0, eps=1e-6,
                 head_norm_eps=1e-6, grad_checkpoint=False):
        super().__init__()
        size = check_option('VideoMAE size (BACKBONE)', size, SIZES)
        decoder_width = decoder_width or DECODER_WIDTH[size]
        if decoder_width % HEAD_WIDTH:
            raise ModelOptionError(f'MODEL.DECODER_WIDTH {decoder_width} must be a multiple of {HEAD_WIDTH} '
                             f'(the channels of one attention head)')
        self.encoder = Encoder(size, drop_path, eps, grad_checkpoint)
        self.decoder = Decoder(decoder_width, decoder_depth, drop_path, eps, head_norm_eps, grad_checkpoint)
        self.encoder_to_decoder = nn.Linear(self.encoder.width, decoder_width, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_width))
        self.decoder_width = decoder_width
        self.apply(init_vit_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, clips, mask):
        visible = self.encoder_to_decoder(self.encoder(clips, mask))
        batch = visible.shape[0]
        table = position_table(mask.shape[1], self.decoder_width, visible).expand(batch, -1, -1)
        shown = table[~mask].reshape(batch, -1, self.decoder_width)
        hidden = table[mask].reshape(batch, -1, self.decoder_width)
        tokens = torch.cat([visible + shown, self.mask_token.to(visible.dtype) + hidden], dim=1)
        return self.decoder(tokens, hidden.shape[1])

    def no_weight_decay(self):
        """Parameters without weight decay under TRAIN.ZERO_WD_1D_PARAM besides the 1-D ones
        (VideoMAE's optimizer skips the mask token)."""
        return {'mask_token'}

    def layer_of(self, name):
        """Depth for layer-wise LR decay (as the fine-tuning model counts it): the patch
        embedding 0, encoder block i i + 1, everything else (norm, decoder) depth + 1."""
        return vit_layer_of(name, 'encoder.', len(self.encoder.blocks))
