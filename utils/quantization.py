"""INT8 ONNX for CPUs: an exported model.onnx quantized statically by ONNX Runtime (QDQ format,
int8 weights per output channel), calibrated on validation clips and compared with the float
model on other validation clips. export_model.py --int8 uses it.

Calibration sees real inputs: clips the project's validation pipeline makes (one test view
each, normalised as the model takes them), so activation ranges are those of deployment, not
of random noise."""
import contextlib
import io
import os.path as osp
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quant_pre_process, quantize_static)

from config import updated
from datasets import DataLoadingError, MetafileError, build_dataset, build_loader, build_normalizer, check_data

# 'entropy' is left out: quantize_static builds ONNX Runtime's entropy calibrator with as many
# histogram bins as quantized levels (128, not settable from it), where it gives MinMax's ranges.
CALIBRATION_METHODS = ('minmax', 'percentile')
ACTIVATION_TYPES = ('uint8', 'int8')


@dataclass(frozen=True)
class Int8Options:
    calib_clips: int = 64         # validation clips the activation ranges come from
    check_clips: int = 256        # other validation clips INT8 and float are compared on
    min_agreement: float = 0.9    # least top-1 agreement with the float model
    calibration: str = 'minmax'   # the better top-1 of the two on the synthetic set (BENCHMARKS.md)
    activations: str = 'uint8'    # uint8 activations x int8 weights: x86's fast integer path


@dataclass
class ClipSplit:
    """Which validation clips calibrate and which check (dataset indices)."""
    dataset: object
    calibration: list
    check: list
    check_is_calibration: bool    # the set is too small for separate check clips


def validation_split(cfg, options):
    """The validation set, one test view per video (the exported input), in a seeded random
    order: the first calib_clips calibrate, the next check_clips check. A set with no clips to
    spare is checked on its calibration clips (ClipSplit says so). A missing or broken
    validation metafile is a MetafileError naming it (exit 2)."""
    try:
        check_data(cfg, splits=('val',))
    except MetafileError as err:
        raise MetafileError(f'--int8 calibrates on validation clips (DATASET.VAL_META_PATH '
                            f'{cfg.DATASET.VAL_META_PATH}): {err}') from None
    dataset = build_dataset(one_view(cfg), 'test')
    order = [int(i) for i in np.random.default_rng(cfg.SEED).permutation(len(dataset))]
    calibration, rest = order[:options.calib_clips], order[options.calib_clips:]
    check = (rest or calibration)[:options.check_clips]
    return ClipSplit(dataset, sorted(calibration), sorted(check), check_is_calibration=not rest)


def one_view(cfg):
    """The config with one test view per video: a centre crop of the centre clip (or of
    VAL.NUM_SEGMENTS segments), the shape the export takes."""
    return updated(cfg, {'VAL.NUM_CROPS': 1, 'VAL.NUM_CLIPS': 1})


def clip_batches(cfg, dataset, indices):
    """(float32 clips [B, C, T, H, W] normalised as the model takes them, labels [B]) for the
    clips `indices` of `dataset`, decoded by the configured loader; unreadable ones left out."""
    cfg = one_view(cfg)
    loader = build_loader(cfg, dataset, 'test', sampler=list(indices))
    normalize = build_normalizer(cfg)
    for clips, labels, _, *bad in loader:
        keep = (bad[0] < 0) if bad else torch.ones(len(labels), dtype=torch.bool)
        if clips.dim() == 6:                        # [B, views = 1, C, T, H, W]
            clips = clips.flatten(0, 1)
        if keep.sum():
            yield (normalize(clips[keep]).contiguous().numpy().astype(np.float32),
                   labels[keep].numpy())


class ClipReader(CalibrationDataReader):
    """ONNX Runtime's calibration input: the clips of `batches`, counted."""

    def __init__(self, batches, input_name):
        self.batches = iter(batches)
        self.input_name = input_name
        self.count = 0

    def get_next(self):
        batch = next(self.batches, None)
        if batch is None:
            return None
        self.count += len(batch[0])
        return {self.input_name: batch[0]}


def quantize_onnx(float_path, target, batches, options):
    """Static INT8 quantization of float_path into target, calibrated on `batches`; returns
    the number of clips calibrated on. quant_pre_process first (shape inference and graph
    fusions), as ONNX Runtime advises for static quantization."""
    import onnx
    reader = ClipReader(batches, onnx.load(float_path, load_external_data=False).graph.input[0].name)
    method = {'minmax': CalibrationMethod.MinMax,
              'percentile': CalibrationMethod.Percentile}[options.calibration]
    # the histogram calibrators print their bin counts: not for the user's console
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(io.StringIO()):
        prepared = osp.join(scratch, 'prepared.onnx')
        quant_pre_process(float_path, prepared, skip_symbolic_shape=False)
        quantize_static(prepared, target, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8 if options.activations == 'uint8' else QuantType.QInt8,
                        calibrate_method=method,
                        extra_options={'CalibTensorRangeSymmetric': False,
                                       'CalibMovingAverage': False})
    if not reader.count:
        raise DataLoadingError('no validation clip could be read to calibrate the INT8 model')
    return reader.count


def compare_with_float(float_path, int8_path, batches):
    """Top-1 of the INT8 and the float model on `batches`: how often they agree, their top1
    against the labels (%), and their ONNX Runtime time per clip (ms, model only)."""
    import onnxruntime
    sessions = [onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
                for path in (float_path, int8_path)]
    names = [session.get_inputs()[0].name for session in sessions]
    predictions, truth, seconds = ([], []), [], [0.0, 0.0]
    for clips, labels in batches:
        for index, (session, name) in enumerate(zip(sessions, names)):
            started = time.perf_counter()
            logits = session.run(None, {name: clips})[0]
            seconds[index] += time.perf_counter() - started
            predictions[index].append(logits.argmax(axis=1))
        truth.append(labels)
    if not truth:
        raise DataLoadingError('no validation clip could be read to check the INT8 model')
    float_top, int8_top, truth = (np.concatenate(p) for p in (*predictions, truth))
    count = len(truth)
    return {'check_clips': count, 'agreement': float(np.mean(float_top == int8_top)),
            'top1_float': float(100 * np.mean(float_top == truth)),
            'top1_int8': float(100 * np.mean(int8_top == truth)),
            'ms_per_clip_float': 1000 * seconds[0] / count, 'ms_per_clip_int8': 1000 * seconds[1] / count}
