"""The speed switches train.py and evaluate.py honour: TRAIN.AMP (+ AMP_DTYPE),
TRAIN.CHANNELS_LAST, TRAIN.COMPILE and TRAIN.DETERMINISTIC, and the one function that turns a
bare model into the module the loops call (`runnable_model`). Each switch is a no-op when off."""
import os

import torch
import torch.nn as nn

from config import ConfigError

from .device import place_model
from .distributed import wrap_model

AMP_DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16}


def check_acceleration(cfg, ctx):
    """Switch combinations this machine cannot run: a ConfigError (exit 2) before any work."""
    if cfg.TRAIN.AMP and cfg.TRAIN.AMP_DTYPE == 'float16' and ctx.device.type == 'cpu':
        raise ConfigError("TRAIN.AMP_DTYPE 'float16' needs a GPU (this run is on the CPU); use "
                          "'bfloat16' on the CPU, or TRAIN.AMP False")
    if cfg.TRAIN.COMPILE and uses_data_parallel(cfg, ctx):
        raise ConfigError(f'TRAIN.COMPILE does not work with nn.DataParallel over GPUS '
                          f'{list(cfg.GPUS)}: train with DDP instead (bash Script/run_train_ddp_m.sh '
                          f'-g {len(cfg.GPUS)}), which compiles, or use one GPU, or TRAIN.COMPILE False')


def uses_data_parallel(cfg, ctx):
    """Whether the model runs under nn.DataParallel: several GPUS, a GPU, no DDP."""
    return not ctx.distributed and ctx.device.type == 'cuda' and len(cfg.GPUS) > 1


def set_determinism(cfg):
    """TRAIN.DETERMINISTIC: deterministic cuDNN and torch kernels (warning where an op has
    none), so that a run and its resumed copy give the same losses on a GPU too. Off: cuDNN
    picks its fastest kernels, which may differ between runs."""
    on = bool(cfg.TRAIN.DETERMINISTIC)
    if on:      # cuBLAS needs a fixed workspace to be deterministic; read when CUDA starts
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
        torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = on
    torch.use_deterministic_algorithms(on, warn_only=True)


class AutocastForward(nn.Module):
    """Runs the wrapped model's forward under autocast with the configured dtype and returns
    float32 logits (the loss and softmax then run in float32).

    Autocast is entered inside forward rather than around the call, because nn.DataParallel
    runs each replica in a thread of its own and re-enters autocast there without a dtype:
    the replicas would compute in float16, whatever AMP_DTYPE says, and with no loss scaling.
    """

    def __init__(self, module, device_type, dtype):
        super().__init__()
        self.module = module
        self.device_type, self.dtype = device_type, dtype

    def forward(self, *inputs):
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.module(*inputs).float()

    def extra_repr(self):
        return f'device_type={self.device_type!r}, dtype={self.dtype}'


def with_autocast(model, cfg, device):
    """`model` wrapped in AutocastForward when TRAIN.AMP is on, else `model` itself."""
    if not cfg.TRAIN.AMP:
        return model
    return AutocastForward(model, torch.device(device).type, AMP_DTYPES[cfg.TRAIN.AMP_DTYPE])


def grad_scaler(cfg, device):
    """Loss scaling, needed with float16 only (bfloat16 has float32's exponent range)."""
    enabled = bool(cfg.TRAIN.AMP) and cfg.TRAIN.AMP_DTYPE == 'float16'
    return torch.amp.GradScaler(torch.device(device).type, enabled=enabled)


def to_channels_last(model):
    """2D conv weights to channels_last, 3D ones to channels_last_3d (nn.Module.to() takes
    one format for all, which fails on models that have both ranks)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
        elif tensor.dim() == 5:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def maybe_compile(model, cfg, logger=None):
    """torch.compile the model when TRAIN.COMPILE is set. Returns the module to call;
    checkpoints keep saving the bare one (compile prefixes the parameter names)."""
    if not cfg.TRAIN.COMPILE:
        return model
    if logger:
        logger.info('torch.compile: the first steps compile the model (minutes on a CPU)')
    return torch.compile(model)


def runnable_model(bare, cfg, ctx, logger=None, ddp=True):
    """The module the training or evaluation loop calls, around `bare` (on ctx.device, already
    channels-last if asked): autocast inside, then DDP (under torchrun, when `ddp`) or
    DataParallel (several GPUS), then torch.compile. Checkpoints save `bare`."""
    check_acceleration(cfg, ctx)
    model = with_autocast(bare, cfg, ctx.device)
    if ctx.distributed:
        model = wrap_model(model, ctx) if ddp else model
    else:
        model = place_model(model, cfg, ctx.device)
    return maybe_compile(model, cfg, logger)
