"""3D ResNet pathways inflated from torchvision's ResNet (I3D, and each SlowFast pathway).

Parameter names are torchvision's (conv1, bn1, layer1..4 with conv1/conv2/... and downsample),
so `models.weights.load_backbone_state` maps a 2D ImageNet file onto them name by name. Which blocks
get a temporal kernel follows PySlowFast's tables for the non-local / SlowFast papers.
"""
import torch.nn as nn

from ..errors import check_option
from .non_local import add_non_local
from .resnet import OPS_3D, RESNET_DEPTHS, BasicBlock, init_resnet_weights, make_res_layer

# temporal kernel of: the stem, then each block of layer1..4 (a pattern repeated over the
# stage's blocks), as in the papers' I3D-R50, SlowFast slow and fast pathways
TEMPORAL_KERNELS = {
    'i3d': (5, ((3,), (3, 1), (3, 1), (1, 3))),
    'slow': (1, ((1,), (1,), (3,), (3,))),
    'fast': (5, ((3,), (3,), (3,), (3,))),
}


def stage_temporal_kernels(pattern, blocks):
    return [pattern[i % len(pattern)] for i in range(blocks)]


class ResNet3dPathway(nn.Module):
    """Stem (T x 7 x 7 conv, 1x3x3 max pool) and four residual stages.

    `width` is the stem's channel count (64; the SlowFast fast pathway uses 64 * beta).
    `lateral_channels` adds input channels to layer1..4 for what SlowFast fuses in from the
    fast pathway. `temporal_pool` halves time after layer1 (PySlowFast's I3D pool1).
    `stem_temporal_stride` (conv, max pool): (1, 1) in PySlowFast, (2, 2) in mmaction2's I3D.
    `inflate_conv2`: BasicBlocks (depth 18/34) inflate their second conv too (mmaction2).
    `non_local`: None, or the NonLocal3d options (sub_sample, scaled) for blocks after every
    other block of layer2 and layer3 (I3D-NL).
    """

    def __init__(self, depth=50, kind='i3d', width=64, in_channels=3, lateral_channels=(0, 0, 0, 0),
                 temporal_pool=False, stem_temporal_stride=(1, 1), inflate_conv2=False,
                 non_local=None):
        super().__init__()
        block, layers = RESNET_DEPTHS[check_option('ResNet depth', depth, RESNET_DEPTHS)]
        stem_kernel, patterns = TEMPORAL_KERNELS[check_option('3D ResNet pathway kind', kind, TEMPORAL_KERNELS)]
        conv_stride, pool_stride = stem_temporal_stride
        self.conv1 = nn.Conv3d(in_channels, width, (stem_kernel, 7, 7), stride=(conv_stride, 2, 2),
                               padding=(stem_kernel // 2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(pool_stride, 2, 2), padding=(0, 1, 1))
        block_options = {'inflate_conv2': True} if inflate_conv2 and block is BasicBlock else {}
        self.temporal_pool = nn.MaxPool3d((2, 1, 1), (2, 1, 1)) if temporal_pool else nn.Identity()
        self.stage_channels = []
        inplanes = width
        for index, blocks in enumerate(layers):
            planes = width * 2 ** index
            layer = make_res_layer(block, inplanes + lateral_channels[index], planes, blocks,
                                   stride=1 if index == 0 else 2, ops=OPS_3D,
                                   temporal_kernels=stage_temporal_kernels(patterns[index], blocks),
                                   **block_options)
            setattr(self, f'layer{index + 1}', layer)
            inplanes = planes * block.expansion
            self.stage_channels.append(inplanes)
        self.num_features = inplanes
        init_resnet_weights(self)
        if non_local is not None:         # after the init: its output BN starts at zero
            add_non_local(self.layer2, **non_local)
            add_non_local(self.layer3, **non_local)

    def stem(self, x):
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x):
        """[N, C, T, H, W] -> feature maps [N, num_features, T', H/32, W/32]."""
        x = self.temporal_pool(self.layer1(self.stem(x)))
        return self.layer4(self.layer3(self.layer2(x)))
