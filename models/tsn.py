"""Temporal Segment Network (Wang et al., ECCV 2016).

A 2D backbone scores each sampled segment frame independently; a consensus (average) over
the segments gives the video score. Input [N, C, T, H, W] (T segments), output [N, K].
With MODALITY Flow or RGBDiff, each segment brings several frames, stacked as channels (see
modality.py).
"""
import torch.nn as nn

from .backbones import build_backbone
from .errors import check_option
from .heads import CONSENSUS, ClassifierHead, segment_consensus
from .modality import MODALITIES, frames_per_segment, input_channels, stack_segments


class TSN(nn.Module):
    def __init__(self, num_classes, backbone='resnet18', consensus='avg', dropout=0.5,
                 partial_bn=False, modality='RGB', new_length=1):
        super().__init__()
        check_option('MODEL.CONSENSUS', consensus, CONSENSUS)
        check_option('MODALITY', modality, MODALITIES)
        self.modality, self.new_length = modality, new_length
        self.backbone = build_backbone(backbone, num_classes=0,
                                       in_channels=input_channels(modality, new_length))
        self.head = ClassifierHead(self.backbone.num_features, num_classes, dropout)
        self.consensus = consensus
        self.partial_bn = partial_bn
        if partial_bn:
            # decided here, before an optimizer or DDP sees the parameters: DDP registers the
            # parameters that need gradients when it wraps the model, and waits for exactly those
            for module in partial_bn_layers(self.backbone):
                if module.affine:
                    module.weight.requires_grad_(False)
                    module.bias.requires_grad_(False)

    def num_segments(self, x):
        return x.shape[2] // frames_per_segment(self.modality, self.new_length)

    def forward_features(self, x):
        """[N, C, T', H, W] -> per-segment features [N, T, F]."""
        segments, t = stack_segments(x, self.modality, self.new_length)
        return self.backbone.forward_features(segments).view(x.shape[0], t, -1)

    def forward_head(self, features):
        """[N, T, F] -> consensus of per-segment scores [N, K]."""
        return segment_consensus(self.head(features), self.consensus)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def train(self, mode=True):
        """Partial BN (TSN): with few videos, keep every BN layer but the first frozen in
        eval mode, so pretrained statistics are not destroyed by small, correlated batches.
        Their affine parameters were frozen when the model was built."""
        super().train(mode)
        if mode and self.partial_bn:
            for module in partial_bn_layers(self.backbone):
                module.eval()
        return self


def partial_bn_layers(backbone):
    """The BN layers partial BN freezes: all but the first, of every BN type (BatchNorm2d,
    and SyncBatchNorm after nn.SyncBatchNorm.convert_sync_batchnorm)."""
    return [m for m in backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)][1:]
