"""Weight initialisation shared by the backbones trained from scratch."""
import torch.nn as nn


def kaiming_init(model):
    """Kaiming-normal convolutions (fan-out, as torchvision) and unit-scale, zero-shift BNs."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
