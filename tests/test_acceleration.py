"""TRAIN.AMP, CHANNELS_LAST, COMPILE, DETERMINISTIC and GPUS: what each switch does to a model
and a step, and the combinations that are refused before any work."""
import logging
import shutil
import subprocess
import sys
import threading

import pytest
import torch
import torch.nn as nn

from config import ConfigError
from conftest import ROOT, require, training_run
from utils.acceleration import (AutocastForward, check_acceleration, grad_scaler, maybe_compile,
                                runnable_model, set_determinism, to_channels_last, with_autocast)
from utils.device import place_model, select_device
from utils.distributed import DistContext
from utils.stopping import TrainingDiverged
from engine.train_state import resume_state, save_last
from engine.run import NullWriter, StepHealth
from engine.train_step import apply_step, train_one_epoch


class Mixed(nn.Module):
    """A 2D and a 3D convolution, as TSN-style and 3D models have."""

    def __init__(self):
        super().__init__()
        self.conv2d = nn.Conv2d(3, 4, 3)
        self.conv3d = nn.Conv3d(3, 4, 3)

    def forward(self, clips):
        frames = clips.transpose(1, 2).flatten(0, 1)
        return self.conv2d(frames).mean() + self.conv3d(clips).mean()


class DtypeProbe(nn.Module):
    """Records the autocast state its forward runs under."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.seen = []

    def forward(self, x):
        self.seen.append((torch.is_autocast_enabled('cpu'), torch.get_autocast_dtype('cpu')))
        return self.fc(x)


def test_channels_last_per_weight_rank(cfg):
    model = to_channels_last(Mixed())
    assert model.conv2d.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.conv3d.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert not model.conv2d.weight.is_contiguous()
    clips = torch.randn(2, 3, 4, 8, 8)
    reference = Mixed()
    reference.load_state_dict(model.state_dict())
    assert torch.allclose(model(clips), reference(clips), atol=1e-5)


def test_amp_runs_inside_forward_with_the_configured_dtype(cfg):
    probe = DtypeProbe()
    assert with_autocast(probe, cfg, 'cpu') is probe               # AMP off: no wrapper
    cfg.TRAIN.AMP = True
    model = with_autocast(probe, cfg, 'cpu')
    assert isinstance(model, AutocastForward)
    x = torch.randn(2, 4)
    logits = model(x)
    assert probe.seen[-1] == (True, torch.bfloat16)
    assert logits.dtype == torch.float32                          # the loss runs in float32
    torch.testing.assert_close(logits, probe.fc(x), atol=0.05, rtol=0.05)

    # nn.DataParallel's replica threads re-enter autocast without a dtype (float16 on CUDA):
    # the wrapper's own autocast, entered inside forward, decides the dtype.
    def replica():
        with torch.autocast('cpu', dtype=torch.float16):
            model(x)
    thread = threading.Thread(target=replica)
    thread.start()
    thread.join()
    assert probe.seen[-1] == (True, torch.bfloat16)
    assert not grad_scaler(cfg, 'cpu').is_enabled()             # bfloat16 needs no scaling
    cfg.TRAIN.AMP_DTYPE = 'float16'
    assert grad_scaler(cfg, 'cpu').is_enabled()                  # float16 does


def test_runnable_model_wraps_in_order_and_trains_the_bare_weights(cfg):
    cfg.TRAIN.AMP = True
    bare = DtypeProbe()
    model = runnable_model(bare, cfg, DistContext())
    assert isinstance(model, AutocastForward) and model.module is bare
    model(torch.randn(1, 4)).sum().backward()
    assert bare.fc.weight.grad is not None and bare.seen[-1] == (True, torch.bfloat16)


def test_float16_on_the_cpu_is_a_config_error(cfg):
    cfg.TRAIN.AMP, cfg.TRAIN.AMP_DTYPE = True, 'float16'
    with pytest.raises(ConfigError, match="'float16' needs a GPU"):
        check_acceleration(cfg, DistContext())
    check_acceleration(cfg, DistContext(device=torch.device('cuda', 0)))      # fine on a GPU


@pytest.mark.slow
def test_float16_on_the_cpu_exits_2_from_the_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, 'train.py', 'TRAIN.AMP', 'True', 'TRAIN.AMP_DTYPE', 'float16',
         'SNAPSHOT_ROOT', str(tmp_path), 'DATASET.ROOT_PATH', str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: TRAIN.AMP_DTYPE 'float16' needs a GPU" in result.stderr
    assert 'Traceback' not in result.stderr


def test_compile_with_data_parallel_is_refused(cfg):
    cfg.TRAIN.COMPILE, cfg.GPUS = True, [0, 1]
    gpu = DistContext(device=torch.device('cuda', 0))
    with pytest.raises(ConfigError, match=r'TRAIN.COMPILE does not work with nn.DataParallel over '
                                          r'GPUS \[0, 1\].*run_train_ddp_m.sh -g 2'):
        check_acceleration(cfg, gpu)
    check_acceleration(cfg, DistContext())                                  # CPU: no DataParallel
    check_acceleration(cfg, DistContext(world_size=2, device=gpu.device, backend='nccl'))  # DDP
    cfg.GPUS = [0]
    check_acceleration(cfg, gpu)                                             # one GPU


@pytest.mark.slow
def test_compile_switch(cfg):
    model = Mixed()
    assert maybe_compile(model, cfg) is model
    require(shutil.which('cc') or shutil.which('gcc'), 'torch.compile on the CPU needs a C compiler')
    cfg.TRAIN.COMPILE = True
    compiled = maybe_compile(model, cfg)
    assert compiled is not model
    clips = torch.randn(1, 3, 4, 8, 8)
    assert torch.allclose(compiled(clips), model(clips), atol=1e-5)


def test_deterministic_switch(cfg):
    try:
        cfg.TRAIN.DETERMINISTIC = True
        set_determinism(cfg)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        cfg.TRAIN.DETERMINISTIC = False
        set_determinism(cfg)
        assert not torch.are_deterministic_algorithms_enabled()
        assert not torch.backends.cudnn.deterministic
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False


@pytest.fixture
def two_visible_gpus(monkeypatch):
    """torch.cuda as it looks on a machine with two visible GPUs; records set_device."""
    current = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(torch.cuda, 'set_device', current.append)
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '4,6')
    return current


def test_gpu_ids_are_checked_and_the_first_becomes_current(cfg, two_visible_gpus):
    cfg.GPUS = [1, 0]
    assert select_device(cfg) == torch.device('cuda', 1)
    assert two_visible_gpus == [torch.device('cuda', 1)]
    cfg.GPUS = [0, 2, 3]
    with pytest.raises(ConfigError, match=r'GPUS \[0, 2, 3\]: no GPU \[2, 3\]\. This machine shows '
                                          r'2 visible GPUs, ids \[0, 1\] \(CUDA_VISIBLE_DEVICES=4,6'):
        select_device(cfg)
    cfg.GPUS = [0, 0]
    with pytest.raises(ConfigError, match=r'GPUS \[0, 0\]: \[0\] listed twice'):
        select_device(cfg)
    cfg.GPUS = []
    assert select_device(cfg) == torch.device('cpu')


def test_data_parallel_gets_every_configured_gpu(cfg, monkeypatch):
    built = {}

    class FakeDataParallel(nn.Module):
        def __init__(self, module, device_ids, output_device):
            super().__init__()
            built.update(device_ids=device_ids, output_device=output_device)

    monkeypatch.setattr(nn, 'DataParallel', FakeDataParallel)
    cfg.GPUS = [1, 0]
    model = nn.Linear(2, 2)
    monkeypatch.setattr(model, 'to', lambda device: model)
    assert isinstance(place_model(model, cfg, torch.device('cuda', 1)), FakeDataParallel)
    assert built == {'device_ids': [1, 0], 'output_device': torch.device('cuda', 1)}


# ---------------------------------------------------------------- loss scaling
class InfGradient(torch.autograd.Function):
    """Identity forward; inf/NaN gradient backward: what float16 overflow looks like."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float('inf')


