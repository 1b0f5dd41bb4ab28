"""One training run's parts, typed: what train.py builds once and every epoch reads.

One name per object: `model` is the network itself (its weights are what checkpoints and
the EMA hold); `train_forward` is how a training step calls it (under DDP, DataParallel,
torch.compile and autocast, as configured); `eval_forward` is how validation calls it
(autocast only)."""
import logging
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.nn as nn

from utils.distributed import DistContext


class NullWriter:
    """Stands in for the TensorBoard writer on the processes that write nothing (DDP rank > 0)."""

    def add_scalar(self, *args, **kwargs):
        pass

    def add_image(self, *args, **kwargs):
        pass

    def close(self):
        pass


class StepHealth:
    """Across steps: how many in a row were skipped (a NaN/inf loss, or inf/NaN gradients
    that the float16 loss scaler refused), and how many this epoch."""

    def __init__(self, max_bad_steps):
        self.max_bad_steps = max_bad_steps
        self.in_a_row = 0
        self.skipped = 0


@dataclass
class ResumePoint:
    """Where a run starts: `epoch` epochs done and `step` optimizer steps of the next one
    (a run stopped mid-epoch), with that epoch's [loss sum, correct, clips] so far."""
    epoch: int = 0
    step: int = 0
    totals: Optional[list] = None
    best: Optional[float] = None      # the best validation figure so far: top1, or in
                                      # pre-training the lowest reconstruction loss
    history: list = field(default_factory=list)


@dataclass
class Run:
    cfg: Any                                  # the frozen config (config.build_config)
    ctx: DistContext
    logger: logging.Logger
    model: nn.Module
    train_forward: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    train_loader: Any
    base_lr: float                            # BASE_LR after DDP scaling: the schedule's base
    ema: Optional[Any] = None                 # engine.ema.ModelEma
    bad_samples: Optional[Any] = None         # utils.data_health.BadSampleTracker
    writer: Any = field(default_factory=NullWriter)
    health: Optional[StepHealth] = None       # default: from TRAIN.MAX_BAD_STEPS
    eval_forward: Optional[nn.Module] = None
    val_loader: Any = None
    out_dir: str = ''
    lr_scale: float = 1.0
    steps_per_epoch: int = 0
    start: ResumePoint = field(default_factory=ResumePoint)
    class_names: list = field(default_factory=list)

    def __post_init__(self):
        if self.health is None:
            self.health = StepHealth(self.cfg.TRAIN.MAX_BAD_STEPS)

    def validated_weights(self):
        """[(name 'raw' or 'ema', module, forward)]: the weights each validation measures, the
        EMA copy (TRAIN.EMA_DECAY) beside the raw ones, each called as validation calls it."""
        from utils.acceleration import with_autocast
        weights = [('raw', self.model, self.eval_forward)]
        if self.ema is not None:
            weights.append(('ema', self.ema.module, with_autocast(self.ema.module, self.cfg, self.ctx.device)))
        return weights

    @property
    def checkpoint_dir(self):
        return osp.join(self.out_dir, 'checkpoints')

    @property
    def last_path(self):
        return osp.join(self.checkpoint_dir, 'last.pth')

    @property
    def history(self):
        """Every finished epoch's record (resumed runs start with the earlier ones)."""
        return self.start.history
