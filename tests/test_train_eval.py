"""End-to-end: tiny training runs, resume, evaluation files, the command line."""
import csv
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

import evaluate
import train
import utils.trained_model
from conftest import ROOT, run_main, tiny_overrides

pytestmark = pytest.mark.slow


def exp_folder(snapshot):
    return osp.join(str(snapshot), 'ar_output', 'tsn', 'synthetic_rgb_resnet18')


def load_policy(snapshot):
    with open(osp.join(exp_folder(snapshot), 'training_policy.json'), encoding='utf-8') as handle:
        return json.load(handle)['per_epoch']


@pytest.fixture(scope='module')
def straight_run(tiny_root, tmp_path_factory):
    """3 epochs without interruption: the reference for resuming, and the model evaluated."""
    snapshot = tmp_path_factory.mktemp('straight')
    overrides = tiny_overrides(tiny_root, snapshot, **{'TRAIN.EPOCHS': 3, 'TRAIN.LR_STEPS': [2]})
    assert run_main(train, overrides) == 0
    return snapshot, overrides


def test_training_writes_the_experiment_folder(straight_run):
    snapshot, _ = straight_run
    folder = exp_folder(snapshot)
    for name in ('config.yaml', 'log/train.log', 'checkpoints/last.pth', 'checkpoints/best.pth',
                 'training_policy.json', 'curves.png'):
        assert osp.isfile(osp.join(folder, name)), name
    events = [n for n in __import__('os').listdir(osp.join(folder, 'tensorboard'))
              if n.startswith('events.out.tfevents')]
    assert events
    with open(osp.join(folder, 'config.yaml'), encoding='utf-8') as handle:
        saved = yaml.safe_load(handle)
    assert saved['TRAIN']['EPOCHS'] == 3 and saved['DATASET']['CROP_SIZE'] == 64
    history = load_policy(snapshot)
    assert [row['epoch'] for row in history] == [1, 2, 3]
    assert [row['lr'] for row in history] == pytest.approx([0.01, 0.01, 0.001])
    assert all(row['epoch_time_s'] > 0 and row['val_top1'] is not None for row in history)
    last = torch.load(osp.join(folder, 'checkpoints', 'last.pth'), weights_only=True)
    assert last['epoch'] == 3 and len(last['history']) == 3


def test_interrupted_run_resumes_exactly(tiny_root, tmp_path, straight_run, monkeypatch):
    """Stop after epoch 2 of 3, run again: epoch 3 alone runs, with the decayed LR, and the
    losses and weights equal the uninterrupted run's."""
    reference_snapshot, _ = straight_run
    overrides = tiny_overrides(tiny_root, tmp_path, **{'TRAIN.EPOCHS': 3, 'TRAIN.LR_STEPS': [2]})
    real_epoch = train.train_one_epoch
    epochs_run = []

    def stop_at_third(run, epoch, *args):
        if epoch == 2 and not epochs_run.count('stopped'):
            epochs_run.append('stopped')
            raise KeyboardInterrupt
        epochs_run.append(epoch)
        return real_epoch(run, epoch, *args)

    monkeypatch.setattr(train, 'train_one_epoch', stop_at_third)
    assert run_main(train, overrides) == 130              # interrupted: the shell's Ctrl-C code
    assert epochs_run == [0, 1, 'stopped']
    assert run_main(train, overrides) == 0
    assert epochs_run == [0, 1, 'stopped', 2]

    resumed, reference = load_policy(tmp_path), load_policy(reference_snapshot)
    assert [row['epoch'] for row in resumed] == [1, 2, 3]
    assert [row['lr'] for row in resumed] == [row['lr'] for row in reference]
    np.testing.assert_allclose([row['train_loss'] for row in resumed],
                               [row['train_loss'] for row in reference], atol=1e-5)
    ours = torch.load(osp.join(exp_folder(tmp_path), 'checkpoints', 'last.pth'), weights_only=True)
    theirs = torch.load(osp.join(exp_folder(reference_snapshot), 'checkpoints', 'last.pth'),
                        weights_only=True)
    for key, value in theirs['model'].items():
        torch.testing.assert_close(ours['model'][key], value, atol=1e-5, rtol=1e-5)
    with open(osp.join(exp_folder(tmp_path), 'log', 'train.log'), encoding='utf-8') as handle:
        assert 'resumed from' in handle.read()


