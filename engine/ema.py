"""An exponential moving average of the weights (TRAIN.EMA_DECAY), as timm's ModelEmaV2 and
PySlowFast keep it: after every optimizer step, each floating-point parameter and buffer of
the copy becomes decay * copy + (1 - decay) * model (integer buffers are copied). The copy is
evaluated alongside the raw weights and saved in the checkpoints."""
import copy

import torch


class ModelEma:
    def __init__(self, model, decay):
        self.source, self.decay = model, float(decay)
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self):
        source = self.source.state_dict()
        for name, value in self.module.state_dict().items():
            if value.is_floating_point():
                value.mul_(self.decay).add_(source[name].detach(), alpha=1.0 - self.decay)
            else:
                value.copy_(source[name])

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state):
        self.module.load_state_dict(state)


def build_ema(model, cfg):
    """A ModelEma of `model` (the bare model) when TRAIN.EMA_DECAY > 0, else None."""
    return ModelEma(model, cfg.TRAIN.EMA_DECAY) if cfg.TRAIN.EMA_DECAY > 0 else None
