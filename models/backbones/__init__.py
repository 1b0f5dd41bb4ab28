"""2D backbones by name. Each has `num_features` and `forward_features(x) -> [N, F]`."""
from ..errors import check_option
from .bninception import BNInception, bninception
from .mfnet import MFNet, mfnet2d
from .inception_v3 import InceptionV3, inceptionv3
from .mobilenetv2 import MobileNetV2, mobilenetv2
from .resnet import ResNet, resnet

BACKBONES = {
    'resnet18': lambda **kw: resnet(18, **kw),
    'resnet34': lambda **kw: resnet(34, **kw),
    'resnet50': lambda **kw: resnet(50, **kw),
    'resnet101': lambda **kw: resnet(101, **kw),
    'bninception': bninception,
    'mfnet2d': mfnet2d,
    'mobilenetv2': mobilenetv2,
    'inceptionv3': inceptionv3,
}


def build_backbone(name, num_classes=0, in_channels=3):
    """A 2D backbone without its ImageNet classifier (num_classes=0) unless asked for."""
    key = check_option('BACKBONE', str(name).lower(), BACKBONES)
    return BACKBONES[key](num_classes=num_classes, in_channels=in_channels)


__all__ = ['BACKBONES', 'build_backbone', 'BNInception', 'InceptionV3', 'MFNet', 'MobileNetV2', 'ResNet',
           'resnet', 'bninception', 'inceptionv3', 'mfnet2d', 'mobilenetv2']
