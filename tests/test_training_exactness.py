"""The training arithmetic a reproduced published result depends on, each checked against a
computation done here by hand: per-group LR multipliers at every step of every LR policy,
gradient accumulation with uneven micro-batches and a short last step, unscaling before
clipping, EMA of parameters and BN buffers, precise BN on a model in eval mode."""
import logging

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import training_run
from engine.ema import ModelEma
from engine.lr_schedule import learning_rate
from engine.optimizer import build_optimizer
from engine.precise_bn import recompute_bn_stats
from engine.train_step import steps_in, train_one_epoch

LOG = logging.getLogger('test')


class Batches:
    """A loader of fixed batches: (uint8 clips [B, 3, 1, 2, 2], labels, indices)."""

    def __init__(self, sizes, seed=0):
        generator = torch.Generator().manual_seed(seed)
        total = sum(sizes)
        self.clips = torch.randint(0, 256, (total, 3, 1, 2, 2), dtype=torch.uint8, generator=generator)
        self.labels = torch.randint(0, 3, (total,), generator=generator)
        self.sizes, self.dataset = sizes, None

    def __len__(self):
        return len(self.sizes)

    def __iter__(self):
        start = 0
        for size in self.sizes:
            yield (self.clips[start:start + size], self.labels[start:start + size],
                   torch.arange(start, start + size))
            start += size


class TinyNet(nn.Module):
    """Linear layers with biases, a BN, and a head: every multiplier of the 'tsn' policy, the
    head LR multiplier and layer-wise decay (`layer_of`) apply to some parameter."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.BatchNorm1d(6), nn.ReLU())
        self.head = nn.Module()
        self.head.fc = nn.Linear(6, 3)

    def layer_of(self, name):
        return 2 if name.startswith('head.') else 1 if name.startswith('body.2') else 0

    def forward(self, x):
        return self.head.fc(self.body(x))


def epoch_lrs(cfg, model, loader, epochs, base_lr):
    """Every group's LR at each optimizer step (read when the step is applied) over `epochs`."""
    optimizer = build_optimizer(model, cfg, base_lr)
    seen = []
    original_step = optimizer.step

    def recording_step(*args, **kwargs):
        seen.append([group['lr'] for group in optimizer.param_groups])
        return original_step(*args, **kwargs)
    optimizer.step = recording_step
    run = training_run(cfg, model, loader, optimizer, base_lr)
    for epoch in range(epochs):
        train_one_epoch(run, epoch, 0, None, None)
    return seen, [group['lr_mult'] for group in optimizer.param_groups]


@pytest.mark.parametrize('policy', ['step', 'cosine', 'sgdr'])
def test_every_group_keeps_its_lr_multiplier_at_every_step_of_every_policy(cfg, policy):
    """TSN's 2x bias LR, HEAD_LR_MULT and LAYER_DECAY hold at every step, not only the first."""
    cfg.TRAIN.LR_POLICY, cfg.TRAIN.EPOCHS, cfg.TRAIN.LR_STEPS = policy, 3, [1, 2]
    cfg.TRAIN.WARMUP_EPOCHS, cfg.TRAIN.WARMUP_START_LR, cfg.TRAIN.SGDR_PERIOD_EPOCHS = 0.5, 0.01, 1.0
    cfg.TRAIN.PARAM_GROUPS, cfg.TRAIN.HEAD_LR_MULT, cfg.TRAIN.LAYER_DECAY = 'tsn', 10.0, 0.5
    cfg.TRAIN.PRINT_FREQ = 100
    torch.manual_seed(0)
    seen, multipliers = epoch_lrs(cfg, TinyNet(), Batches([4] * 4), epochs=3, base_lr=0.1)
    assert sorted(multipliers) == [0.25, 0.5, 10.0, 20.0]     # depth, 2x biases and the head: all there
    assert len(seen) == 12
    for step, lrs in enumerate(seen):
        lr = learning_rate(cfg.TRAIN, 0.1, step, 4)
        assert lrs == pytest.approx([lr * mult for mult in multipliers]), f'step {step}'
    assert len({round(lrs[0], 9) for lrs in seen}) > 3              # the schedule did move


def step_by_hand(weights, clips, labels, lr):
    """One plain SGD step of the mean cross-entropy over `clips` (float64)."""
    weight, bias = (w.clone().requires_grad_(True) for w in weights)
    loss = F.cross_entropy(clips.double().flatten(1) @ weight.T + bias, labels)
    loss.backward()
    return [weight.detach() - lr * weight.grad, bias.detach() - lr * bias.grad]


