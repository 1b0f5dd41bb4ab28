"""R3D-18, MC3-18 and R(2+1)D-18 (Tran et al., "A Closer Look at Spatiotemporal Convolutions
for Action Recognition", CVPR 2018) as torchvision's video models define them, with their
parameter names under `backbone.` (and `head.fc`), so torchvision's Kinetics-400 files
(`r3d_18-b3b3357e.pth`, `mc3_18-a90a0ba3.pth`, `r2plus1d_18-91a641e6.pth`) load by name.

All three: a stem, four stages of two basic blocks (64, 128, 256, 512 channels; stride 2 in
space and time from the second stage on), global average, fc. They differ in the 3x3x3 conv:
  r3d       full 3x3x3 convolutions; stem 3x7x7.
  mc3       3x3x3 in the first stage, 1x3x3 (no time) after it, downsampling space only.
  r2plus1d  each 3x3x3 split into 1x3x3 (to M channels), BN, ReLU, 3x1x1, with M chosen so
            the pair has the 3x3x3's parameters; stem 1x7x7 to 45 channels then 3x1x1 to 64.
Input [N, 3, T, H, W] (torchvision's: 16 frames at 112x112, Kinetics mean/std below).
"""
import torch.nn as nn

from .errors import check_option
from .heads import ClassifierHead, PooledRecognizer

KINETICS_VIDEO = {'DATASET.MEAN': [0.43216, 0.394666, 0.37645],
                  'DATASET.STD': [0.22803, 0.22145, 0.216989],
                  'DATASET.CHANNEL_ORDER': 'RGB', 'DATASET.VALUE_RANGE': 1.0}


def full_conv(in_planes, out_planes, mid_planes, stride):
    return nn.Conv3d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def spatial_conv(in_planes, out_planes, mid_planes, stride):
    return nn.Conv3d(in_planes, out_planes, (1, 3, 3), stride=(1, stride, stride),
                     padding=(0, 1, 1), bias=False)


def factored_conv(in_planes, out_planes, mid_planes, stride):
    """(2+1)D: 1x3x3 to mid_planes, BN, ReLU, 3x1x1 (names 0, 1, 3 as torchvision's)."""
    return nn.Sequential(
        nn.Conv3d(in_planes, mid_planes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1),
                  bias=False),
        nn.BatchNorm3d(mid_planes), nn.ReLU(inplace=True),
        nn.Conv3d(mid_planes, out_planes, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0),
                  bias=False))


# MODEL_NAME -> the conv of each stage, and whether stage downsampling strides time too
VARIANTS = {
    'r3d': ((full_conv,) * 4, True),
    'mc3': ((full_conv,) + (spatial_conv,) * 3, False),
    'r2plus1d': ((factored_conv,) * 4, True),
}


class BasicBlock3d(nn.Module):
    def __init__(self, in_planes, planes, make_conv, stride, time_stride):
        super().__init__()
        # (2+1)D: the middle width that gives the pair a 3x3x3's parameters, computed from the
        # block's input width and used in both of its convs (as torchvision does)
        mid = (in_planes * planes * 27) // (in_planes * 9 + 3 * planes)
        self.conv1 = nn.Sequential(make_conv(in_planes, planes, mid, stride), nn.BatchNorm3d(planes),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(make_conv(planes, planes, mid, 1), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            step = (stride if time_stride else 1, stride, stride)
            self.downsample = nn.Sequential(nn.Conv3d(in_planes, planes, 1, stride=step, bias=False),
                                            nn.BatchNorm3d(planes))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


class VideoResNetBackbone(nn.Module):
    def __init__(self, variant, layers=(2, 2, 2, 2)):
        super().__init__()
        convs, time_stride = VARIANTS[check_option('video ResNet variant (MODEL_NAME)', variant, VARIANTS)]
        if variant == 'r2plus1d':
            self.stem = nn.Sequential(
                nn.Conv3d(3, 45, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
                nn.BatchNorm3d(45), nn.ReLU(inplace=True),
                nn.Conv3d(45, 64, (3, 1, 1), padding=(1, 0, 0), bias=False),
                nn.BatchNorm3d(64), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(
                nn.Conv3d(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
                nn.BatchNorm3d(64), nn.ReLU(inplace=True))
        in_planes = 64
        for index, (blocks, planes, make_conv) in enumerate(zip(layers, (64, 128, 256, 512), convs)):
            stride = 1 if index == 0 else 2
            stage = [BasicBlock3d(in_planes if i == 0 else planes, planes, make_conv,
                                  stride if i == 0 else 1, time_stride) for i in range(blocks)]
            self.add_module(f'layer{index + 1}', nn.Sequential(*stage))
            in_planes = planes
        self.num_features = in_planes
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        x = self.stem(x)
        for index in range(1, 5):
            x = getattr(self, f'layer{index}')(x)
        return x


class VideoResNet(PooledRecognizer):
    """One of VARIANTS with a dropout + fc head (torchvision's has no dropout: set
    MODEL.DROPOUT 0 to match it exactly in training)."""

    def __init__(self, num_classes, variant='r2plus1d', dropout=0.5):
        super().__init__()
        check_option('video ResNet variant (MODEL_NAME)', variant, VARIANTS)
        self.backbone = VideoResNetBackbone(variant)
        self.head = ClassifierHead(self.backbone.num_features, num_classes, dropout, init_std=0.01)
