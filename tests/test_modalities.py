"""TSN's Flow and RGBDiff modalities, flow extraction, cross-modality init and score fusion."""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

import config
import evaluate
import train
from conftest import ROOT, run_main, tiny_overrides
from datasets import build_dataset
from datasets.transforms import GroupMultiScaleCrop, GroupTenCrop
from DataTool.common.flow import BOUND, dequantize_flow, extract_flow, flow_algorithm
from DataTool.common.video_io import write_video
from models import TSN
from models.backbones import resnet
from models.modality import cross_modality_weight, stack_segments
from models.weights import load_backbone_file


def moving_square(path, steps=6, dx=3, dy=0):
    frames = np.full((steps, 64, 96, 3), 40, np.uint8)
    for t in range(steps):
        x, y = 20 + dx * t, 20 + dy * t
        frames[t, y:y + 20, x:x + 20] = (230, 200, 60)
    write_video(path, frames, fps=10)


def test_flow_frames_are_written_and_read_back_in_range(tmp_path):
    video = str(tmp_path / 'right.mp4')
    moving_square(video, steps=6, dx=3)
    out = tmp_path / 'frames'
    assert extract_flow(video, str(out)) == 5 and flow_algorithm() in ('tvl1', 'farneback')
    names = sorted(p.name for p in out.glob('flow_*.jpg'))
    assert names[:2] == ['flow_x_00001.jpg', 'flow_x_00002.jpg'] and len(names) == 10
    x = cv2.imread(str(out / 'flow_x_00003.jpg'), cv2.IMREAD_UNCHANGED)
    y = cv2.imread(str(out / 'flow_y_00003.jpg'), cv2.IMREAD_UNCHANGED)
    assert x.dtype == np.uint8 and x.ndim == 2 and x.shape == (64, 96)
    moving = dequantize_flow(x)[25:35, 30:40]          # inside the square, which moves 3 px right
    assert 1.5 < moving.mean() < 4.5 and abs(dequantize_flow(y)[25:35, 30:40].mean()) < 1
    still = dequantize_flow(x)[50:, :10]                # background: no motion, value 128
    assert abs(still.mean()) < 0.3
    assert dequantize_flow(np.array([0, 255], np.uint8)).tolist() == [-BOUND, BOUND]


def test_flipping_flow_negates_x():
    frames = np.zeros((2, 8, 8, 2), np.uint8)
    frames[..., 0], frames[..., 1] = 200, 90            # moving right (x > 128) and up
    crop = GroupMultiScaleCrop(8, scales=[1.0], flip=True, flow=True)
    flipped = next(out for seed in range(20) if (out := crop(frames.copy(), np.random.default_rng(seed)))[0, 0, 0, 0] != 200)
    assert (flipped[..., 0] == 55).all() and (flipped[..., 1] == 90).all()
    ten = GroupTenCrop(6, flow=True)(frames)
    assert (ten[:5, ..., 0] == 200).all() and (ten[5:, ..., 0] == 55).all()


def test_stacking_flow_and_rgb_differences_per_segment():
    clip = torch.arange(2 * 3 * 2 * 4 * 4, dtype=torch.float32).view(1, 2, 6, 4, 4)  # 2 segments x 3
    stacked, segments = stack_segments(clip, 'Flow', 3)
    assert segments == 2 and stacked.shape == (2, 6, 4, 4)
    assert torch.equal(stacked[1, 0], clip[0, 0, 3]) and torch.equal(stacked[1, 1], clip[0, 1, 3])
    assert torch.equal(stacked[1, 2], clip[0, 0, 4])                   # x1, y1, x2, ...
    rgb = torch.randn(1, 3, 2 * 3, 4, 4)                                # 2 segments x 3 frames
    diffs, segments = stack_segments(rgb, 'RGBDiff', 2)
    assert segments == 2 and diffs.shape == (2, 6, 4, 4)
    torch.testing.assert_close(diffs[0, 3:], rgb[0, :, 2] - rgb[0, :, 1])


