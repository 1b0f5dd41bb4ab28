"""MFNet3D recognition model: the 3D multi-fiber network with DLAC's dropout + fc head.
Input [N, 3, T, H, W] (16 x 224 x 224 in the paper), output [N, K]."""
import torch.nn as nn

from .backbones.mfnet import MFNet
from .heads import ClassifierHead


class MFNet3D(nn.Module):
    def __init__(self, num_classes, dropout=0.5, in_channels=3):
        super().__init__()
        self.backbone = MFNet(dim=3, num_classes=0, in_channels=in_channels)
        self.head = ClassifierHead(self.backbone.num_features, num_classes, dropout, init_std=0.01)

    def forward_features(self, x):
        return self.backbone.forward_features(x)

    def forward_head(self, features):
        return self.head(features)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))
