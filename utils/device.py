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


def resolve_gpu_count(cfg):
    """GPUS given as a count (DLAC's meaning: `GPUS 8`) becomes the ids of that many visible
    GPUs; asking for more than there are warns once and runs on what is there (the CPU when
    there is none). A list of ids is left for check_gpu_ids."""
    if isinstance(cfg.GPUS, bool) or not isinstance(cfg.GPUS, int):
        return
    wanted = cfg.GPUS
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cfg.GPUS = list(range(min(wanted, available)))
    if wanted > available:
        where = f'GPUs {cfg.GPUS}' if cfg.GPUS else 'the CPU'
        print(f'warning: GPUS {wanted} asks for {wanted} GPUs, this machine shows {available}: '
              f'running on {where}', file=sys.stderr)


def select_device(cfg):
    """cuda:<first of GPUS> (made the current device) when a GPU exists and GPUS is
    non-empty, after checking every id; else the CPU. GPUS may be a count (DLAC)."""
    resolve_gpu_count(cfg)
    if not (torch.cuda.is_available() and cfg.GPUS):
        return torch.device('cpu')
    check_gpu_ids(cfg.GPUS)
    device = torch.device('cuda', cfg.GPUS[0])
    torch.cuda.set_device(device)
    return device


def place_model(model, cfg, device):
    """Move to `device`; wrap in DataParallel over every id in GPUS when there are several
    (select_device checked them), the first one being `device`."""
    model = model.to(device)
    if device.type == 'cuda' and len(cfg.GPUS) > 1:
        model = nn.DataParallel(model, device_ids=list(cfg.GPUS), output_device=device)
    return model
