"""Multi-Fiber Network (Chen et al., ECCV 2018), in 3D (MFNet3D) and 2D (its ImageNet form).

A multi-fiber unit splits a residual unit into 16 fibers (grouped convolutions) and restores
the exchange between fibers with a cheap 1x1 "multiplexer" (conv_i1 -> conv_i2, added to the
input) before the fiber convolutions conv_m1 (3x3x3, 3D) and conv_m2 (1x3x3, 2D in time).
Every convolution is pre-activated (BN, ReLU, conv). Stages: 3, 4, 6, 3 units of 96, 192,
384, 768 channels; 16 fibers.

Parameter names follow the authors' release (conv1.conv, conv2.B01.conv_i1.bn, ..., tail.bn,
classifier), so their files load by name, and the 2D network's files inflate into the 3D one.
"""
from collections import OrderedDict

import torch.nn as nn

from ..errors import check_option
from .init import kaiming_init

STAGE_UNITS = (3, 4, 6, 3)
STAGE_WIDTHS = (96, 192, 384, 768)
FIBERS = 16
STEM_WIDTH = 16


def _conv(dim, in_planes, out_planes, kernel, stride=1, temporal=1, temporal_stride=1, groups=1):
    if dim == 2:
        return nn.Conv2d(in_planes, out_planes, kernel, stride, kernel // 2, groups=groups, bias=False)
    return nn.Conv3d(in_planes, out_planes, (temporal, kernel, kernel),
                     (temporal_stride, stride, stride), (temporal // 2, kernel // 2, kernel // 2),
                     groups=groups, bias=False)


class BnActConv(nn.Sequential):
    """Pre-activation convolution: BN, ReLU, conv (named bn / relu / conv as released)."""

    def __init__(self, dim, in_planes, out_planes, kernel=1, stride=1, temporal=1,
                 temporal_stride=1, groups=1):
        norm = nn.BatchNorm2d if dim == 2 else nn.BatchNorm3d
        super().__init__(OrderedDict([
            ('bn', norm(in_planes)), ('relu', nn.ReLU(inplace=True)),
            ('conv', _conv(dim, in_planes, out_planes, kernel, stride, temporal, temporal_stride,
                           groups))]))


class MFUnit(nn.Module):
    def __init__(self, dim, in_planes, mid_planes, out_planes, stride=1, temporal_stride=1,
                 first=False, groups=FIBERS):
        super().__init__()
        mux_planes = mid_planes // 4
        temporal = 3 if dim == 3 else 1
        self.conv_i1 = BnActConv(dim, in_planes, mux_planes)
        self.conv_i2 = BnActConv(dim, mux_planes, in_planes)
        self.conv_m1 = BnActConv(dim, in_planes, mid_planes, 3, stride, temporal, temporal_stride,
                                 groups)
        if first:
            self.conv_m2 = BnActConv(dim, mid_planes, out_planes)
            self.conv_w1 = BnActConv(dim, in_planes, out_planes, 1, stride, 1, temporal_stride)
        else:
            self.conv_m2 = BnActConv(dim, mid_planes, out_planes, 3, groups=groups)
            self.conv_w1 = None

    def forward(self, x):
        fibers = self.conv_m2(self.conv_m1(x + self.conv_i2(self.conv_i1(x))))
        shortcut = x if self.conv_w1 is None else self.conv_w1(x)
        return fibers + shortcut


class MFNet(nn.Module):
    """`dim` 3: MFNet3D on clips [N, 3, T, H, W] (conv2 halves time). `dim` 2: the ImageNet
    MFNet2D on images. `num_classes=0` leaves out the classifier (features only)."""

    def __init__(self, dim=3, num_classes=0, in_channels=3):
        super().__init__()
        check_option('MFNet dim', dim, (2, 3))
        norm = nn.BatchNorm2d if dim == 2 else nn.BatchNorm3d
        self.conv1 = nn.Sequential(OrderedDict([
            ('conv', _conv(dim, in_channels, STEM_WIDTH, 5, 2, temporal=3)),
            ('bn', norm(STEM_WIDTH)), ('relu', nn.ReLU(inplace=True))]))
        self.maxpool = (nn.MaxPool2d(3, 2, 1) if dim == 2
                        else nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        in_planes = STEM_WIDTH
        for stage, (units, width) in enumerate(zip(STAGE_UNITS, STAGE_WIDTHS), start=2):
            blocks = OrderedDict()
            for index in range(1, units + 1):
                first = index == 1
                blocks[f'B{index:02d}'] = MFUnit(
                    dim, in_planes if first else width, width, width,
                    stride=2 if first and stage > 2 else 1,
                    temporal_stride=2 if first and stage == 2 else 1, first=first)
            setattr(self, f'conv{stage}', nn.Sequential(blocks))
            in_planes = width
        self.tail = nn.Sequential(OrderedDict([('bn', norm(in_planes)), ('relu', nn.ReLU(inplace=True))]))
        self.num_features = in_planes
        self.classifier = nn.Linear(in_planes, num_classes) if num_classes else nn.Identity()
        kaiming_init(self)

    def forward_maps(self, x):
        x = self.maxpool(self.conv1(x))
        return self.tail(self.conv5(self.conv4(self.conv3(self.conv2(x)))))

    def forward_features(self, x):
        """Pooled features [N, 768]."""
        return self.forward_maps(x).flatten(2).mean(dim=2)

    def forward(self, x):
        return self.classifier(self.forward_features(x))


def mfnet2d(num_classes=1000, in_channels=3):
    return MFNet(dim=2, num_classes=num_classes, in_channels=in_channels)
