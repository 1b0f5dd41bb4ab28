"""Pieces shared by every recognition model: the classifier head and segment consensus."""
import torch.nn as nn

from .errors import check_option


class ClassifierHead(nn.Module):
    """Dropout then a linear classifier, initialised small as in TSN (std 0.001)."""

    def __init__(self, in_features, num_classes, dropout=0.5, init_std=0.001):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)
        self.init_std = init_std
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.normal_(self.fc.weight, 0.0, self.init_std)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features):
        return self.fc(self.dropout(features))


class PooledRecognizer(nn.Module):
    """A 3D network whose clip features are its backbone's maps averaged: subclasses set
    `self.backbone` and `self.head` (timm's split: forward_features, then forward_head)."""

    def forward_features(self, x):
        return global_pool(self.backbone(x))

    def forward_head(self, features):
        return self.head(features)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def global_pool(maps):
    """[N, C, T, H, W] or [N, C, H, W] feature maps -> [N, C] by averaging."""
    return maps.flatten(2).mean(dim=2)


CONSENSUS = {'avg': lambda scores: scores.mean(dim=1),
             'max': lambda scores: scores.max(dim=1).values}


def segment_consensus(scores, kind='avg'):
    """[N, T, K] per-segment scores -> [N, K] video scores."""
    return CONSENSUS[check_option('MODEL.CONSENSUS', kind, CONSENSUS)](scores)
