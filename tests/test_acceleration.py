"""TRAIN.AMP, TRAIN.CHANNELS_LAST and TRAIN.COMPILE: what each switch does to a model and a step."""
import shutil

import pytest
import torch
import torch.nn as nn

from utils.acceleration import autocast, grad_scaler, maybe_compile, to_channels_last


class Mixed(nn.Module):
    """A 2D and a 3D convolution, as TSN-style and 3D models have."""

    def __init__(self):
        super().__init__()
        self.conv2d = nn.Conv2d(3, 4, 3)
        self.conv3d = nn.Conv3d(3, 4, 3)

    def forward(self, clips):
        frames = clips.transpose(1, 2).flatten(0, 1)
        return self.conv2d(frames).mean() + self.conv3d(clips).mean()


def test_channels_last_per_weight_rank(cfg):
    model = to_channels_last(Mixed())
    assert model.conv2d.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.conv3d.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert not model.conv2d.weight.is_contiguous()
    clips = torch.randn(2, 3, 4, 8, 8)
    reference = Mixed()
    reference.load_state_dict(model.state_dict())
    assert torch.allclose(model(clips), reference(clips), atol=1e-5)


def test_autocast_and_loss_scaling_follow_the_config(cfg):
    conv = nn.Conv2d(3, 4, 3)
    images = torch.randn(1, 3, 8, 8)
    with autocast(cfg, 'cpu'):
        assert conv(images).dtype == torch.float32
    cfg.TRAIN.AMP = True
    with autocast(cfg, 'cpu'):
        assert conv(images).dtype == torch.bfloat16
    assert not grad_scaler(cfg, 'cpu').is_enabled()
    cfg.TRAIN.AMP_DTYPE = 'float16'
    with pytest.raises(ValueError, match="'float16' needs a GPU"):
        autocast(cfg, 'cpu')


def test_compile_switch(cfg):
    model = Mixed()
    assert maybe_compile(model, cfg) is model
    if shutil.which('cc') is None and shutil.which('gcc') is None:
        pytest.skip('torch.compile on the CPU needs a C compiler')
    cfg.TRAIN.COMPILE = True
    compiled = maybe_compile(model, cfg)
    assert compiled is not model
    clips = torch.randn(1, 3, 4, 8, 8)
    assert torch.allclose(compiled(clips), model(clips), atol=1e-5)
