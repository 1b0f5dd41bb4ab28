"""A model to predict with, from a checkpoint (PyTorch) or from an export (ONNX Runtime, with
the meta.json and labels.txt export_model.py wrote beside model.onnx): demo.py and predict.py
call either the same way, on float32 clips [N, 3, T, H, W], and get softmax scores [N, K]."""
import json
import os.path as osp

import numpy as np
import torch

from config import ConfigError
from datasets.clip_spec import ClipSpec
from datasets.transforms import ClipNormalizer


class TorchPredictor:
    def __init__(self, model):
        self.model = model.eval()

    def __call__(self, clips):
        with torch.no_grad():
            return torch.softmax(self.model(torch.from_numpy(clips)).float(), dim=1).numpy()


class OnnxPredictor:
    """ONNX Runtime on the execution providers it has (CUDA first when present)."""

    def __init__(self, onnx_path):
        import onnxruntime
        available = onnxruntime.get_available_providers()
        providers = [p for p in ('CUDAExecutionProvider', 'CPUExecutionProvider') if p in available]
        self.session = onnxruntime.InferenceSession(onnx_path, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, clips):
        logits = self.session.run(None, {self.input_name: clips})[0]
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


def load_exported(onnx_path):
    """(predictor, ClipSpec, class names) from model.onnx and the meta.json and labels.txt
    that export_model.py wrote beside it."""
    folder = osp.dirname(osp.abspath(onnx_path))
    for path in (onnx_path, osp.join(folder, 'meta.json'), osp.join(folder, 'labels.txt')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path} not found: run export_model.py first')
    with open(osp.join(folder, 'meta.json'), encoding='utf-8') as handle:
        meta = json.load(handle)
    with open(osp.join(folder, meta.get('labels', 'labels.txt')), encoding='utf-8') as handle:
        names = [line.rstrip('\n') for line in handle if line.strip()]
    return OnnxPredictor(onnx_path), ClipSpec.from_dict(meta['clip']), names


class OnnxModule:
    """An exported model.onnx called like a torch module: float clips in, logits out."""

    def __init__(self, onnx_path):
        self.predictor = OnnxPredictor(onnx_path)

    def eval(self):
        return self

    def __call__(self, clips):
        inputs = {self.predictor.input_name: clips.detach().cpu().float().numpy()}
        return torch.from_numpy(self.predictor.session.run(None, inputs)[0])


def exported_input(spec, cfg, path):
    """The normaliser of an export's input (its meta.json's convention), after checking that
    the config's test views have the one shape the export takes (ConfigError, exit 2)."""
    ours = ClipSpec.from_config(cfg)
    if (spec.frames, spec.crop_size, spec.sampling) != (ours.frames, ours.crop_size, ours.sampling):
        raise ConfigError(f'{path} takes {spec.frames} frames ({spec.sampling}) at {spec.crop_size} px; '
                          f'this config gives {ours.frames} ({ours.sampling}) at {ours.crop_size}: use '
                          f'the config it was exported with')
    return ClipNormalizer(spec.mean, spec.std, 'cpu', value_range=spec.value_range,
                          channel_order=spec.channel_order)


def exported_module(kind, path):
    """(module, ClipSpec) of an export: kind 'onnx' (ONNX Runtime) or 'torchscript'; the
    ClipSpec from the meta.json beside it says the input and its normalisation."""
    meta_path = osp.join(osp.dirname(osp.abspath(path)), 'meta.json')
    for needed in (path, meta_path):
        if not osp.isfile(needed):
            raise FileNotFoundError(f'{needed} not found: run export_model.py first')
    with open(meta_path, encoding='utf-8') as handle:
        spec = ClipSpec.from_dict(json.load(handle)['clip'])
    module = OnnxModule(path) if kind == 'onnx' else torch.jit.load(path, map_location='cpu').eval()
    return module, spec
