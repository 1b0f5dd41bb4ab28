import cv2
import numpy as np
import pytest
import torch

from datasets.transforms import (ClipNormalizer, GroupCenterCrop, GroupMultiScaleCrop,
                                 GroupRandomHorizontalFlip, GroupResize, GroupTenCrop,
                                 GroupThreeCrop, ToClipTensor, build_normalizer, build_transform)


@pytest.fixture
def clip():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(4, 120, 160, 3), dtype=np.uint8)


def test_resize_keeps_aspect_and_dtype(clip):
    out = GroupResize(60)(clip)
    assert out.shape == (4, 60, 80, 3) and out.dtype == np.uint8
    tall = GroupResize(60)(clip.transpose(0, 2, 1, 3).copy())
    assert tall.shape == (4, 80, 60, 3)


@pytest.mark.parametrize('size', [(200, 150), (120, 90), (75, 56), (40, 30)])
def test_resize_agrees_with_opencv_frame_by_frame(clip, size):
    """Bilinear up and down (one torch call per clip), area averaging from 2x shrinks on."""
    mirrored = clip[:, :, ::-1]                          # a negative-stride view is accepted
    out = GroupResize(size[1])(mirrored)
    interpolation = cv2.INTER_AREA if size[0] * 2 <= 160 else cv2.INTER_LINEAR
    expected = np.stack([cv2.resize(np.ascontiguousarray(frame), size, interpolation=interpolation)
                         for frame in mirrored])
    assert out.shape == expected.shape and out.flags['C_CONTIGUOUS']
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


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


def test_clip_tensor_layout_and_normalized_values():
    frames = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    frames[..., 0] = 255
    frames[..., 1] = 51
    clip = ToClipTensor()(frames)
    assert clip.shape == (3, 2, 4, 4) and clip.dtype == torch.uint8
    assert torch.equal(clip[0], torch.full((2, 4, 4), 255, dtype=torch.uint8))
    batch = torch.stack([clip, clip])
    normalized = ClipNormalizer([0.5, 0.5, 0.5], [0.5, 0.25, 0.5])(batch)
    assert normalized.shape == (2, 3, 2, 4, 4) and normalized.dtype == torch.float32
    assert torch.allclose(normalized[:, 0], torch.ones(2, 2, 4, 4))
    assert torch.allclose(normalized[:, 1], torch.full((2, 2, 4, 4), (0.2 - 0.5) / 0.25))
    assert torch.allclose(normalized[:, 2], torch.full((2, 2, 4, 4), -1.0))
    views = ToClipTensor()(np.zeros((10, 2, 4, 4, 3), np.uint8))
    assert views.shape == (10, 3, 2, 4, 4)
    channels_last = ClipNormalizer([0] * 3, [1] * 3, memory_format=torch.channels_last_3d)(batch)
    assert channels_last.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(channels_last, ClipNormalizer([0] * 3, [1] * 3)(batch))
    with pytest.raises(TypeError, match='expects uint8 clips'):
        ClipNormalizer([0] * 3, [1] * 3)(batch.float())


def test_built_pipelines(cfg, clip):
    cfg.DATASET.SCALE_SIZE, cfg.DATASET.CROP_SIZE = 64, 56
    rng = np.random.default_rng(0)
    train = build_transform(cfg, 'train')(clip, rng)
    assert train.shape == (3, 4, 56, 56) and train.dtype == torch.uint8
    normalized = build_normalizer(cfg)(train)
    mean = torch.tensor(cfg.DATASET.MEAN).view(3, 1, 1, 1)
    std = torch.tensor(cfg.DATASET.STD).view(3, 1, 1, 1)
    assert torch.allclose(normalized, (train.float() / 255 - mean) / std, atol=1e-5)
    assert build_transform(cfg, 'val')(clip).shape == (3, 4, 56, 56)
    cfg.VAL.NUM_CROPS = 10
    assert build_transform(cfg, 'test')(clip).shape == (10, 3, 4, 56, 56)


def test_crop_with_flip_equals_crop_then_flip(clip):
    for seed in range(12):
        fused = GroupMultiScaleCrop(56, flip=True)(clip, np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        separate = GroupRandomHorizontalFlip()(GroupMultiScaleCrop(56)(clip, rng), rng)
        assert np.array_equal(fused, separate)
    untouched = clip.copy()
    for seed in range(12):      # crops that need no resize are flipped into a new array
        GroupMultiScaleCrop(clip.shape[1], scales=[1.0], flip=True)(clip, np.random.default_rng(seed))
    assert np.array_equal(clip, untouched)


def test_multi_scale_crop_flips_by_each_clips_own_draw():
    """The flip is drawn from the clip's rng after the crop box: about half the clips, the
    same clips for the same seeds (a fixed draw would flip all or none)."""
    from datasets.transforms import GroupMultiScaleCrop
    frames = np.tile(np.arange(40, dtype=np.uint8)[None, None, :, None], (2, 40, 1, 3))
    crop = GroupMultiScaleCrop(40, [1.0], flip=True)
    flipped = [crop(frames, np.random.default_rng(seed))[0, 0, 0, 0] == 39 for seed in range(40)]
    assert 10 < sum(flipped) < 30
    assert flipped == [crop(frames, np.random.default_rng(seed))[0, 0, 0, 0] == 39 for seed in range(40)]