class PoisonedSteps(nn.Module):
    """A tiny classifier whose gradient overflows on the steps listed in `poisoned`."""

    def __init__(self, poisoned):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.poisoned, self.calls = set(poisoned), 0

    def forward(self, clips):
        logits = self.fc(clips.mean(dim=(2, 3, 4)))
        self.calls += 1
        return InfGradient.apply(logits) if self.calls - 1 in self.poisoned else logits


class FourBatches:
    """A loader of 4 batches of 2 uint8 clips; its dataset names samples."""

    class dataset:
        @staticmethod
        def describe(index):
            return f'sample{index}'

    def __len__(self):
        return 4

    def __iter__(self):
        generator = torch.Generator().manual_seed(0)
        for step in range(4):
            clips = torch.randint(0, 256, (2, 3, 1, 4, 4), dtype=torch.uint8, generator=generator)
            yield clips, torch.tensor([0, 1]), torch.tensor([2 * step, 2 * step + 1])


class RecordingWriter(NullWriter):
    def __init__(self):
        self.scalars = []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, step))


def run_epoch(cfg, model, scaler):
    writer, health = RecordingWriter(), StepHealth(cfg.TRAIN.MAX_BAD_STEPS)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    run = training_run(cfg, model, FourBatches(), optimizer, 0.1, writer=writer, scaler=scaler,
                       health=health)
    result = train_one_epoch(run, 0, 0, None, None)
    return result, writer, health


