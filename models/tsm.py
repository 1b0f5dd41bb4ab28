"""Temporal Shift Module (Lin et al., ICCV 2019) as a TSN variant.

Inside every residual block of the 2D ResNet (every other block for ResNet-101 and deeper, as
published), before the first convolution of the residual branch, 1/8 of the channels are shifted one segment back in time and 1/8 one segment forward
(zero-filled at the ends); the shortcut keeps the unshifted input ("residual shift"). On
MobileNetV2 the same in the inverted residuals with a residual sum; on BN-Inception the input
of each block is shifted as a whole (the 'block' place of the TSM authors and DLAC). This
mixes neighbouring frames at zero extra parameters and FLOPs, so a 2D network models time.

MODEL.TSM_SHIFT 'online' is the causal form of the TSM authors' online model: only 1/8 of
the channels move, one segment forward in time (each frame takes them from the previous
frame, zeros at the first), so frame t never sees a later frame and the network can run one
frame at a time on live video (models/online_tsm.py keeps the moved channels between frames).
"""
import torch
import torch.nn as nn

from .backbones.bninception import BNInception
from .backbones.mobilenetv2 import MobileNetV2, shiftable_blocks
from .backbones.resnet import BasicBlock, Bottleneck
from .errors import ModelOptionError, check_option
from .tsn import TSN


SHIFT_MODES = ('bidirectional', 'online')


def temporal_shift(x, num_segments, fold_div=8):
    """[N*T, C, H, W] -> the same shape, with channels [0, C/fold_div) taken from the next
    segment and [C/fold_div, 2C/fold_div) from the previous one."""
    nt, channels, height, width = x.shape
    x = x.view(nt // num_segments, num_segments, channels, height, width)
    fold = channels // fold_div
    pad = x.new_zeros(x.shape[0], 1, fold, height, width)
    from_next = torch.cat([x[:, 1:, :fold], pad], dim=1)
    from_previous = torch.cat([pad, x[:, :-1, fold:2 * fold]], dim=1)
    shifted = torch.cat([from_next, from_previous, x[:, :, 2 * fold:]], dim=2)
    return shifted.view(nt, channels, height, width)


def online_shift(x, num_segments, fold_div=8):
    """[N*T, C, H, W] -> the same shape, with channels [0, C/fold_div) taken from the previous
    segment (zeros at the first): causal, the online TSM's shift."""
    nt, channels, height, width = x.shape
    x = x.view(nt // num_segments, num_segments, channels, height, width)
    fold = channels // fold_div
    pad = x.new_zeros(x.shape[0], 1, fold, height, width)
    from_previous = torch.cat([pad, x[:, :-1, :fold]], dim=1)
    return torch.cat([from_previous, x[:, :, fold:]], dim=2).view(nt, channels, height, width)


class TemporalShift(nn.Module):
    """Stateless except for the segment count, which the owning TSM sets per forward pass,
    and, while an online runner steps one frame at a time, `stream`: the channels cached from
    the previous frame (a StreamSlots)."""

    def __init__(self, fold_div=8, mode='bidirectional'):
        super().__init__()
        check_option('MODEL.TSM_SHIFT', mode, SHIFT_MODES)
        self.fold_div, self.mode = fold_div, mode
        self.num_segments = 1
        self.stream = None

    def forward(self, x):
        if self.stream is not None:
            return self.stream.shift(x, self.fold_div)
        shift = online_shift if self.mode == 'online' else temporal_shift
        return shift(x, self.num_segments, self.fold_div)

    def extra_repr(self):
        return f'fold_div={self.fold_div}, mode={self.mode}'


def shift_interval(layer3_blocks):
    """1: every block shifts; 2: every other one, in ResNets whose layer3 has 23 or more
    blocks (ResNet-101, 152)."""
    return 2 if layer3_blocks >= 23 else 1


def shifted_blocks(backbone):
    """The residual blocks that shift: every block, except in networks whose res4 (layer3) has
    23 or more blocks (ResNet-101, 152), where only every other block of each stage does
    (blocks 0, 2, 4, ...), as in the TSM authors' make_temporal_shift (n_round 2) and
    mmaction2's ResNetTSM. MobileNetV2: the inverted residuals with a residual sum and an
    expansion (the TSM authors' online model). BN-Inception: the network itself, which shifts
    the input of its second stem stage and of each inception block (the 'block' place)."""
    if isinstance(backbone, MobileNetV2):
        return shiftable_blocks(backbone)
    if isinstance(backbone, BNInception):
        return [backbone]           # one shift module, used before each block ('block' place)
    stages = [getattr(backbone, f'layer{i}', None) for i in range(1, 5)]
    if any(stage is None for stage in stages):
        return []
    every = shift_interval(len(stages[2]))
    return [block for stage in stages for index, block in enumerate(stage)
            if index % every == 0 and isinstance(block, (BasicBlock, Bottleneck))]


class TSM(TSN):
    def __init__(self, num_classes, backbone='resnet50', consensus='avg', dropout=0.5,
                 partial_bn=False, modality='RGB', new_length=1, shift_div=8, shift='bidirectional'):
        super().__init__(num_classes, backbone, consensus, dropout, partial_bn, modality, new_length)
        self.shift_mode = shift
        blocks = shifted_blocks(self.backbone)
        if not blocks:
            raise ModelOptionError(f'TSM shifts inside residual or inception blocks: use a ResNet, '
                           f'bninception or mobilenetv2 BACKBONE, not {backbone!r}')
        for block in blocks:
            block.temporal_shift = TemporalShift(shift_div, shift)

    def forward_features(self, x):
        # looked up on every pass, not cached: nn.DataParallel runs copies of these modules
        for module in self.backbone.modules():
            if isinstance(module, TemporalShift):
                module.num_segments = self.num_segments(x)
        return super().forward_features(x)
