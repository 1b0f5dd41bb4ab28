"""Embedded-Gaussian non-local block (Wang et al., "Non-local Neural Networks", CVPR 2018), in
the form of mmaction2's (mmcv's NonLocal3d) and the original DLAC's I3D-NL:

    y = x + BN(W_out * (softmax(theta(x)^T phi(x)) g(x)))

theta, phi and g are 1x1x1 convs to half the channels; with `sub_sample` the outputs of phi
and g are max-pooled 1x2x2 (mmaction2's i3d_nl configs; DLAC's I3D does not pool); `scaled`
divides the affinities by sqrt(channels / 2) before the softmax (mmaction2's use_scale). The
output BN starts at zero, so a new block begins as the identity.
"""
import torch.nn as nn


class NonLocal3d(nn.Module):
    def __init__(self, channels, sub_sample=True, scaled=False):
        super().__init__()
        inner = max(channels // 2, 1)
        self.theta = nn.Conv3d(channels, inner, 1)
        self.phi = nn.Conv3d(channels, inner, 1)
        self.g = nn.Conv3d(channels, inner, 1)
        self.out = nn.Sequential(nn.Conv3d(inner, channels, 1), nn.BatchNorm3d(channels))
        self.pool = nn.MaxPool3d((1, 2, 2)) if sub_sample else nn.Identity()
        self.scaled = scaled
        for conv in (self.theta, self.phi, self.g, self.out[0]):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x):
        batch, _, *size = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)            # [N, THW, C/2]
        phi = self.pool(self.phi(x)).flatten(2)                      # [N, C/2, THW']
        g = self.pool(self.g(x)).flatten(2).transpose(1, 2)          # [N, THW', C/2]
        affinity = theta @ phi
        if self.scaled:
            affinity = affinity / theta.shape[-1] ** 0.5
        y = (affinity.softmax(dim=-1) @ g).transpose(1, 2).reshape(batch, -1, *size)
        return x + self.out(y)


def add_non_local(stage, sub_sample=True, scaled=False):
    """A non-local block after every other block of a stage (its 2nd, 4th, ...): the I3D-NL
    places of the non-local paper, PySlowFast and mmaction2 (5 blocks in ResNet-50's res3, res4)."""
    for index in range(1, len(stage), 2):
        block = stage[index]
        channels = (block.bn3 if hasattr(block, 'bn3') else block.bn2).num_features
        block.non_local = NonLocal3d(channels, sub_sample, scaled)
    return stage

