"""What a run ran on, for training_policy.json and the experiment table: the loader, the
parallel method, processes, nodes and GPUs, the software versions, and whether its training
is still going (an advisory lock the training process holds on its experiment folder)."""
import functools
import os.path as osp
import platform
import subprocess

import torch

from utils.acceleration import uses_data_parallel
from utils.distributed import local_processes
from utils.file_lock import is_locked, lock_if_free

PROJECT_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAINING_LOCK = '.training.lock'


def loader_method(cfg):
    """The seed table's Loader Method: DataLoaderX, SuperLoader, DataLoader, or Shards."""
    return 'Shards' if cfg.DATASET.INPUT_TYPE == 'shards' else cfg.DATASET.LOADER


def parallel_facts(cfg, ctx):
    """{'parallel': 'DP' or 'DDP', 'processes', 'nodes', 'gpus'}: DDP under torchrun (one GPU
    per process on GPUs), else one process, on len(GPUS) GPUs through DataParallel, one GPU,
    or the CPU (0 GPUs)."""
    nodes = max(1, ctx.world_size // local_processes(ctx.world_size)) if ctx.distributed else 1
    if ctx.device.type != 'cuda':
        gpus = 0
    elif ctx.distributed:
        gpus = ctx.world_size
    else:
        gpus = len(cfg.GPUS) if uses_data_parallel(cfg, ctx) else 1
    return {'parallel': 'DDP' if ctx.distributed else 'DP', 'processes': ctx.world_size,
            'nodes': nodes, 'gpus': gpus}


@functools.lru_cache(maxsize=1)
def software_versions():
    """Python, torch, CUDA and cuDNN (None on a CPU build), and this project's git commit
    (None outside a git checkout; 'dirty' when files differ from it)."""
    commit, dirty = None, None
    try:
        commit = subprocess.run(['git', '-C', PROJECT_ROOT, 'rev-parse', 'HEAD'], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip() or None
        status = subprocess.run(['git', '-C', PROJECT_ROOT, 'status', '--porcelain',
                                 '--untracked-files=no'], check=True, capture_output=True,
                                text=True, timeout=10).stdout
        dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {'python': platform.python_version(), 'torch': torch.__version__,
            'cuda': torch.version.cuda, 'cudnn': cudnn, 'dlac_commit': commit,
            'dlac_uncommitted_changes': dirty}


def training_marker(out_dir):
    """A lock on out_dir/.training.lock to hold while training (see lock_if_free): freed when
    the process ends, however it ends, so `is_training` never sees a dead run as running."""
    return lock_if_free(osp.join(out_dir, TRAINING_LOCK))


def is_training(out_dir):
    """Whether a process is training in the experiment folder `out_dir` now."""
    return is_locked(osp.join(out_dir, TRAINING_LOCK))
