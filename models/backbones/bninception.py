"""BN-Inception (Inception v2 with batch norm, Ioffe & Szegedy 2015), the backbone of TSN.

Layer names follow the Caffe-converted weight files TSN and its PyTorch ports distribute
(`conv1_7x7_s2`, `conv1_7x7_s2_bn`, `inception_3a_1x1`, ..., `inception_5b_pool_proj_bn`, with
`fc` as the classifier), so those files load by name. Convolutions keep their bias as in Caffe.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

# name, 1x1, 3x3 reduce, 3x3, double-3x3 reduce, double-3x3, pool type, pool proj, stride
INCEPTION_BLOCKS = (
    ('3a', 64, 64, 64, 64, 96, 'avg', 32, 1),
    ('3b', 64, 64, 96, 64, 96, 'avg', 64, 1),
    ('3c', 0, 128, 160, 64, 96, 'max', 0, 2),
    ('4a', 224, 64, 96, 96, 128, 'avg', 128, 1),
    ('4b', 192, 96, 128, 96, 128, 'avg', 128, 1),
    ('4c', 160, 128, 160, 128, 160, 'avg', 128, 1),
    ('4d', 96, 128, 192, 160, 192, 'avg', 128, 1),
    ('4e', 0, 128, 192, 192, 256, 'max', 0, 2),
    ('5a', 352, 192, 320, 160, 224, 'avg', 128, 1),
    ('5b', 352, 192, 320, 192, 224, 'max', 128, 1),
)


class ReductionMaxPool(nn.MaxPool2d):
    """Caffe's 3x3/2 ceil-mode max pool of the reduction blocks (3c, 4e).

    On an odd-sized map it would give one row less than the block's stride-2 convolutions;
    padding the right/bottom edge by one (-inf) aligns them. Even sizes, as at 224x224 where
    the original weights were trained, are unchanged.
    """

    def __init__(self):
        super().__init__(3, stride=2, ceil_mode=True)

    def forward(self, x):
        pad_w, pad_h = x.shape[-1] % 2, x.shape[-2] % 2
        if pad_w or pad_h:
            x = F.pad(x, (0, pad_w, 0, pad_h), value=float('-inf'))
        return super().forward(x)


class BNInception(nn.Module):
    def __init__(self, num_classes=1000, in_channels=3):
        super().__init__()
        self._branches = {}
        self._add_conv('conv1_7x7_s2', in_channels, 64, 7, stride=2)
        self.pool1_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self._add_conv('conv2_3x3_reduce', 64, 64, 1)
        self._add_conv('conv2_3x3', 64, 192, 3)
        self.pool2_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        channels = 192
        for spec in INCEPTION_BLOCKS:
            channels = self._add_inception(channels, *spec)
        self.num_features = channels
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes) if num_classes else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        # TSM's 'block' shift (the TSM authors' and DLAC's TSM on BN-Inception): applied to the
        # input of the second stem stage and of every inception block
        self.temporal_shift = nn.Identity()

    def _add_conv(self, name, in_channels, out_channels, kernel, stride=1):
        self.add_module(name, nn.Conv2d(in_channels, out_channels, kernel, stride=stride,
                                        padding=kernel // 2))
        self.add_module(name + '_bn', nn.BatchNorm2d(out_channels))

    def _add_inception(self, in_channels, name, n1x1, n3x3_reduce, n3x3, ndouble_reduce,
                       ndouble, pool_type, pool_proj, stride):
        prefix = f'inception_{name}_'
        branches = []
        if n1x1:
            self._add_conv(prefix + '1x1', in_channels, n1x1, 1)
            branches.append([prefix + '1x1'])
        self._add_conv(prefix + '3x3_reduce', in_channels, n3x3_reduce, 1)
        self._add_conv(prefix + '3x3', n3x3_reduce, n3x3, 3, stride)
        branches.append([prefix + '3x3_reduce', prefix + '3x3'])
        self._add_conv(prefix + 'double_3x3_reduce', in_channels, ndouble_reduce, 1)
        self._add_conv(prefix + 'double_3x3_1', ndouble_reduce, ndouble, 3)
        self._add_conv(prefix + 'double_3x3_2', ndouble, ndouble, 3, stride)
        branches.append([prefix + 'double_3x3_reduce', prefix + 'double_3x3_1',
                         prefix + 'double_3x3_2'])
        if pool_type == 'avg':
            pool = nn.AvgPool2d(3, stride=stride, padding=1, ceil_mode=True, count_include_pad=True)
        elif stride == 1:
            pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        else:
            pool = ReductionMaxPool()
        self.add_module(prefix + 'pool', pool)
        if pool_proj:
            self._add_conv(prefix + 'pool_proj', in_channels, pool_proj, 1)
            branches.append([prefix + 'pool', prefix + 'pool_proj'])
        else:
            branches.append([prefix + 'pool'])
        self._branches[name] = branches
        return n1x1 + n3x3 + ndouble + (pool_proj or in_channels)

    def _run(self, names, x):
        for name in names:
            layer = getattr(self, name)
            x = layer(x)
            if isinstance(layer, nn.Conv2d):
                x = self.relu(getattr(self, name + '_bn')(x))
        return x

    def forward_features(self, x):
        """[N, C, H, W] -> pooled features [N, 1024]."""
        x = self._run(['conv1_7x7_s2', 'pool1_3x3_s2'], x)
        x = self._run(['conv2_3x3_reduce', 'conv2_3x3', 'pool2_3x3_s2'], self.temporal_shift(x))
        for spec in INCEPTION_BLOCKS:
            x = self.temporal_shift(x)
            x = torch.cat([self._run(branch, x) for branch in self._branches[spec[0]]], dim=1)
        return torch.flatten(self.global_pool(x), 1)

    def forward(self, x):
        return self.fc(self.forward_features(x))


def bninception(num_classes=1000, in_channels=3):
    return BNInception(num_classes=num_classes, in_channels=in_channels)
