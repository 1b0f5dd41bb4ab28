"""Training recipes: optimizers and their parameter groups, label smoothing, Mixup/CutMix on
clips, clip-consistent RandAugment and random erasing, EMA, precise BN and gradient
accumulation, each checked against its formula."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import training_run
from datasets.rand_augment import OPS, ClipRandAugment, ClipRandomErasing, parse_rand_augment
from models.tsn import TSN
from engine.ema import ModelEma
from engine.mixup import Mixup, smoothed_one_hot, soft_target_cross_entropy
from engine.optimizer import build_optimizer, parameter_groups
from engine.precise_bn import recompute_bn_stats
from engine.train_step import train_one_epoch


def test_zero_weight_decay_on_1d_parameters_and_a_head_lr_multiplier(cfg):
    model = TSN(8, 'resnet18')
    cfg.TRAIN.ZERO_WD_1D_PARAM, cfg.TRAIN.HEAD_LR_MULT, cfg.TRAIN.WEIGHT_DECAY = True, 10.0, 1e-4
    optimizer = build_optimizer(model, cfg, 0.1)
    decay = {name: (group['lr'], group['weight_decay'])
             for group in optimizer.param_groups for name in group['param_names']}
    assert set(decay) == {name for name, _ in model.named_parameters()}
    for name, parameter in model.named_parameters():
        lr = 1.0 if name.startswith('head.') else 0.1
        assert decay[name] == (pytest.approx(lr), 0.0 if parameter.dim() <= 1 else 1e-4), name
    assert sum(p.dim() <= 1 for p in model.parameters()) == 20 * 2 + 1      # 20 BNs and the fc bias


def test_adamw_and_nesterov(cfg):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    cfg.TRAIN.OPTIMIZER, cfg.TRAIN.WEIGHT_DECAY = 'adamw', 0.05
    optimizer = build_optimizer(model, cfg, 1e-3)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]['weight_decay'] == 0.05
    cfg.TRAIN.OPTIMIZER, cfg.TRAIN.NESTEROV = 'sgd', True
    assert build_optimizer(model, cfg, 1e-3).param_groups[0]['nesterov'] is True
    assert [g['decay_mult'] for g in parameter_groups(model, 'tsn')] == [1.0, 0.0, 0.0]


def test_label_smoothing_matches_its_formula(cfg):
    logits, labels = torch.randn(5, 7, dtype=torch.float64), torch.tensor([0, 3, 6, 2, 2])
    smoothing = 0.1
    log_probs = F.log_softmax(logits, dim=1)
    expected = -((1 - smoothing) * log_probs[torch.arange(5), labels] + smoothing * log_probs.mean(dim=1)).mean()
    torch.testing.assert_close(nn.CrossEntropyLoss(label_smoothing=smoothing)(logits, labels), expected)
    targets = smoothed_one_hot(labels, 7, smoothing)
    torch.testing.assert_close(soft_target_cross_entropy(logits, targets).double(), expected)
    assert targets.sum(dim=1).tolist() == pytest.approx([1.0] * 5)


def test_mixup_blends_a_known_pair_and_its_targets(monkeypatch):
    monkeypatch.setattr('engine.mixup.beta_sample', lambda alpha: 0.7)
    torch.manual_seed(0)
    clips = torch.randn(2, 3, 4, 8, 8)
    labels = torch.tensor([1, 4])
    mixed, targets, dominant, lam = Mixup(5, alpha=0.8, cutmix_alpha=0.0, prob=1.0,
                                          label_smoothing=0.0)(clips, labels)
    assert lam == 0.7 and dominant.tolist() == [1, 4]
    torch.testing.assert_close(mixed[0], 0.7 * clips[0] + 0.3 * clips[1])
    assert targets[0].tolist() == pytest.approx([0, 0.7, 0, 0, 0.3])
    assert targets.sum(dim=1).tolist() == pytest.approx([1.0, 1.0])


def test_cutmix_pastes_the_same_box_in_every_frame(monkeypatch):
    """Seed 2 puts the box's centre near an edge, so it is clipped: lambda must then be the
    share of the area actually kept, not the Beta draw."""
    monkeypatch.setattr('engine.mixup.beta_sample', lambda alpha: 0.75)
    torch.manual_seed(2)
    clips = torch.stack([torch.zeros(3, 4, 16, 16), torch.ones(3, 4, 16, 16)])
    mixed, targets, dominant, lam = Mixup(10, alpha=0.0, cutmix_alpha=1.0, prob=1.0,
                                          label_smoothing=0.1)(clips, torch.tensor([2, 9]))
    pasted = mixed[0, 0, 0] == 1                                  # the box, from clip 1
    assert 0 < pasted.sum() < 64                                  # an 8 x 8 box, clipped
    assert lam != 0.75
    assert all(torch.equal(mixed[0, c, t] == 1, pasted) for c in range(3) for t in range(4))
    assert lam == pytest.approx(1 - pasted.sum().item() / 256)
    smooth = 0.1 / 10
    assert targets[0, 2].item() == pytest.approx(lam * (0.9 + smooth) + (1 - lam) * smooth)
    assert targets[0, 9].item() == pytest.approx((1 - lam) * (0.9 + smooth) + lam * smooth)
    assert targets.sum(dim=1).tolist() == pytest.approx([1.0, 1.0])
    assert dominant.tolist() == ([2, 9] if lam >= 0.5 else [9, 2])
    assert math.isclose(lam, 1 - ((mixed[0] != clips[0]).float().mean().item()), rel_tol=1e-6)


def test_mixup_off_with_probability_zero_leaves_the_batch():
    clips, labels = torch.randn(2, 3, 2, 4, 4), torch.tensor([0, 1])
    mixed, targets, dominant, lam = Mixup(3, prob=0.0, label_smoothing=0.0)(clips, labels)
    assert lam == 1.0 and torch.equal(mixed, clips) and targets.argmax(1).tolist() == [0, 1]


# ---------------------------------------------------------------- RandAugment, random erasing
def test_rand_augment_is_the_same_on_every_frame_and_differs_across_clips():
    frame = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    static = np.repeat(frame[None], 6, axis=0)
    augment = ClipRandAugment('rand-m9-n2')
    outputs = []
    for seed in range(12):
        out = augment(static, np.random.default_rng(seed))
        assert out.shape == static.shape and out.dtype == np.uint8
        assert not np.abs(np.diff(out.astype(int), axis=0)).any()      # still a static clip
        outputs.append(out[0])
    assert len({o.tobytes() for o in outputs}) > 6                     # clips draw their own ops
    assert any(not np.array_equal(o, frame) for o in outputs)
    assert parse_rand_augment('rand-m7-n3-mstd0.5') == (7.0, 3, 0.5)
    with pytest.raises(ValueError, match="expected 'rand-m<magnitude>-n<ops>'"):
        parse_rand_augment('randaug9')


def test_every_rand_augment_op_keeps_frames_equal():
    frame = np.random.default_rng(1).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    static = np.repeat(frame[None], 3, axis=0)
    for op in OPS:
        out = op(static, 9.0, np.random.default_rng(2))
        assert out.shape == static.shape and out.dtype == np.uint8, op.__name__
        assert np.array_equal(out[0], out[1]) and np.array_equal(out[1], out[2]), op.__name__
    assert np.array_equal(OPS[2](static, 9, None), 255 - static)          # invert


def test_random_erasing_erases_one_box_in_every_frame():
    clip = np.zeros((4, 40, 40, 3), dtype=np.uint8)
    erased = ClipRandomErasing(1.0)(clip, np.random.default_rng(5))
    boxes = [np.argwhere(frame.any(axis=-1)) for frame in erased]
    corners = {(tuple(b.min(axis=0)), tuple(b.max(axis=0))) for b in boxes}
    assert len(corners) == 1                                            # the same box
    (top, left), (bottom, right) = corners.pop()
    assert 0.02 * 1600 * 0.5 <= (bottom - top + 1) * (right - left + 1) <= 1600 / 3 + 80
    assert ClipRandomErasing(0.0)(clip, np.random.default_rng(5)) is clip


# ---------------------------------------------------------------- EMA, precise BN, accumulation
def test_ema_after_k_steps_is_the_closed_form():
    model = nn.Linear(1, 1, bias=False)
    ema = ModelEma(model, decay=0.9)
    values = [0.0]
    with torch.no_grad():
        model.weight.fill_(0.0)
        ema.module.weight.fill_(0.0)
        for k in range(1, 6):
            model.weight.fill_(float(k))
            values.append(float(k))
            ema.update()
    expected = sum(0.1 * 0.9 ** (5 - k) * values[k] for k in range(1, 6))
    assert ema.module.weight.item() == pytest.approx(expected)
    assert not ema.module.weight.requires_grad


def test_precise_bn_statistics_are_the_exact_mean_and_variance():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.ReLU(), nn.BatchNorm2d(3))
    batches = [torch.randn(4, 2, 5, 5) * (i + 1) + i for i in range(3)]
    assert recompute_bn_stats(model, batches) == 2
    inputs = model[0](torch.cat(batches)).detach().double()
    flat = inputs.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(model[1].running_mean.double(), flat.mean(dim=1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[1].running_var.double(), flat.var(dim=1), rtol=1e-5, atol=1e-6)
    frozen = nn.BatchNorm2d(2).eval()
    before = frozen.running_var.clone()
    holder = nn.Sequential(frozen)
    holder.train = lambda mode=True: holder          # a model that keeps this BN frozen (partial BN)
    assert recompute_bn_stats(holder, batches) == 0 and torch.equal(frozen.running_var, before)


def test_k_accumulated_steps_equal_one_step_of_k_times_the_batch(cfg):
    """No batch-dependent layers: 4 micro-batches of 2 give the weights one batch of 8 gives."""
    from test_acceleration import RecordingWriter
    torch.manual_seed(0)
    clips = torch.randint(0, 256, (8, 3, 1, 4, 4), dtype=torch.uint8)
    labels = torch.randint(0, 4, (8,))

    class Loader:
        def __init__(self, batch):
            self.batch = batch
            self.dataset = None

        def __len__(self):
            return 8 // self.batch

        def __iter__(self):
            for start in range(0, 8, self.batch):
                yield (clips[start:start + self.batch], labels[start:start + self.batch],
                       torch.arange(start, start + self.batch))

    weights = []
    for batch, accum in ((8, 1), (2, 4)):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Flatten(), nn.Linear(48, 4))
        cfg.TRAIN.ACCUM_STEPS = accum
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
        run = training_run(cfg, model, Loader(batch), optimizer, 0.5, writer=RecordingWriter())
        _, _, steps = train_one_epoch(run, 0, 0, None, None)
        assert steps == 1
        weights.append([p.detach().clone() for p in model.parameters()])
    for single, accumulated in zip(*weights):
        torch.testing.assert_close(accumulated, single, atol=1e-6, rtol=1e-6)