@pytest.mark.parametrize('sizes, accum, groups', [
    ([3, 1, 2, 2], 2, [[0, 1], [2, 3]]),          # uneven micro-batches: 3 and 1 clips
    ([2, 2, 2, 1], 3, [[0, 1, 2], [3]]),          # a short last step of one batch
    ([1, 3, 2], 2, [[0, 1], [2]])], ids=['uneven', 'short-last', 'both'])
def test_accumulated_steps_average_over_clips_and_keep_the_short_last_step(cfg, sizes, accum, groups):
    """Each step's gradient is that of the mean loss over all its clips (micro-batches weighted
    by their share of clips, not 1/k), the step count is rounded up, and the last short group is
    applied."""
    cfg.TRAIN.ACCUM_STEPS, cfg.TRAIN.CLIP_GRAD, cfg.TRAIN.PRINT_FREQ = accum, 0.0, 100
    cfg.DATASET.MEAN, cfg.DATASET.STD, cfg.DATASET.VALUE_RANGE = [0.0] * 3, [1.0] * 3, 1.0   # x / 255
    loader = Batches(sizes)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    expected = [model[1].weight.detach().double(), model[1].bias.detach().double()]
    batches = list(loader)
    for group in groups:
        clips = torch.cat([batches[i][0] for i in group]).double() / 255.0
        labels = torch.cat([batches[i][1] for i in group])
        expected = step_by_hand(expected, clips, labels, lr=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    _, _, steps = train_one_epoch(training_run(cfg, model, loader, optimizer, 0.5), 0, 0, None, None)
    assert steps == len(groups) == steps_in(len(sizes), accum)
    torch.testing.assert_close(model[1].weight.detach().double(), expected[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[1].bias.detach().double(), expected[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('batches, accum, steps', [(1, 1, 1), (5, 2, 3), (6, 2, 3), (7, 3, 3), (2, 4, 1)])
def test_steps_in_rounds_up(batches, accum, steps):
    assert steps_in(batches, accum) == steps


def test_gradients_are_unscaled_before_they_are_clipped(cfg):
    """An enabled float16 loss scaler (on the CPU) with an active clip gives the weights a
    run without the scaler gives: clipping sees the true gradient norm."""
    cfg.TRAIN.CLIP_GRAD, cfg.TRAIN.PRINT_FREQ = 0.05, 100
    results = []
    for enabled in (False, True):
        torch.manual_seed(3)
        model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        before = model[1].weight.detach().clone()
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 12, enabled=enabled)
        train_one_epoch(training_run(cfg, model, Batches([4, 4]), optimizer, 1.0, scaler=scaler),
                        0, 0, None, None)
        results.append(model[1].weight.detach())
        change = (model[1].weight.detach() - before).norm().item()
        assert 0.01 < change <= 2 * 0.05 * 1.0 + 1e-6             # two steps, each clipped to 0.05
    torch.testing.assert_close(results[1], results[0], rtol=1e-5, atol=1e-6)


def test_ema_averages_bn_running_statistics_too():
    """The EMA copy's BN buffers follow the model's like its parameters (an EMA of weights
    evaluated with stale statistics is wrong); integer buffers are copied."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5))
    ema = ModelEma(model, decay=0.8)
    expected = {name: value.clone() for name, value in ema.module.state_dict().items()}
    for step in range(3):
        model(torch.randn(16, 4) * (step + 2) + step)          # changes the running statistics
        with torch.no_grad():
            model[0].weight.add_(0.1)
        ema.update()
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                expected[name] = 0.8 * expected[name] + 0.2 * value
            else:
                expected[name] = value.clone()
    state = ema.module.state_dict()
    for name in ('1.running_mean', '1.running_var', '0.weight', '1.weight'):
        torch.testing.assert_close(state[name], expected[name], msg=name)
    assert state['1.num_batches_tracked'].item() == 3
    assert not torch.allclose(state['1.running_mean'], torch.zeros(5))


def test_precise_bn_recomputes_a_model_held_in_eval_mode():
    """The EMA copy is kept in eval mode: precise BN must still recompute all its layers."""
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.ReLU(), nn.BatchNorm2d(3)).eval()
    batches = [torch.randn(4, 2, 5, 5) * (i + 1) + i for i in range(3)]
    assert recompute_bn_stats(model, batches) == 2
    flat = model[0](torch.cat(batches)).detach().double().transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(model[1].running_mean.double(), flat.mean(dim=1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[1].running_var.double(), flat.var(dim=1), rtol=1e-5, atol=1e-6)