def test_cross_modality_init_keeps_the_first_conv_mean_response(tmp_path):
    rgb = resnet(18, num_classes=0)
    file = tmp_path / 'rgb.pth'
    torch.save(rgb.state_dict(), file)
    flow = TSN(num_classes=4, backbone='resnet18', modality='Flow', new_length=5)
    load_backbone_file(flow, str(file))
    kernel = flow.backbone.conv1.weight
    assert kernel.shape == (64, 10, 7, 7)
    torch.testing.assert_close(kernel, cross_modality_weight(rgb.conv1.weight, 10))
    # an input whose channels are all one image g: per input channel, the same response
    g = torch.randn(1, 1, 32, 32)
    response_rgb = rgb.conv1(g.repeat(1, 3, 1, 1)) / 3
    response_flow = flow.backbone.conv1(g.repeat(1, 10, 1, 1)) / 10
    torch.testing.assert_close(response_flow, response_rgb, atol=1e-5, rtol=1e-4)
    diff = TSN(num_classes=4, backbone='resnet18', modality='RGBDiff', new_length=5)
    load_backbone_file(diff, str(file))
    assert diff.backbone.conv1.weight.shape == (64, 15, 7, 7)
    assert diff(torch.randn(2, 3, 3 * 6, 32, 32)).shape == (2, 4)


def test_flow_dataset_gives_two_channel_stacks(tiny_root, cfg):
    cfg = config.build_config(tiny_overrides(tiny_root, '/tmp/unused', **{'MODALITY': 'Flow'}))
    from DataTool.Synthetic.synthetic import ensure_synthetic
    ensure_synthetic(cfg)
    assert cfg.DATA.NEW_LENGTH == 5 and cfg.DATASET.TRAIN_META_PATH.endswith('train_split1_flow.txt')
    dataset = build_dataset(cfg, 'train')
    clip, label, index, bad = dataset[0]
    assert clip.shape == (2, 3 * 5, 64, 64) and clip.dtype == torch.uint8 and bad == -1
    assert dataset.records[0].num_frames == build_dataset_rgb_frames(tiny_root) - 1


def build_dataset_rgb_frames(tiny_root):
    meta = osp.join(tiny_root, 'synthetic', 'MetafileSeq', 'train_split1.txt')
    return int(open(meta).readline().split()[-2])


