"""ResNet with torchvision's parameter names (conv1, bn1, layer1..4, fc, downsample.0/1), so an
ImageNet state-dict file in torchvision's format loads by name.

The residual blocks are written once for 2D and 3D: a block asks an `ops` object for its
convolutions and norms. `OPS_2D` builds torchvision's layers; `OPS_3D` builds the same layers
with a temporal extent (the I3D / SlowFast inflation), keeping every parameter name, so a 2D
weight file maps onto a 3D network name by name.
"""
import torch
import torch.nn as nn

from ..errors import check_option
from .init import kaiming_init


class Ops2d:
    """Layers of a 2D network; `temporal` is ignored."""
    norm = nn.BatchNorm2d

    @staticmethod
    def conv(in_planes, out_planes, kernel, stride=1, temporal=1):
        return nn.Conv2d(in_planes, out_planes, kernel, stride=stride, padding=kernel // 2,
                         bias=False)


class Ops3d:
    """Layers of an inflated 3D network: kernel (temporal, k, k), spatial stride only."""
    norm = nn.BatchNorm3d

    @staticmethod
    def conv(in_planes, out_planes, kernel, stride=1, temporal=1):
        return nn.Conv3d(in_planes, out_planes, (temporal, kernel, kernel),
                         stride=(1, stride, stride), padding=(temporal // 2, kernel // 2, kernel // 2),
                         bias=False)


OPS_2D, OPS_3D = Ops2d(), Ops3d()


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; in 3D the first one carries the temporal kernel (PySlowFast)."""
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, ops=OPS_2D, temporal_kernel=1,
                 inflate_conv2=False):
        super().__init__()
        self.temporal_shift = nn.Identity()   # TSM puts its shift here (no parameters)
        self.conv1 = ops.conv(inplanes, planes, 3, stride, temporal_kernel)
        self.bn1 = ops.norm(planes)
        self.relu = nn.ReLU(inplace=True)
        # mmaction2's BasicBlock3d gives the second conv the temporal kernel too
        self.conv2 = ops.conv(planes, planes, 3, temporal=temporal_kernel if inflate_conv2 else 1)
        self.bn2 = ops.norm(planes)
        self.downsample = downsample
        self.non_local = nn.Identity()        # I3D-NL puts a NonLocal3d here

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(self.temporal_shift(x))))
        out = self.bn2(self.conv2(out))
        return self.non_local(self.relu(out + identity))


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv), as in torchvision; in 3D the first 1x1
    conv carries the temporal kernel (Tx1x1), as in the non-local / SlowFast I3D-R50."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, ops=OPS_2D, temporal_kernel=1):
        super().__init__()
        self.temporal_shift = nn.Identity()
        self.conv1 = ops.conv(inplanes, planes, 1, temporal=temporal_kernel)
        self.bn1 = ops.norm(planes)
        self.conv2 = ops.conv(planes, planes, 3, stride)
        self.bn2 = ops.norm(planes)
        self.conv3 = ops.conv(planes, planes * self.expansion, 1)
        self.bn3 = ops.norm(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.non_local = nn.Identity()        # I3D-NL puts a NonLocal3d here

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(self.temporal_shift(x))))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.non_local(self.relu(out + identity))


def make_res_layer(block, inplanes, planes, blocks, stride=1, ops=OPS_2D, temporal_kernels=None,
                   **block_options):
    """One ResNet stage (torchvision's `layerN`): `blocks` blocks, the first one strided and
    projecting the shortcut when the shape changes. `temporal_kernels` gives each block's
    temporal kernel in 3D; `block_options` go to every block (BasicBlock's inflate_conv2)."""
    temporal_kernels = temporal_kernels or [1] * blocks
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(ops.conv(inplanes, planes * block.expansion, 1, stride),
                                   ops.norm(planes * block.expansion))
    layers = [block(inplanes, planes, stride, downsample, ops, temporal_kernels[0], **block_options)]
    layers += [block(planes * block.expansion, planes, ops=ops, temporal_kernel=temporal_kernels[i],
                     **block_options) for i in range(1, blocks)]
    return nn.Sequential(*layers)


def init_resnet_weights(model):
    """Kaiming-normal convolutions, unit BN, and a zero-initialised last BN in each residual
    branch, so every block starts as the identity: training from scratch on small data is
    markedly more stable."""
    kaiming_init(model)
    for module in model.modules():
        if isinstance(module, Bottleneck):
            nn.init.zeros_(module.bn3.weight)
        elif isinstance(module, BasicBlock):
            nn.init.zeros_(module.bn2.weight)


class ResNet(nn.Module):
    """`num_classes=0` drops the ImageNet classifier: the model then returns pooled features."""

    def __init__(self, block, layers, num_classes=1000, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        inplanes = 64
        for index, (planes, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if index == 0 else 2
            setattr(self, f'layer{index + 1}', make_res_layer(block, inplanes, planes, blocks, stride))
            inplanes = planes * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = 512 * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        init_resnet_weights(self)

    def forward_maps(self, x):
        """[N, C, H, W] -> last feature maps [N, num_features, H/32, W/32]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_features(self, x):
        """[N, C, H, W] -> pooled features [N, num_features]."""
        return torch.flatten(self.avgpool(self.forward_maps(x)), 1)

    def forward(self, x):
        return self.fc(self.forward_features(x))


RESNET_DEPTHS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resnet(depth, num_classes=1000, in_channels=3):
    block, layers = RESNET_DEPTHS[check_option('ResNet depth', depth, RESNET_DEPTHS)]
    return ResNet(block, layers, num_classes=num_classes, in_channels=in_channels)