def test_evaluate_writes_report_scores_and_figures(straight_run):
    snapshot, overrides = straight_run
    assert run_main(evaluate, overrides + ['VAL.NUM_CROPS', '3']) == 0
    eval_dir = osp.join(exp_folder(snapshot), 'eval')
    with open(osp.join(eval_dir, 'report.json'), encoding='utf-8') as handle:
        report = json.load(handle)
    scores = np.load(osp.join(eval_dir, 'scores.npz'))
    assert scores['scores'].shape == (16, 8) and scores['labels'].shape == (16,)
    np.testing.assert_allclose(scores['scores'].sum(axis=1), 1.0, atol=1e-5)
    assert sorted(scores['labels'].tolist()) == sorted([c for c in range(8) for _ in range(2)])
    top1 = (scores['scores'].argmax(1) == scores['labels']).mean() * 100
    assert report['top1'] == pytest.approx(top1)
    assert report['num_videos'] == 16 and report['views'] == '5 segments x 3 crops'
    assert 0 <= report['top1'] <= report['top5'] <= 100
    assert 'mean_class_accuracy' in report and 'synthetic_pairs' in report
    with open(osp.join(eval_dir, 'per_class.csv'), encoding='utf-8') as handle:
        rows = list(csv.DictReader(handle))
    assert [row['class'] for row in rows][:2] == ['move_left', 'move_right'] and len(rows) == 8
    assert sum(int(row['videos']) for row in rows) == 16
    with open(osp.join(eval_dir, 'confusion.png'), 'rb') as handle:
        assert handle.read(8) == b'\x89PNG\r\n\x1a\n'


def test_training_from_video_files(tiny_root, tmp_path):
    overrides = tiny_overrides(tiny_root, tmp_path, **{'DATASET.INPUT_TYPE': 'video',
                                                       'TRAIN.EPOCHS': 1})
    assert run_main(train, overrides) == 0
    history = load_policy(tmp_path)
    assert len(history) == 1 and np.isfinite(history[0]['train_loss'])
    with open(osp.join(exp_folder(tmp_path), 'config.yaml'), encoding='utf-8') as handle:
        assert yaml.safe_load(handle)['DATASET']['TRAIN_META_PATH'].endswith('train_split1_video.txt')


@pytest.mark.parametrize('loader,workers', [('DataLoader', 2), ('DataLoaderX', 2), ('SuperLoader', 2)])
def test_loaders_change_nothing_but_speed(tiny_root, tmp_path, straight_run, loader, workers):
    """The same 3 epochs through worker processes give the same losses as loading in the
    training process (the straight run: SuperLoader, 0 workers)."""
    overrides = tiny_overrides(tiny_root, tmp_path, **{
        'TRAIN.EPOCHS': 3, 'TRAIN.LR_STEPS': [2], 'DATASET.LOADER': loader,
        'DATASET.NUM_WORKERS': workers})
    assert run_main(train, overrides) == 0
    ours, reference = load_policy(tmp_path), load_policy(straight_run[0])
    assert [row['train_loss'] for row in ours] == pytest.approx(
        [row['train_loss'] for row in reference], rel=1e-4)
    assert [row['val_top1'] for row in ours] == pytest.approx([row['val_top1'] for row in reference])


def record_first_conv(monkeypatch, module, seen):
    """Patch module.build_model so the model's first conv records, on every call, the dtype
    it computes in and the memory format of its input and weight."""
    real_build = module.build_model

    def build_and_probe(*args, **kwargs):
        model = real_build(*args, **kwargs)

        def probe(conv, inputs, output):
            seen.append((output.dtype,
                         inputs[0].is_contiguous(memory_format=torch.channels_last),
                         conv.weight.is_contiguous(memory_format=torch.channels_last)))
        model.backbone.conv1.register_forward_hook(probe)
        return model
    monkeypatch.setattr(module, 'build_model', build_and_probe)


def test_amp_and_channels_last_train_and_evaluate(tiny_root, tmp_path, straight_run, monkeypatch):
    """bfloat16 autocast and channels-last really run (inside forward, in training, validation
    and evaluation), and the first epoch's loss stays near the float32 run's."""
    overrides = tiny_overrides(tiny_root, tmp_path, **{
        'TRAIN.EPOCHS': 1, 'TRAIN.AMP': True, 'TRAIN.CHANNELS_LAST': True,
        'DATASET.NUM_WORKERS': 1})
    seen = []
    record_first_conv(monkeypatch, train, seen)
    assert run_main(train, overrides) == 0
    assert len(seen) == 3 + 2 and set(seen) == {(torch.bfloat16, True, True)}   # 3 steps + 2 val batches
    history, reference = load_policy(tmp_path), load_policy(straight_run[0])
    assert history[0]['train_loss'] == pytest.approx(reference[0]['train_loss'], abs=0.01)
    assert history[0]['val_top1'] is not None

    evaluated = []
    record_first_conv(monkeypatch, utils.trained_model, evaluated)
    assert run_main(evaluate, overrides) == 0
    assert evaluated and set(evaluated) == {(torch.bfloat16, True, True)}
    with open(osp.join(exp_folder(tmp_path), 'eval', 'report.json'), encoding='utf-8') as handle:
        assert 0 <= json.load(handle)['top1'] <= 100


