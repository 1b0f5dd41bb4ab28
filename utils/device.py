"""Where the model runs: CPU, one GPU, or nn.DataParallel over cfg.GPUS."""
import os
import sys

import torch
import torch.nn as nn

from config import ConfigError


def set_cpu_threads(num_threads=0):
    torch.set_num_threads(num_threads or os.cpu_count() or 1)


def check_gpu_ids(gpus):
    """ConfigError (exit 2) unless every id in GPUS is a visible GPU, each once: an id that
    does not exist is never dropped silently."""
    count = torch.cuda.device_count()
    missing = [gpu for gpu in gpus if not isinstance(gpu, int) or not 0 <= gpu < count]
    repeated = sorted({gpu for gpu in gpus if list(gpus).count(gpu) > 1})
    if missing or repeated:
        visible = os.environ.get('CUDA_VISIBLE_DEVICES')
        seen = (f'{count} visible GPU{"s" if count != 1 else ""}, ids '
                f'{list(range(count))}' if count else 'no visible GPU')
        problem = (f'no GPU {missing}' if missing else f'{repeated} listed twice')
        raise ConfigError(
            f'GPUS {list(gpus)}: {problem}. This machine shows {seen} '
            f'(CUDA_VISIBLE_DEVICES={visible if visible is not None else "unset"}; ids count '
            'from 0 within the visible devices). Set GPUS to ids among them, e.g. GPUS "[0]"')


def gpu_ids(gpus, warn=False):
    """GPUS as ids: a list as it is; a count (DLAC's `GPUS 8`; config.build_config already
    turns it into ids) as the ids of that many visible GPUs, fewer when there are fewer
    (`warn`: saying so)."""
    if isinstance(gpus, bool) or not isinstance(gpus, int):
        return list(gpus)
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    ids = list(range(min(gpus, available)))
    if warn and gpus > available:
        where = f'GPUs {ids}' if ids else 'the CPU'
        print(f'warning: GPUS {gpus} asks for {gpus} GPUs, this machine shows {available}: '
              f'running on {where}', file=sys.stderr)
    return ids


def select_device(cfg):
    """cuda:<first of GPUS> (made the current device) when a GPU exists and GPUS is
    non-empty, after checking every id; else the CPU. GPUS may be a count (DLAC)."""
    gpus = gpu_ids(cfg.GPUS, warn=True)
    if not (torch.cuda.is_available() and gpus):
        return torch.device('cpu')
    check_gpu_ids(gpus)
    device = torch.device('cuda', gpus[0])
    torch.cuda.set_device(device)
    return device


def place_model(model, cfg, device):
    """Move to `device`; wrap in DataParallel over every id in GPUS when there are several
    (select_device checked them), the first one being `device`."""
    model = model.to(device)
    gpus = gpu_ids(cfg.GPUS)
    if device.type == 'cuda' and len(gpus) > 1:
        model = nn.DataParallel(model, device_ids=gpus, output_device=device)
    return model
