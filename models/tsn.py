"""Temporal Segment Network (Wang et al., ECCV 2016).

A 2D backbone scores each sampled segment frame independently; a consensus (average) over
the segments gives the video score. Input [N, C, T, H, W] (T segments), output [N, K].
"""
import torch.nn as nn

from .backbones import build_backbone
from .heads import ClassifierHead, segment_consensus


class TSN(nn.Module):
    def __init__(self, num_classes, backbone='resnet18', consensus='avg', dropout=0.5,
                 partial_bn=False, in_channels=3):
        super().__init__()
        if consensus not in ('avg', 'max'):
            raise KeyError(f"unknown MODEL.CONSENSUS {consensus!r}; choose one of ['avg', 'max']")
        self.backbone = build_backbone(backbone, num_classes=0, in_channels=in_channels)
        self.head = ClassifierHead(self.backbone.num_features, num_classes, dropout)
        self.consensus = consensus
        self.partial_bn = partial_bn

    def forward_features(self, x):
        """[N, C, T, H, W] -> per-segment features [N, T, F]."""
        n, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)
        return self.backbone.forward_features(frames).view(n, t, -1)

    def forward_head(self, features):
        """[N, T, F] -> consensus of per-segment scores [N, K]."""
        return segment_consensus(self.head(features), self.consensus)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def train(self, mode=True):
        """Partial BN (TSN): with few videos, keep every BN layer but the first frozen in
        eval mode, so pretrained statistics are not destroyed by small, correlated batches."""
        super().train(mode)
        if mode and self.partial_bn:
            batch_norms = [m for m in self.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
            for module in batch_norms[1:]:
                module.eval()
                module.weight.requires_grad_(False)
                module.bias.requires_grad_(False)
        return self
