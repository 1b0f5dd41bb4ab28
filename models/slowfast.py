"""SlowFast (Feichtenhofer et al., ICCV 2019).

One input clip [N, 3, T, H, W] feeds both pathways: the Fast pathway sees all T frames with
beta (1/8) of the channels; the Slow pathway sees every alpha-th frame with full channels.
After the stem and res2..res4, a time-strided convolution (kernel k x 1 x 1, stride alpha,
2 x the fast channels) carries Fast features into Slow, where they are concatenated.
The head pools each pathway and classifies their concatenation.

Published settings (PySlowFast / mmaction2): 4x16 = alpha 8, fusion kernel 5, 32 input frames
at stride 2; 8x8 = alpha 4, fusion kernel 7, 32 input frames at stride 2.
"""
import torch
import torch.nn as nn

from .backbones.resnet3d import ResNet3dPathway
from .errors import check_option
from .heads import ClassifierHead, global_pool


LATERAL_FORMS = ('conv_bn_relu', 'conv')
SLOW_FRAME_CHOICES = ('stride', 'linspace')


def lateral_connection(fast_channels, alpha, kernel, ratio=2, form='conv_bn_relu'):
    """Fast -> Slow: a time-strided conv, then BN and ReLU (PySlowFast, pytorchvideo,
    mmaction2 with lateral_norm) or nothing more (`form` 'conv': mmaction2's default)."""
    layers = [nn.Conv3d(fast_channels, fast_channels * ratio, (kernel, 1, 1), stride=(alpha, 1, 1),
                        padding=(kernel // 2, 0, 0), bias=False)]
    if form == 'conv_bn_relu':
        layers += [nn.BatchNorm3d(fast_channels * ratio), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SlowFast(nn.Module):
    """`slow_frames`: which frames the Slow pathway takes from the T of the clip: 'stride',
    every alpha-th (0, 8, 16, 24 of 32; mmaction2, ours), or 'linspace', T / alpha frames
    evenly spread from the first to the last (0, 10, 20, 31; PySlowFast's PackPathway and
    pytorchvideo). Weights trained one way should be run the same way."""

    def __init__(self, num_classes, depth=50, alpha=8, beta_inv=8, fusion_kernel=5, dropout=0.5,
                 in_channels=3, lateral_ratio=2, lateral='conv_bn_relu', slow_frames='stride'):
        super().__init__()
        check_option('MODEL.SLOWFAST_LATERAL', lateral, LATERAL_FORMS)
        check_option('MODEL.SLOWFAST_SLOW_FRAMES', slow_frames, SLOW_FRAME_CHOICES)
        self.alpha, self.slow_frames = alpha, slow_frames
        fast_width = 64 // beta_inv
        self.fast = ResNet3dPathway(depth, kind='fast', width=fast_width, in_channels=in_channels)
        # what the Fast pathway hands over: after its stem and after res2, res3, res4
        fast_stage = [fast_width] + self.fast.stage_channels[:3]
        self.slow = ResNet3dPathway(depth, kind='slow', width=64, in_channels=in_channels,
                                    lateral_channels=[c * lateral_ratio for c in fast_stage])
        self.lateral = nn.ModuleList(lateral_connection(c, alpha, fusion_kernel, lateral_ratio, lateral)
                                     for c in fast_stage)
        self.num_features = self.slow.num_features + self.fast.num_features
        self.head = ClassifierHead(self.num_features, num_classes, dropout, init_std=0.01)

    def inflation_targets(self):
        """A 2D ImageNet ResNet file inflates into the Slow pathway (the Fast one is 1/8 wide)."""
        return [self.slow]

    def pathways(self, x):
        """(Slow input, Fast input): the Slow pathway's frames chosen as `slow_frames` says."""
        frames = x.shape[2]
        if frames % self.alpha:
            raise ValueError(f'SlowFast needs a frame count divisible by alpha={self.alpha}, '
                             f'got {frames} (set DATA.CLIP_LEN to a multiple of {self.alpha})')
        if self.slow_frames == 'linspace':
            picks = torch.linspace(0, frames - 1, frames // self.alpha, device=x.device).long()
            return x.index_select(2, picks), x
        return x[:, :, ::self.alpha], x

    def forward_pathways(self, x):
        """[N, 3, T, H, W] -> (Slow maps [N, C_s, T/alpha, h, w], Fast maps [N, C_f, T, h, w])."""
        slow, fast = self.pathways(x)
        slow, fast = self.slow.stem(slow), self.fast.stem(fast)
        stages = zip((self.slow.layer1, self.slow.layer2, self.slow.layer3, self.slow.layer4),
                     (self.fast.layer1, self.fast.layer2, self.fast.layer3, self.fast.layer4))
        for index, (slow_stage, fast_stage) in enumerate(stages):
            slow = slow_stage(torch.cat([slow, self.lateral[index](fast)], dim=1))
            fast = fast_stage(fast)
        return slow, fast

    def forward_features(self, x):
        slow, fast = self.forward_pathways(x)
        return torch.cat([global_pool(slow), global_pool(fast)], dim=1)

    def forward_head(self, features):
        return self.head(features)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))
