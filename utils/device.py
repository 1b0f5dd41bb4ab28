"""Where the model runs: CPU, one GPU, or nn.DataParallel over cfg.GPUS."""
import os

import torch
import torch.nn as nn


def set_cpu_threads(num_threads=0):
    torch.set_num_threads(num_threads or os.cpu_count() or 1)


def select_device(cfg):
    """cuda:<first of GPUS> when a GPU exists and GPUS is non-empty, else the CPU."""
    if torch.cuda.is_available() and cfg.GPUS:
        return torch.device('cuda', cfg.GPUS[0])
    return torch.device('cpu')


def place_model(model, cfg, device):
    """Move to `device`; wrap in DataParallel when several GPUs are configured and present."""
    model = model.to(device)
    if device.type == 'cuda' and len(cfg.GPUS) > 1:
        usable = [gpu for gpu in cfg.GPUS if gpu < torch.cuda.device_count()]
        if len(usable) > 1:
            model = nn.DataParallel(model, device_ids=usable)
    return model