@pytest.mark.slow
def test_fusion_refuses_files_of_other_videos(tmp_path):
    def scores(name, paths, labels):
        path = str(tmp_path / name)
        np.savez(path, scores=np.full((len(paths), 3), 1 / 3), labels=np.array(labels),
                 paths=np.array(paths), class_names=np.array(['a', 'b', 'c']))
        return path
    a = scores('a.npz', ['v1', 'v2', 'v3'], [0, 1, 2])
    reordered = scores('b.npz', ['v2', 'v1', 'v3'], [1, 0, 2])
    fewer = scores('c.npz', ['v1', 'v2'], [0, 1])
    for other, message in ((reordered, "video 0 is 'v2' vs 'v1'"), (fewer, 'scores 2 videos')):
        result = subprocess.run([sys.executable, 'evaluate.py', '--fuse', a, other], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and message in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize('modality, channels', [('Flow', 6), ('RGBDiff', 9)])
def test_flow_and_rgbdiff_tsn_train_on_the_synthetic_set(tiny_root, tmp_path, modality, channels):
    overrides = tiny_overrides(tiny_root, tmp_path, **{
        'MODALITY': modality, 'TRAIN.EPOCHS': 1, 'DATA.NUM_SEGMENTS': 3, 'DATA.NEW_LENGTH': 3})
    assert run_main(train, overrides) == 0
    folder = osp.join(str(tmp_path), 'ar_output', 'tsn', 'synthetic_rgb_resnet18')
    state = torch.load(osp.join(folder, 'checkpoints', 'last.pth'), weights_only=True)
    assert state['model']['backbone.conv1.weight'].shape[1] == channels
    assert np.isfinite(state['history'][0]['train_loss'])
    assert state['config']['MODALITY'] == modality


def test_fusion_weighs_the_streams_scores_and_measures_each(tmp_path):
    """The arithmetic of --fuse on two score files: the weighted sum, each stream's top1 and
    the fused one's, written to the file named."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 12)
    paths = np.array([f'v{i}' for i in range(12)])
    files = []
    for name in ('rgb', 'flow'):
        path = str(tmp_path / f'{name}.npz')
        np.savez(path, scores=rng.random((12, 4)), labels=labels, paths=paths,
                 class_names=np.array(['a', 'b', 'c', 'd']))
        files.append(path)
    result = evaluate.run_fusion(files, [1.0, 1.5], str(tmp_path / 'fused.json'))
    rgb, flow = (np.load(path) for path in files)
    expected = 1.0 * rgb['scores'] + 1.5 * flow['scores']
    np.testing.assert_allclose(result['scores'], expected, rtol=1e-6)
    top1 = lambda scores: pytest.approx(100.0 * np.mean(scores.argmax(axis=1) == labels))  # noqa: E731
    assert [m['top1'] for m in result['streams']] == [top1(rgb['scores']), top1(flow['scores'])]
    assert result['fused']['top1'] == top1(expected)
    assert json.load(open(tmp_path / 'fused.json'))['fused']['top1'] == result['fused']['top1']


@pytest.mark.skipif(os.environ.get('DLAC_LEARNING_CHECKS') != 'all',
                    reason='a learning check of minutes; DLAC_LEARNING_CHECKS=all runs it')
def test_fusing_rgb_and_flow_beats_the_weaker_stream(tmp_path):
    """RGB and Flow TSN on a synthetic set of 10 training videos per class, 5 epochs each (2.5
    minutes on 2 cores: a learning check, kept out of the suite's 10 minutes; the fusion's
    arithmetic is tested above)."""
    from DataTool.Synthetic.synthetic import generate
    per_class = [10, 4]
    generate(str(tmp_path / 'data' / 'synthetic'), seed=0, videos_per_class=per_class,
             frame_range=(12, 16), show_progress=False)
    streams = {}
    for modality in ('RGB', 'Flow'):
        overrides = tiny_overrides(tmp_path / 'data', tmp_path, **{
            'MODALITY': modality, 'EXP_TAG': modality.lower(), 'TRAIN.EPOCHS': 5,
            'TRAIN.LR_STEPS': [4], 'DATA.NUM_SEGMENTS': 3, 'DATA.NEW_LENGTH': 3,
            'DATASET.SYNTHETIC_VIDEOS_PER_CLASS': per_class})
        assert run_main(train, overrides) == 0
        assert run_main(evaluate, overrides) == 0
        folder = osp.join(str(tmp_path), 'ar_output', 'tsn', modality.lower(), 'eval')
        with open(osp.join(folder, 'report.json')) as handle:
            streams[modality] = (json.load(handle)['top1'], osp.join(folder, 'scores.npz'))
    result = evaluate.run_fusion([streams['RGB'][1], streams['Flow'][1]], [1.0, 1.5],
                                 str(tmp_path / 'fused.json'))
    assert [m['top1'] for m in result['streams']] == [streams['RGB'][0], streams['Flow'][0]]
    rgb, flow = (np.load(streams[name][1]) for name in ('RGB', 'Flow'))
    expected = 1.0 * rgb['scores'] + 1.5 * flow['scores']
    np.testing.assert_allclose(result['scores'], expected, rtol=1e-6)
    assert result['fused']['top1'] == pytest.approx(
        100.0 * np.mean(expected.argmax(axis=1) == rgb['labels']))
    assert result['fused']['top1'] > min(streams['RGB'][0], streams['Flow'][0])
    assert json.load(open(tmp_path / 'fused.json'))['fused']['top1'] == result['fused']['top1']