def test_command_line_bad_metafile_exits_2(tiny_root, tmp_path):
    meta = tmp_path / 'train.txt'
    meta.write_text('move_left/train_move_left_000 12 0\nbroken line here x\n', encoding='utf-8')
    overrides = tiny_overrides(tiny_root, tmp_path, **{'DATASET.TRAIN_META_PATH': str(meta)})
    result = subprocess.run([sys.executable, 'train.py'] + overrides, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert f'{meta}:2: num_frames and label must be integers' in result.stderr


def test_command_line_evaluate_without_checkpoint_exits_2(tiny_root, tmp_path):
    result = subprocess.run([sys.executable, 'evaluate.py'] + tiny_overrides(tiny_root, tmp_path),
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert 'checkpoint not found' in result.stderr and 'best.pth' in result.stderr


def test_resuming_a_checkpoint_of_another_model_exits_2(tiny_root, tmp_path):
    assert run_main(train, tiny_overrides(tiny_root, tmp_path, **{'TRAIN.EPOCHS': 1})) == 0
    overrides = tiny_overrides(tiny_root, tmp_path, **{'TRAIN.EPOCHS': 2, 'BACKBONE': 'resnet34'})
    result = subprocess.run([sys.executable, 'train.py'] + overrides, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert 'last.pth does not fit this experiment (tsn/resnet34' in result.stderr
    assert "--resume ''" in result.stderr
    fresh = subprocess.run([sys.executable, 'train.py', '--resume', ''] + overrides, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr


@pytest.mark.parametrize('name, backbone, views', [
    ('tsm', 'resnet18', '4 segments x 1 crops'), ('i3d', 'resnet18', '2 clips x 3 crops'),
    ('slowfast', 'resnet18', '2 clips x 3 crops'), ('mfnet3d', 'mfnet3d', '2 clips x 3 crops'),
    ('x3d', 'x3d_xs', '2 clips x 3 crops'), ('r2plus1d', 'resnet18', '2 clips x 3 crops'),
    ('videomae', 'vit_small', '2 clips x 3 crops'), ('tsm', 'mobilenetv2', '4 segments x 1 crops'),
    ('tsm', 'bninception', '4 segments x 1 crops'), ('tsn', 'inceptionv3', '4 segments x 1 crops')])
def test_every_zoo_model_trains_and_evaluates(tiny_root, tmp_path, name, backbone, views):
    """train.py and evaluate.py take each model as they are, with its own sampling and views
    (Inception-v3 at 80 px, the smallest input it takes)."""
    crop = 80 if backbone == 'inceptionv3' else 32
    overrides = tiny_overrides(tiny_root, tmp_path, **{
        'MODEL_NAME': name, 'BACKBONE': backbone, 'EXP_TAG': 'zoo', 'TRAIN.EPOCHS': 1,
        'DATASET.SCALE_SIZE': crop + 4, 'DATASET.CROP_SIZE': crop, 'DATA.NUM_SEGMENTS': 4,
        'DATA.CLIP_LEN': 8, 'MODEL.SLOWFAST_ALPHA': 4,
        'VAL.NUM_SEGMENTS': 4 if name in ('tsm', 'tsn') else 0,
        'VAL.NUM_CLIPS': 2 if name not in ('tsm', 'tsn') else 0})
    assert run_main(train, overrides) == 0
    folder = osp.join(str(tmp_path), 'ar_output', name, 'zoo')
    with open(osp.join(folder, 'config.yaml'), encoding='utf-8') as handle:
        saved = yaml.safe_load(handle)
    assert saved['DATASET']['SAMPLING'] == ('segment' if name in ('tsm', 'tsn') else 'dense')
    assert run_main(evaluate, overrides) == 0
    with open(osp.join(folder, 'eval', 'report.json'), encoding='utf-8') as handle:
        report = json.load(handle)
    assert report['views'] == views and report['model'] == name and report['num_videos'] == 16
    scores = np.load(osp.join(folder, 'eval', 'scores.npz'))['scores']
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
