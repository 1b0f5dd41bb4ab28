"""The speed switches train.py and evaluate.py honour: TRAIN.AMP (+ AMP_DTYPE),
TRAIN.CHANNELS_LAST and TRAIN.COMPILE. Each is a no-op when off, so the loops use them always."""
import contextlib

import torch

AMP_DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16}


def autocast(cfg, device):
    """Mixed precision for the forward pass: bf16 on CPU or GPU, fp16 on GPU."""
    if not cfg.TRAIN.AMP:
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    dtype = AMP_DTYPES[cfg.TRAIN.AMP_DTYPE]
    if device_type == 'cpu' and dtype == torch.float16:
        raise ValueError("TRAIN.AMP_DTYPE 'float16' needs a GPU; use 'bfloat16' on the CPU")
    return torch.autocast(device_type, dtype=dtype)


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
