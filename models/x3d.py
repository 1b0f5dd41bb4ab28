"""X3D (Feichtenhofer 2020): a small 2D-like network expanded along frames, frame rate, width,
depth and resolution. Input [N, 3, T, H, W] (a dense clip), output [N, K].

Stem: a 1x3x3 spatial conv (stride 2) then a 5x1x1 depthwise temporal conv, BN, ReLU. Four
stages of bottlenecks: 1x1x1 expansion (2.25x), BN, ReLU, a 3x3x3 depthwise conv (stride 2 in
space in each stage's first block), BN, squeeze-excitation in every other block (1/16 of the
channels), Swish, a 1x1x1 projection, BN; residual sum, ReLU. Head: a 1x1x1 conv to 2.25x
the last width, BN, ReLU, global average, a 1x1x1 conv to 2048, ReLU, dropout, fc.

The variants differ in width and depth factors and in the clip they were trained on:
XS 4x160, S 13x160, M 16x224 (2.2x depth), L 16x312 (5.0x depth); all 2.0x width.
"""
import math

import torch
import torch.nn as nn

from .backbones.init import kaiming_init
from .errors import check_option

VARIANTS = {          # depth factor, frames, crop: the X3D paper's Table 3 / pytorchvideo hub
    'x3d_xs': (2.2, 4, 160),
    'x3d_s': (2.2, 13, 160),
    'x3d_m': (2.2, 16, 224),
    'x3d_l': (5.0, 16, 312),
}
WIDTH_FACTOR, BOTTLENECK_FACTOR, STEM_WIDTH, HEAD_WIDTH = 2.0, 2.25, 12, 2048
STAGE_DEPTHS, SE_RATIO = (1, 2, 5, 3), 0.0625


def round_width(width, multiplier, divisor=8):
    """Channels times `multiplier`, to a multiple of `divisor` (never below 90% of exact)."""
    exact = width * multiplier
    rounded = max(divisor, int(exact + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * exact else rounded)


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class SqueezeExcite(nn.Module):
    """Channel gates from the clip's average: fc1 (1x1x1), ReLU, fc2, sigmoid."""

    def __init__(self, channels, ratio=SE_RATIO):
        super().__init__()
        reduced = round_width(channels, ratio)
        self.fc1 = nn.Conv3d(channels, reduced, 1)
        self.fc2 = nn.Conv3d(reduced, channels, 1)

    def forward(self, x):
        gate = self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3, 4), keepdim=True))))
        return x * torch.sigmoid(gate)


class X3DBlock(nn.Module):
    """The bottleneck with its shortcut (a strided 1x1x1 conv and BN when the shape changes)."""

    def __init__(self, dim_in, dim_inner, dim_out, stride, squeeze_excite):
        super().__init__()
        self.conv_a = nn.Conv3d(dim_in, dim_inner, 1, bias=False)
        self.bn_a = nn.BatchNorm3d(dim_inner)
        self.conv_b = nn.Conv3d(dim_inner, dim_inner, 3, stride=(1, stride, stride), padding=1,
                                groups=dim_inner, bias=False)
        self.bn_b = nn.BatchNorm3d(dim_inner)
        self.se = SqueezeExcite(dim_inner) if squeeze_excite else nn.Identity()
        self.swish = Swish()
        self.conv_c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.bn_c = nn.BatchNorm3d(dim_out)
        self.shortcut = None
        if dim_in != dim_out or stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv3d(dim_in, dim_out, 1, stride=(1, stride, stride), bias=False),
                nn.BatchNorm3d(dim_out))

    def forward(self, x):
        out = torch.relu(self.bn_a(self.conv_a(x)))
        out = self.swish(self.se(self.bn_b(self.conv_b(out))))
        out = self.bn_c(self.conv_c(out))
        return torch.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class X3DBackbone(nn.Module):
    """Stem and the four stages (layer1..layer4) of one variant."""

    def __init__(self, depth_factor):
        super().__init__()
        width = round_width(STEM_WIDTH, WIDTH_FACTOR)
        self.stem = nn.Sequential()
        self.stem.add_module('conv_xy', nn.Conv3d(3, width, (1, 3, 3), stride=(1, 2, 2),
                                                  padding=(0, 1, 1), bias=False))
        self.stem.add_module('conv_t', nn.Conv3d(width, width, (5, 1, 1), padding=(2, 0, 0),
                                                 groups=width, bias=False))
        self.stem.add_module('bn', nn.BatchNorm3d(width))
        self.stem.add_module('relu', nn.ReLU(inplace=True))
        dim_in, stage_width = width, STEM_WIDTH
        for index, depth in enumerate(STAGE_DEPTHS, start=1):
            dim_out = round_width(stage_width, WIDTH_FACTOR)
            self.inner = int(BOTTLENECK_FACTOR * dim_out)
            blocks = [X3DBlock(dim_in if i == 0 else dim_out, self.inner, dim_out,
                               2 if i == 0 else 1, squeeze_excite=i % 2 == 0)
                      for i in range(int(math.ceil(depth_factor * depth)))]
            self.add_module(f'layer{index}', nn.Sequential(*blocks))
            dim_in, stage_width = dim_out, round_width(stage_width, 2.0)
        self.num_features = dim_in

    def forward(self, x):
        x = self.stem(x)
        for index in range(1, len(STAGE_DEPTHS) + 1):
            x = getattr(self, f'layer{index}')(x)
        return x


class X3DHead(nn.Module):
    """conv_5 (1x1x1 to 2.25x the last width), BN, ReLU, global average, lin_5 (1x1x1 to
    2048), ReLU, dropout, fc."""

    def __init__(self, dim_in, dim_inner, num_classes, dropout):
        super().__init__()
        self.conv_5 = nn.Conv3d(dim_in, dim_inner, 1, bias=False)
        self.bn_5 = nn.BatchNorm3d(dim_inner)
        self.lin_5 = nn.Conv3d(dim_inner, HEAD_WIDTH, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(HEAD_WIDTH, num_classes)

    def features(self, maps):
        pooled = torch.relu(self.bn_5(self.conv_5(maps))).mean(dim=(2, 3, 4), keepdim=True)
        return torch.relu(self.lin_5(pooled)).flatten(1)

    def forward(self, features):
        return self.fc(self.dropout(features))


class X3D(nn.Module):
    def __init__(self, num_classes, variant='x3d_m', dropout=0.5):
        super().__init__()
        check_option('X3D variant (BACKBONE)', variant, VARIANTS)
        self.backbone = X3DBackbone(VARIANTS[variant][0])
        self.head = X3DHead(self.backbone.num_features, self.backbone.inner, num_classes, dropout)
        self.num_features = HEAD_WIDTH
        kaiming_init(self)
        for module in self.modules():     # each block starts as the identity (PySlowFast's
            if isinstance(module, X3DBlock):          # ZERO_INIT_FINAL_BN, on in its X3D configs)
                nn.init.zeros_(module.bn_c.weight)
        nn.init.normal_(self.head.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.head.fc.bias)

    def forward_features(self, x):
        return self.head.features(self.backbone(x))

    def forward_head(self, features):
        return self.head(features)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))
