"""TSN's three input modalities (Wang et al., 2016), as a 2D network sees them.

RGB: one frame per segment, 3 channels. Flow: NEW_LENGTH consecutive optical-flow fields per
segment, their x and y planes stacked as 2 x NEW_LENGTH channels. RGBDiff: NEW_LENGTH + 1
consecutive frames per segment, the NEW_LENGTH differences of neighbours stacked as
3 x NEW_LENGTH channels. Clips arrive as [N, C, T', H, W] (C = 2 for flow, 3 otherwise; T' the
frames of all segments); `stack_segments` folds each segment's frames into channels.

Cross-modality initialisation: an RGB network's first convolution, averaged over its three
input channels and replicated over the new modality's channels, starts the Flow or RGBDiff
network from ImageNet weights.
"""
import torch

MODALITIES = ('RGB', 'Flow', 'RGBDiff')


def clip_channels(modality):
    """Channels of the clip the dataset gives: flow x and y, or RGB."""
    return 2 if modality == 'Flow' else 3


def frames_per_segment(modality, new_length):
    """Frames (or flow fields) loaded per segment."""
    return {'RGB': 1, 'Flow': new_length, 'RGBDiff': new_length + 1}[modality]


def input_channels(modality, new_length):
    """Channels of the 2D network's input."""
    return {'RGB': 3, 'Flow': 2 * new_length, 'RGBDiff': 3 * new_length}[modality]


def stack_segments(x, modality, new_length):
    """[N, C, T', H, W] -> ([N * T, channels, H, W], T): one 2D input per segment."""
    n, c, frames, h, w = x.shape
    if modality == 'RGB':
        return x.transpose(1, 2).reshape(n * frames, c, h, w), frames
    per_segment = frames_per_segment(modality, new_length)
    t = frames // per_segment
    x = x.view(n, c, t, per_segment, h, w)
    if modality == 'RGBDiff':
        x = x[:, :, :, 1:] - x[:, :, :, :-1]
    # [N, C, T, L, H, W] -> [N, T, L, C, H, W]: channels x1, y1, x2, y2, ... (or per difference)
    return x.permute(0, 2, 3, 1, 4, 5).reshape(n * t, new_length * c, h, w), t


def cross_modality_weight(weight, channels):
    """An RGB first-conv kernel [O, 3, ...] -> [O, channels, ...]: the channel mean, replicated."""
    repeats = [1, channels] + [1] * (weight.dim() - 2)
    return weight.mean(dim=1, keepdim=True).repeat(*repeats)


def first_conv_key(module):
    """State-dict key of the module's first convolution's weight (its input layer)."""
    for name, child in module.named_modules():
        if isinstance(child, (torch.nn.Conv2d, torch.nn.Conv3d)):
            return f'{name}.weight' if name else 'weight'
    return None
