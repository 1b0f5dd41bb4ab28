"""I3D with a ResNet backbone (Carreira & Zisserman 2017, in the ResNet form of the non-local
and SlowFast papers): a 2D ResNet inflated to 3D, 5x7x7 stem, 3x1x1 kernels in alternating
bottlenecks, time halved after res2. Input [N, 3, T, H, W] (dense clip), output [N, K].
mmaction2's I3D (its 32x2x1 configs) also halves time in the stem conv and the stem max pool:
`stem_temporal_stride=(2, 2)`. `non_local` (MODEL.NON_LOCAL): I3D-NL, with a non-local block
after every other block of res3 and res4 (5 for ResNet-50).
"""

from .backbones.resnet3d import ResNet3dPathway
from .heads import ClassifierHead, PooledRecognizer


class I3D(PooledRecognizer):
    def __init__(self, num_classes, depth=50, dropout=0.5, in_channels=3, stem_temporal_stride=(1, 1),
                 inflate_conv2=False, non_local=None):
        super().__init__()
        self.backbone = ResNet3dPathway(depth, kind='i3d', in_channels=in_channels, temporal_pool=True,
                                        stem_temporal_stride=tuple(stem_temporal_stride),
                                        inflate_conv2=inflate_conv2, non_local=non_local)
        self.head = ClassifierHead(self.backbone.num_features, num_classes, dropout, init_std=0.01)
