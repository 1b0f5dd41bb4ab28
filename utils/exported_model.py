"""A model to predict with, from a checkpoint (PyTorch) or from an export (ONNX Runtime, with
the meta.json and labels.txt export_model.py wrote beside model.onnx): demo.py and predict.py
call either the same way, on float32 clips [N, 3, T, H, W], and get softmax scores [N, K].
evaluate.py loads any export (model.onnx, model_int8.onnx, model.pt2, model.ts) as a module."""
import contextlib
import json
import logging
import os.path as osp
import warnings

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


def softmax(logits):
    """Softmax over the last axis of numpy logits, shifted by their maximum (no overflow)."""
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


class OnnxPredictor:
    """ONNX Runtime on the execution providers it has (CUDA first when present)."""

    def __init__(self, onnx_path):
        import onnxruntime
        available = onnxruntime.get_available_providers()
        providers = [p for p in ('CUDAExecutionProvider', 'CPUExecutionProvider') if p in available]
        self.session = onnxruntime.InferenceSession(onnx_path, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, clips):
        return softmax(self.session.run(None, {self.input_name: clips})[0])


def load_exported(onnx_path):
    """(predictor, ClipSpec, class names) from model.onnx and the meta.json and labels.txt
    that export_model.py wrote beside it."""
    meta = read_meta(onnx_path)
    labels = osp.join(osp.dirname(osp.abspath(onnx_path)), osp.basename(meta.get('labels', 'labels.txt')))
    if not osp.isfile(labels):
        raise FileNotFoundError(f'{labels} not found: run export_model.py first')
    with open(labels, encoding='utf-8') as handle:
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


class Pt2Module:
    """An exported model.pt2 (torch.export) called like a torch module. Its graph was
    captured in eval mode and cannot be switched (train()/eval() are not supported on it),
    so eval() here only keeps the caller's contract."""

    def __init__(self, path):
        self.module = torch.export.load(path).module()

    def eval(self):
        return self

    def __call__(self, clips):
        with torch.no_grad():
            return self.module(clips.detach().cpu().float())


@contextlib.contextmanager
def quiet_torchscript(doing, logger=None):
    """Run a torch.jit call without its deprecation warnings reaching the user unexplained
    (torch 2.13 warns on every trace, save and load): they are caught, and one plain line
    says why TorchScript is still used. `doing`: 'written' or 'loaded', or None for no line
    (one was logged already). Other warnings pass."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        warnings.simplefilter('ignore', torch.jit.TracerWarning)   # export checks parity after
        yield
    deprecated = [w for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))
                  and 'jit' in str(w.message)]
    for w in caught:
        if w not in deprecated:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if deprecated and doing:
        version = '.'.join(torch.__version__.split('.')[:2])
        (logger or logging.getLogger('dlac')).info(
            'TorchScript is deprecated in torch %s; model.ts is %s for runtimes that still need '
            'it; model.pt2 is the current format', version, doing)


def read_meta(path):
    """The meta.json beside an exported file (FileNotFoundError naming what is missing)."""
    meta_path = osp.join(osp.dirname(osp.abspath(path)), 'meta.json')
    for needed in (path, meta_path):
        if not osp.isfile(needed):
            raise FileNotFoundError(f'{needed} not found: run export_model.py first')
    with open(meta_path, encoding='utf-8') as handle:
        return json.load(handle)


def float_model_of(int8_path):
    """The float model.onnx that export_model.py --int8 quantized into `int8_path`, when
    `int8_path` is that INT8 file (its meta.json says so) and the float file is beside it;
    else None."""
    meta = read_meta(int8_path)
    int8 = meta.get('int8') or {}
    folder = osp.dirname(osp.abspath(int8_path))
    if int8.get('file') != osp.basename(int8_path):
        return None
    float_path = osp.join(folder, osp.basename(int8.get('float_file', 'model.onnx')))
    return float_path if osp.isfile(float_path) else None


def exported_module(kind, path, logger=None):
    """(module, ClipSpec) of an export: kind 'onnx' (ONNX Runtime, float or INT8), 'pt2'
    (torch.export) or 'torchscript'; the ClipSpec from the meta.json beside it says the input
    and its normalisation."""
    spec = ClipSpec.from_dict(read_meta(path)['clip'])
    if kind == 'onnx':
        return OnnxModule(path), spec
    if kind == 'pt2':
        return Pt2Module(path), spec
    with quiet_torchscript('loaded', logger):
        module = torch.jit.load(path, map_location='cpu').eval()
    return module, spec
