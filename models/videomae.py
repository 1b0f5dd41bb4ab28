"""VideoMAE ViT (Tong et al., NeurIPS 2022), the fine-tuning form: a plain ViT over space-time
tubelets. Input [N, 3, T, H, W] (16x224x224 for the published Kinetics models), output [N, K].

Patch embedding: a 2x16x16 conv with stride 2x16x16 (T/2 x H/16 x W/16 tokens). Fixed 1D
sine-cosine position embedding over the flattened tokens (computed, not learned, so any clip
size works; float32 values, as the published models were trained with). Blocks of joint
space-time attention (q and v biases, no k bias) and a GELU MLP, pre-norm, stochastic depth
(MODEL.DROP_PATH, growing linearly to its value in the last block). Head: mean of the tokens,
LayerNorm (fc_norm), dropout, fc. Parameter names follow the VideoMAE repository's under
`backbone.` (its `head` is our `head.fc`). Attention runs through
`F.scaled_dot_product_attention` (fused kernels where the device has them); MODEL.GRAD_CHECKPOINT
recomputes each block's activations in the backward pass instead of keeping them.

The pre-training form (encoder on visible tokens, decoder) is models/videomae_pretrain.py,
built from the same blocks.
"""
import functools

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .errors import check_option
from .heads import ClassifierHead

SIZES = {'vit_small': (384, 12, 6), 'vit_base': (768, 12, 12)}   # width, depth, heads
TUBELET, PATCH, MLP_RATIO = 2, 16, 4


def sinusoid_table(positions, width):
    """VideoMAE's position table [positions, width]: sin on even, cos on odd channels, with
    wavelengths 10000^(2i/width); float32 like the original."""
    return torch.tensor(_cached_table(int(positions), int(width)))


@functools.lru_cache(maxsize=32)
def _cached_table(positions, width):
    """The table's float32 values as a NumPy array: a tensor made under torch.export's fake
    mode must not be kept for later calls, so the tensor is made from it on every call."""
    position = np.arange(int(positions))[:, None]
    exponent = 2 * (np.arange(width) // 2) / width
    angles = position / np.power(10000, exponent)[None, :]
    angles[:, 0::2], angles[:, 1::2] = np.sin(angles[:, 0::2]), np.cos(angles[:, 1::2])
    table = angles.astype(np.float32)
    table.flags.writeable = False
    return table


def position_table(tokens, width, reference):
    """The position table for `tokens` tokens of `width` channels, on `reference`'s device and
    in its dtype (computed once per size, in float32, then cast)."""
    return sinusoid_table(tokens, width).to(device=reference.device, dtype=reference.dtype)


class DropPath(nn.Module):
    """Stochastic depth: in training, drop the residual branch of a whole sample with
    probability p (scaling the kept ones by 1/(1-p))."""

    def __init__(self, p=0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, width * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        batch, tokens, width = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias).reshape(batch, tokens, 3, self.heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)        # softmax(q k^T / sqrt(d)) v
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, width))


class Mlp(nn.Module):
    def __init__(self, width, hidden):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, width, heads, drop_path, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=eps)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=eps)
        self.mlp = Mlp(width, width * MLP_RATIO)
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def block_rates(drop_path, depth):
    """Stochastic depth per block: 0 in the first, rising linearly to `drop_path` in the last."""
    return [drop_path * i / max(depth - 1, 1) for i in range(depth)]


def patch_embedding(width):
    """The 2x16x16 tubelet embedding, as `patch_embed.proj` (the VideoMAE repository's name)."""
    module = nn.Module()
    module.proj = nn.Conv3d(3, width, (TUBELET, PATCH, PATCH), stride=(TUBELET, PATCH, PATCH))
    return module


def embed_tubelets(patch_embed, clips, width):
    """[N, 3, T, H, W] -> tokens [N, T/2 * H/16 * W/16, width] in (time, row, column) order,
    with the position table added."""
    tokens = patch_embed.proj(clips).flatten(2).transpose(1, 2)
    return tokens + position_table(tokens.shape[1], width, tokens)


def run_blocks(blocks, x, grad_checkpoint=False):
    """`x` through every block; with `grad_checkpoint`, in training, each block's activations
    are recomputed in the backward pass rather than kept (memory for about a third more
    compute)."""
    for block in blocks:
        if grad_checkpoint and torch.is_grad_enabled():
            x = checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x


class VideoViT(nn.Module):
    """Patch embedding, position table, blocks and fc_norm: [N, 3, T, H, W] -> [N, width]."""

    def __init__(self, size='vit_base', drop_path=0.0, eps=1e-6, fc_norm_eps=1e-6,
                 grad_checkpoint=False):
        super().__init__()
        width, depth, heads = SIZES[check_option('VideoMAE size (BACKBONE)', size, SIZES)]
        self.patch_embed = patch_embedding(width)
        self.blocks = nn.ModuleList(Block(width, heads, rate, eps) for rate in block_rates(drop_path, depth))
        self.fc_norm = nn.LayerNorm(width, eps=fc_norm_eps)
        self.num_features = width
        self.grad_checkpoint = grad_checkpoint

    def forward(self, x):
        x = embed_tubelets(self.patch_embed, x, self.num_features)
        x = run_blocks(self.blocks, x, self.grad_checkpoint)
        return self.fc_norm(x.mean(dim=1))


def vit_layer_of(name, prefix, depth):
    """A ViT parameter's depth for layer-wise LR decay: 0 the patch embedding (under
    `prefix`), i + 1 block i, depth + 1 everything else."""
    if name.startswith(prefix + 'patch_embed.'):
        return 0
    if name.startswith(prefix + 'blocks.'):
        return int(name[len(prefix):].split('.')[1]) + 1
    return depth + 1


def init_vit_weights(module):
    """VideoMAE's initialisation: Xavier-uniform linear layers with zero biases, unit
    LayerNorms (the patch embedding keeps PyTorch's default)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class VideoMAE(nn.Module):
    def __init__(self, num_classes, size='vit_base', dropout=0.5, drop_path=0.1, eps=1e-6,
                 fc_norm_eps=1e-6, grad_checkpoint=False):
        super().__init__()
        check_option('VideoMAE size (BACKBONE)', size, SIZES)
        self.backbone = VideoViT(size, drop_path, eps, fc_norm_eps, grad_checkpoint)
        self.head = ClassifierHead(self.backbone.num_features, num_classes, dropout, init_std=0.02)
        self.apply(init_vit_weights)
        nn.init.trunc_normal_(self.head.fc.weight, std=0.02)
        with torch.no_grad():           # VideoMAE scales the head's initial weights down
            self.head.fc.weight.mul_(0.001)

    def layer_of(self, name):
        """Depth of a parameter for layer-wise LR decay: 0 the patch embedding, i + 1 block i,
        depth + 1 the rest (fc_norm, head)."""
        return vit_layer_of(name, 'backbone.', len(self.backbone.blocks))

    def forward_features(self, x):
        return self.backbone(x)

    def forward_head(self, features):
        return self.head(features)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))
