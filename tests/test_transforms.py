import numpy as np
import pytest
import torch

from datasets.transforms import (GroupCenterCrop, GroupMultiScaleCrop, GroupRandomHorizontalFlip,
                                 GroupResize, GroupTenCrop, GroupThreeCrop, ToNormalizedTensor,
                                 build_transform)


@pytest.fixture
def clip():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(4, 120, 160, 3), dtype=np.uint8)


def test_resize_keeps_aspect_and_dtype(clip):
    out = GroupResize(60)(clip)
    assert out.shape == (4, 60, 80, 3) and out.dtype == np.uint8
    tall = GroupResize(60)(clip.transpose(0, 2, 1, 3).copy())
    assert tall.shape == (4, 80, 60, 3)


def test_multiscale_crop_output_and_same_box_for_all_frames(clip):
    crop = GroupMultiScaleCrop(64)
    rng = np.random.default_rng(1)
    constant = np.repeat(clip[:1], 4, axis=0)
    for _ in range(10):
        out = crop(constant, rng)
        assert out.shape == (4, 64, 64, 3) and out.dtype == np.uint8
        assert all(np.array_equal(out[0], frame) for frame in out[1:])


def test_flip_and_flip_switched_off(clip):
    flips = [np.array_equal(GroupRandomHorizontalFlip()(clip, np.random.default_rng(s)),
                            clip[:, :, ::-1]) for s in range(20)]
    assert any(flips) and not all(flips)
    off = GroupRandomHorizontalFlip(enabled=False)
    assert all(np.array_equal(off(clip, np.random.default_rng(s)), clip) for s in range(20))


def test_center_three_ten_crop_shapes_and_positions(clip):
    centre = GroupCenterCrop(100)(clip)
    assert centre.shape == (4, 100, 100, 3)
    assert np.array_equal(centre, clip[:, 10:110, 30:130])
    three = GroupThreeCrop(120)(clip)
    assert three.shape == (3, 4, 120, 120, 3)
    assert np.array_equal(three[0], clip[:, :, :120]) and np.array_equal(three[2], clip[:, :, 40:])
    ten = GroupTenCrop(100)(clip)
    assert ten.shape == (10, 4, 100, 100, 3)
    assert np.array_equal(ten[5], ten[0][:, :, ::-1])


def test_normalize_layout_and_values():
    frames = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    frames[..., 0] = 255
    tensor = ToNormalizedTensor([0.5, 0.5, 0.5], [0.5, 0.25, 0.5])(frames)
    assert tensor.shape == (3, 2, 4, 4) and tensor.dtype == torch.float32
    assert torch.allclose(tensor[0], torch.ones(2, 4, 4))
    assert torch.allclose(tensor[1], torch.full((2, 4, 4), -2.0))
    views = ToNormalizedTensor([0, 0, 0], [1, 1, 1])(np.zeros((10, 2, 4, 4, 3), np.uint8))
    assert views.shape == (10, 3, 2, 4, 4)


def test_built_pipelines(cfg, clip):
    cfg.DATASET.SCALE_SIZE, cfg.DATASET.CROP_SIZE = 64, 56
    rng = np.random.default_rng(0)
    train = build_transform(cfg, 'train')(clip, rng)
    assert train.shape == (3, 4, 56, 56)
    mean = torch.tensor(cfg.DATASET.MEAN).view(3, 1, 1, 1)
    std = torch.tensor(cfg.DATASET.STD).view(3, 1, 1, 1)
    assert train.min() >= (-mean / std).min() - 1e-5 and train.max() <= ((1 - mean) / std).max() + 1e-5
    assert build_transform(cfg, 'val')(clip).shape == (3, 4, 56, 56)
    cfg.VAL.NUM_CROPS = 10
    assert build_transform(cfg, 'test')(clip).shape == (10, 3, 4, 56, 56)
