"""MobileNetV2 (Sandler et al., CVPR 2018) with torchvision's parameter names (`features.N`,
`classifier.1`), so torchvision's ImageNet file (`mobilenet_v2-b0353104.pth`) loads by name.

A 3x3 stride-2 stem to 32 channels, 17 inverted residual blocks (1x1 expansion by t, 3x3
depthwise, 1x1 linear projection; a residual sum where the shape allows), a 1x1 conv to 1280,
ReLU6 throughout. Each inverted residual has a `temporal_shift` hook on its branch input, which
TSM fills in the blocks with a residual sum and an expansion (the TSM authors' online model).
"""
import torch.nn as nn

# expansion t, output channels c, blocks n, first stride s (the paper's Table 2)
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))
LAST_CHANNELS = 1280


def conv_bn_relu(in_channels, out_channels, kernel=3, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2,
                                   groups=groups, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, in_channels, out_channels, stride, expansion):
        super().__init__()
        hidden = in_channels * expansion
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.expands = expansion != 1
        layers = [conv_bn_relu(in_channels, hidden, 1)] if self.expands else []
        layers += [conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)
        self.temporal_shift = nn.Identity()

    def forward(self, x):
        out = self.conv(self.temporal_shift(x))
        return x + out if self.use_res_connect else out


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=1000, in_channels=3):
        super().__init__()
        layers, channels = [conv_bn_relu(in_channels, 32, 3, 2)], 32
        for expansion, out_channels, blocks, stride in SETTINGS:
            for index in range(blocks):
                layers.append(InvertedResidual(channels, out_channels, stride if index == 0 else 1,
                                               expansion))
                channels = out_channels
        layers.append(conv_bn_relu(channels, LAST_CHANNELS, 1))
        self.features = nn.Sequential(*layers)
        self.num_features = LAST_CHANNELS
        self.classifier = (nn.Sequential(nn.Dropout(0.2), nn.Linear(LAST_CHANNELS, num_classes))
                           if num_classes else nn.Identity())
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out')
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x):
        """[N, C, H, W] -> pooled features [N, 1280]."""
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x):
        return self.classifier(self.forward_features(x))


def mobilenetv2(num_classes=1000, in_channels=3):
    return MobileNetV2(num_classes=num_classes, in_channels=in_channels)


def shiftable_blocks(backbone):
    """The inverted residuals TSM shifts in: a residual sum and an expansion (the TSM
    authors' make_temporal_shift for MobileNetV2: 'len(m.conv) == 8 and m.use_res_connect')."""
    return [m for m in backbone.modules()
            if isinstance(m, InvertedResidual) and m.use_res_connect and m.expands]

