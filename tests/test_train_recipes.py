"""Training with every recipe feature at once, end to end: accumulation, Mixup/CutMix, label
smoothing, RandAugment, random erasing, AdamW, cosine with warmup, precise BN and EMA."""
import json
import os
import os.path as osp

import pytest
import torch

import evaluate
import train
from conftest import run_main, tiny_overrides

pytestmark = pytest.mark.slow

RECIPE = {'TRAIN.EPOCHS': 2, 'TRAIN.ACCUM_STEPS': 2, 'TRAIN.BASE_BATCH_SIZE': 4,
          'MIXUP.ENABLE': True, 'TRAIN.LABEL_SMOOTHING': 0.1, 'AUG.RAND_AUGMENT': 'rand-m9-n2',
          'AUG.RE_PROB': 0.25, 'TRAIN.OPTIMIZER': 'adamw', 'TRAIN.BASE_LR': 0.001,
          'TRAIN.WEIGHT_DECAY': 0.05, 'TRAIN.ZERO_WD_1D_PARAM': True, 'TRAIN.LR_POLICY': 'cosine',
          'TRAIN.WARMUP_EPOCHS': 0.5, 'BN.USE_PRECISE_STATS': True, 'BN.NUM_BATCHES_PRECISE': 2,
          'TRAIN.EMA_DECAY': 0.9, 'TRAIN.PRINT_FREQ': 1}


def folder(snapshot):
    return osp.join(str(snapshot), 'ar_output', 'tsn', 'synthetic_rgb_resnet18')


def test_a_run_with_every_recipe_feature_trains_resumes_and_evaluates(tiny_root, tmp_path):
    overrides = tiny_overrides(tiny_root, tmp_path, **RECIPE)
    assert run_main(train, overrides) == 0
    with open(osp.join(folder(tmp_path), 'training_policy.json'), encoding='utf-8') as handle:
        policy = json.load(handle)
    assert (policy['accum_steps'], policy['optimizer_batch_size'], policy['ema_decay']) == (2, 8, 0.9)
    assert policy['rand_augment'] == 'rand-m9-n2' and policy['precise_bn'] == 2
    rows = policy['per_epoch']
    assert all(row['val_top1'] is not None and row['val_top1_ema'] is not None for row in rows)
    assert rows[0]['lr'] == 0.0                                  # warmup from 0 at the first step
    with open(osp.join(folder(tmp_path), 'log', 'train.log'), encoding='utf-8') as handle:
        log = handle.read()
    assert 'epoch 1 [3/3]' in log and 'epoch 1 [4/3]' not in log     # 6 batches of 4: 3 steps
    assert 'optimizer batch 8 (4 per process x 1 processes x 2 accumulated)' in log
    assert 'validation (EMA weights)' in log
    assert 'precise BN: statistics of 20 layers of the raw weights' in log
    assert 'precise BN: statistics of 20 layers of the EMA weights' in log
    last = torch.load(osp.join(folder(tmp_path), 'checkpoints', 'last.pth'), weights_only=True)
    best = torch.load(osp.join(folder(tmp_path), 'checkpoints', 'best.pth'), weights_only=True)
    assert set(last['ema']) == set(last['model']) and best['weights'] in ('raw', 'ema')
    kept = rows[best['epoch'] - 1]
    assert best['top1'] == max(kept['val_top1'], kept['val_top1_ema'])
    assert run_main(evaluate, overrides) == 0
    with open(osp.join(folder(tmp_path), 'eval', 'report.json'), encoding='utf-8') as handle:
        assert json.load(handle)['num_videos'] == 16