def test_steps_the_loss_scaler_skips_are_counted_logged_and_left_out(cfg, caplog):
    cfg.TRAIN.PRINT_FREQ = 100
    scaler = torch.amp.GradScaler('cpu', init_scale=1024.0)
    model = PoisonedSteps(poisoned={1})
    with caplog.at_level(logging.WARNING):
        (loss, _, steps), writer, health = run_epoch(cfg, model, scaler)
    assert steps == 4 and health.skipped == 1 and health.in_a_row == 0
    assert [step for tag, step in writer.scalars if tag == 'train/loss'] == [0, 2, 3]
    assert scaler.get_scale() == 512.0                   # halved once, by the skipped step
    assert 'epoch 1 step 2: inf/NaN gradients at loss scale 1024' in caplog.text
    assert 'Samples of this batch: sample2; sample3' in caplog.text
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_loss_scaler_skips_in_a_row_stop_training(cfg):
    cfg.TRAIN.MAX_BAD_STEPS = 3
    with pytest.raises(TrainingDiverged, match=r'step 3: 3 steps in a row were skipped '
                                               r'\(TRAIN.MAX_BAD_STEPS\), the last for inf/NaN gradients'):
        run_epoch(cfg, PoisonedSteps(poisoned={0, 1, 2, 3}), torch.amp.GradScaler('cpu'))


def test_apply_step_reports_what_the_scaler_did(cfg):
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler('cpu', init_scale=8.0)
    before = model.weight.detach().clone()
    scaler.scale(model(torch.ones(1, 2)).sum()).backward()
    model.weight.grad[0, 0] = float('inf')
    assert not apply_step(optimizer, scaler)
    assert torch.equal(model.weight, before) and scaler.get_scale() == 4.0
    optimizer.zero_grad()
    scaler.scale(model(torch.ones(1, 2)).sum()).backward()
    assert apply_step(optimizer, scaler) and not torch.equal(model.weight, before)
    assert apply_step(optimizer, grad_scaler(cfg, 'cpu'))            # no scaling: plain step


def test_loss_scaler_state_is_saved_in_last_pth_and_restored(cfg, tmp_path):
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler('cpu')
    scaler.load_state_dict({'scale': 256.0, 'growth_factor': 2.0, 'backoff_factor': 0.5,
                            'growth_interval': 2000, '_growth_tracker': 7})
    run = training_run(cfg, model, None, optimizer, 0.1, scaler=scaler, out_dir=str(tmp_path),
                       class_names=['a', 'b'])
    save_last(run, 1, None)
    saved = torch.load(run.last_path, weights_only=True)
    assert saved['class_names'] == ['a', 'b'] and saved['config']['TRAIN'] == dict(cfg.TRAIN)

    cfg.TRAIN.RESUME = run.last_path
    restored = torch.amp.GradScaler('cpu')
    start = resume_state(cfg, nn.Linear(2, 2), torch.optim.SGD(model.parameters(), lr=0.1),
                         restored, str(tmp_path), logging.getLogger('test'), DistContext())
    assert start.epoch == 1
    assert restored.state_dict() == scaler.state_dict() and restored.get_scale() == 256.0
