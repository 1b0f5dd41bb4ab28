"""Online TSM: a TSM trained with MODEL.TSM_SHIFT 'online' run one frame at a time.

The online shift is causal: the moved channels of frame t come from frame t-1 only. So a
stream needs no clip: each shifted block keeps the channels its input had on the previous
frame (the TSM authors' online scheme) and hands them to the next frame. A frame costs one
2D forward pass, where a sliding window re-runs the whole clip for every new frame.

`OnlineStep` is that one frame as a module with the cached channels as explicit inputs and
outputs (so torch.export and ONNX can stream it too); `OnlineRunner` keeps the caches between
calls and averages the per-frame logits over the last N frames, like the clip's consensus.
"""
from collections import deque

import numpy as np
import torch
import torch.nn as nn

from .errors import ModelOptionError
from .heads import segment_consensus
from .tsm import TSM, TemporalShift


class StreamSlots:
    """The channels the shift calls of one frame exchange with the neighbouring frames:
    `incoming` (cached from the previous frame, in call order; None: zeros, the first frame
    of a stream) and `outgoing` (this frame's, for the next one)."""

    def __init__(self, incoming=None):
        self.incoming = list(incoming) if incoming is not None else None
        self.outgoing = []

    def shift(self, x, fold_div):
        fold = x.shape[1] // fold_div
        if self.incoming is None:
            cached = torch.zeros_like(x[:, :fold])
        else:
            cached = self.incoming[len(self.outgoing)]
        self.outgoing.append(x[:, :fold].clone())
        return torch.cat([cached, x[:, fold:]], dim=1)


def check_online(model):
    """The model when it can run online: a TSM with the causal shift, on RGB frames."""
    if not isinstance(model, TSM) or getattr(model, 'shift_mode', None) != 'online':
        raise ModelOptionError('an online runner needs MODEL_NAME tsm with MODEL.TSM_SHIFT online '
                               '(trained so: the bidirectional shift looks at the next frame)')
    if model.modality != 'RGB':
        raise ModelOptionError(f'the online runner takes RGB frames, not MODALITY {model.modality}')
    return model


class OnlineStep(nn.Module):
    """(frame [N, 3, H, W], *caches) -> (per-frame logits [N, K], *next caches). With no
    caches the stream starts (zeros, as the offline model's first frame)."""

    def __init__(self, model):
        super().__init__()
        self.model = check_online(model)
        self.shifts = [m for m in model.modules() if isinstance(m, TemporalShift)]

    def forward(self, frame, *caches):
        slots = StreamSlots(caches or None)
        for shift in self.shifts:
            shift.stream = slots
        try:
            features = self.model.backbone.forward_features(frame)
        finally:
            for shift in self.shifts:
                shift.stream = None
        return (self.model.head(features), *slots.outgoing)

    def initial_caches(self, frame):
        """Zero caches shaped for frames like `frame`: the explicit inputs of a stream's
        first step (what an exported step takes)."""
        with torch.no_grad():
            _, *caches = self(frame)
        return [torch.zeros_like(cache) for cache in caches]


class OnlineRunner:
    """Logits of each new frame from a step function (frame, caches) -> (logits, caches),
    PyTorch's or an exported one's; `average` > 1: the consensus of the last `average`
    frames' logits (the clip's 'avg' or 'max')."""

    def __init__(self, step, average=1, consensus='avg'):
        if average < 1:
            raise ValueError(f'average must be >= 1 frames, not {average}')
        self.step, self.consensus = step, consensus
        self.history = deque(maxlen=average)
        self.caches = None

    def reset(self):
        """A new stream: no cached channels, no history."""
        self.caches = None
        self.history.clear()

    def __call__(self, frame):
        """frame float32 [N, 3, H, W] (normalised like a clip) -> logits [N, K]."""
        logits, self.caches = self.step(frame, self.caches)
        self.history.append(logits)
        if len(self.history) == 1:
            return logits
        stacked = torch.from_numpy(np.stack(list(self.history), axis=1))
        return segment_consensus(stacked, self.consensus).numpy()


class TorchOnlineStep:
    """The step in PyTorch, numpy in and out."""

    def __init__(self, model):
        self.module = OnlineStep(model).eval()

    def __call__(self, frame, caches):
        with torch.no_grad():
            logits, *caches = self.module(torch.from_numpy(frame), *(caches or ()))
        return logits.numpy(), caches


class OnnxOnlineStep:
    """The step exported to ONNX (export_model.py's model_online.onnx), run by an ONNX Runtime
    `session` of it: the caches go out and come back in as named tensors."""

    def __init__(self, session):
        self.session = session
        frame, *caches = session.get_inputs()
        self.frame_name, self.cache_names = frame.name, [i.name for i in caches]
        self.cache_shapes = [list(i.shape[1:]) for i in caches]

    def __call__(self, frame, caches):
        if caches is None:
            caches = [np.zeros([frame.shape[0]] + shape, np.float32) for shape in self.cache_shapes]
        logits, *caches = self.session.run(
            None, {self.frame_name: frame, **dict(zip(self.cache_names, caches))})
        return logits, caches