def test_accumulated_steps_resume_mid_epoch_exactly(tiny_root, tmp_path, monkeypatch):
    settings = dict(RECIPE, **{'AUG.RAND_AUGMENT': '', 'AUG.RE_PROB': 0.0, 'BN.USE_PRECISE_STATS': False})
    reference = tmp_path / 'straight'
    assert run_main(train, tiny_overrides(tiny_root, reference, **settings)) == 0
    interrupted = tmp_path / 'interrupted'
    overrides = tiny_overrides(tiny_root, interrupted, **settings)
    monkeypatch.setenv('DLAC_FAULT_INJECT', 'sigterm:0:2:2')       # after optimizer step 2 of epoch 2
    with pytest.raises(SystemExit):
        run_main(train, overrides)
    state = torch.load(osp.join(folder(interrupted), 'checkpoints', 'last.pth'), weights_only=True)
    assert (state['epoch'], state['step']) == (1, 2)
    monkeypatch.delenv('DLAC_FAULT_INJECT')
    assert run_main(train, overrides) == 0
    ours = torch.load(osp.join(folder(interrupted), 'checkpoints', 'last.pth'), weights_only=True)
    theirs = torch.load(osp.join(folder(reference), 'checkpoints', 'last.pth'), weights_only=True)
    for key, value in theirs['model'].items():
        torch.testing.assert_close(ours['model'][key], value, atol=1e-5, rtol=1e-5)
    for key, value in theirs['ema'].items():
        torch.testing.assert_close(ours['ema'][key], value, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- learning check
LEARNING_RECIPE = {'MIXUP.ENABLE': True, 'MIXUP.ALPHA': 0.2, 'MIXUP.CUTMIX_ALPHA': 0.0,
                   'MIXUP.PROB': 0.3, 'TRAIN.LABEL_SMOOTHING': 0.05, 'TRAIN.LR_POLICY': 'cosine',
                   'TRAIN.WARMUP_EPOCHS': 0.5, 'TRAIN.EMA_DECAY': 0.98, 'TRAIN.BASE_LR': 0.02}
MID_PER_CLASS = [16, 6]


@pytest.fixture(scope='module')
def mid_root(tmp_path_factory):
    """128 training and 48 validation videos: enough to learn from in 8 short epochs."""
    from DataTool.Synthetic.synthetic import generate
    root = tmp_path_factory.mktemp('mid')
    generate(str(root / 'synthetic'), seed=0, videos_per_class=MID_PER_CLASS, frame_range=(24, 40),
             show_progress=False)
    return root


def best_top1(snapshot, model, tag):
    with open(osp.join(str(snapshot), 'ar_output', model, tag, 'training_policy.json'), encoding='utf-8') as handle:
        rows = json.load(handle)['per_epoch']
    return max(max(row['val_top1'], row.get('val_top1_ema') or 0) for row in rows)


# Two 8-epoch trainings each (TSN 3.5 minutes of one core, I3D 5 minutes of two): learning
# checks, not part of the suite's 10 minutes; the recipe's parts are tested one by one above
# and in test_recipes.py.
@pytest.mark.skipif(os.environ.get('DLAC_LEARNING_CHECKS') != 'all',
                    reason='a learning check of minutes; DLAC_LEARNING_CHECKS=all runs it')
@pytest.mark.parametrize('model, settings', [
    ('tsn', {}),
    ('i3d', {'BACKBONE': 'resnet18', 'DATASET.SCALE_SIZE': 56, 'DATASET.CROP_SIZE': 48,
             'VAL.NUM_CLIPS': 1, 'VAL.NUM_CROPS': 1})])
def test_the_recipe_learns_at_least_as_well_as_todays(mid_root, tmp_path, model, settings):
    """8 epochs each: Mixup + label smoothing + cosine with warmup + EMA against step decay.
    Measured here: TSN 45.8 (recipe) vs 43.8, I3D 54.2 vs 50.0 (README, Training recipes)."""
    common = dict(settings, **{'MODEL_NAME': model, 'TRAIN.EPOCHS': 8, 'TRAIN.LR_STEPS': [6],
                               'DATASET.SYNTHETIC_VIDEOS_PER_CLASS': MID_PER_CLASS,
                               'DATASET.SCALE_SIZE': settings.get('DATASET.SCALE_SIZE', 72),
                               'DATASET.CROP_SIZE': settings.get('DATASET.CROP_SIZE', 64),
                               'DATASET.NUM_WORKERS': 1, 'VAL.NUM_SEGMENTS': 8})
    results = {}
    for tag, extra in (('today', {}), ('recipe', LEARNING_RECIPE)):
        overrides = tiny_overrides(mid_root, tmp_path / tag, **dict(common, EXP_TAG=tag, **extra))
        assert run_main(train, overrides) == 0
        results[tag] = best_top1(tmp_path / tag, model, tag)
    print(f'{model}: best val top1 today {results["today"]:.1f}, recipe {results["recipe"]:.1f}')
    assert results['recipe'] >= results['today'] > 100 / 8
