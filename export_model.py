"""Export a trained DLAC model to torch.export (model.pt2) and ONNX, and check both against PyTorch:
    python export_model.py [--cfg FILE ...] [--checkpoint PATH] [--int8] [--torchscript] [KEY VALUE ...]

Writes <experiment>/export/: model.pt2 (torch.export, dynamic batch axis; load it with
torch.export.load(path).module()), model.onnx (dynamic batch axis; torch's torch.export-based
'dynamo' exporter, or its tracing exporter where that fails on a model: meta.json's
onnx_exporter says which and why), labels.txt (one class name per line, in label order) and
meta.json (input shape, sampling, mean/std and the rest of the weights' input convention,
the class names and the run's whole config, so predict.py, demo.py and evaluate.py take
everything from the export alone). The input is one test view, float32 [N, 3, T, H, W],
normalised as (rgb / 255 - mean) / std, or as the weights' convention says (BGR channels,
0-255 values: clip.channel_order, clip.value_range). After writing, the same random clips (a
batch other than the exported example's) go through eager PyTorch, model.pt2 and onnxruntime;
a difference above --tolerance fails the export (exit 1).

An online TSM (MODEL.TSM_SHIFT online) also gets model_online.onnx: one frame a call, with its
cached channels as explicit inputs and outputs (docs/live_video.md), checked against the
PyTorch online runner over a stream of random frames.

--torchscript also writes model.ts (TorchScript, traced: deprecated by torch, kept for runtimes
that still need it) and checks it the same way. --int8 also writes model_int8.onnx: model.onnx
quantized statically by ONNX Runtime for CPUs, calibrated on --calib-clips validation clips and
checked on others against the float model (top-1 agreement below --int8-min-agreement: exit 1).
"""
import itertools
import json
import logging
import os
import os.path as osp
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from config import (build_parser, class_names_of, default_checkpoint, exp_dir, log_resolution, parse_config,
                    to_plain, trained_source)
from datasets.clip_spec import ClipSpec
from models.online_tsm import OnlineRunner, OnlineStep, OnnxOnlineStep, TorchOnlineStep
from utils.cli import run_entry_point
from utils.device import set_cpu_threads
from utils.exported_model import Pt2Module, quiet_torchscript
from utils.logger import setup_logger
from utils.quantization import (ACTIVATION_TYPES, CALIBRATION_METHODS, Int8Options, clip_batches,
                                compare_with_float, quantize_onnx, validation_split)
from utils.trained_model import load_model

EXPORTERS = ('dynamo', 'torchscript')
EXAMPLE_BATCH = 2      # batch 1 would let torch.export specialise the batch axis to 1
PARITY_BATCH = 3       # another batch than the example's: checks that the axis stayed dynamic
MAX_BATCH = 4096
FILES = ('model.pt2', 'model.onnx', 'model_online.onnx', 'model.ts', 'model_int8.onnx', 'labels.txt',
         'meta.json')


class ExportCheckError(RuntimeError):
    """An export written but failing its check (exit 1)."""


class ExportParityError(ExportCheckError):
    """An exported model whose outputs differ from PyTorch's beyond the tolerance."""


class Int8AgreementError(ExportCheckError):
    """An INT8 model whose top-1 agrees with the float model's too rarely."""


def _replace_when_written(path, write):
    """write(temporary path), then rename: a failed export never leaves a half file. The
    temporary name keeps the extension (model.part.pt2): torch.export.save wants '.pt2'."""
    root, ext = osp.splitext(path)
    partial = f'{root}.part{ext}'
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        if osp.exists(partial):
            os.remove(partial)


def _batch_dim():
    return torch.export.Dim('batch', min=1, max=MAX_BATCH)


@contextmanager
def _quiet_onnx_exporter():
    """torch.onnx's own chatter (missing torchvision ops, opset conversion notes and their
    tracebacks) off the user's console: what matters is logged by this script."""
    loggers = [logging.getLogger(name) for name in ('torch.onnx', 'onnxscript')]
    levels = [log.level for log in loggers]
    try:
        for log in loggers:
            log.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def write_pt2(model, example, path):
    """torch.export with a dynamic batch axis, saved with torch.export.save."""
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=({0: _batch_dim()},))
    _replace_when_written(path, lambda target: torch.export.save(program, target))


def write_onnx(model, example, path, opset, exporter='dynamo', io=None):
    """ONNX with a dynamic batch axis, weights inside the one file. 'dynamo' is torch's
    torch.export-based exporter (it writes opset 18 or newer whatever is asked); 'torchscript'
    its tracing exporter (exact opset). `io`: an OnnxIO for a model of other inputs and outputs
    than one clip in, logits out (the online TSM's step)."""
    io = io or OnnxIO((example,), ['clip'], ['logits'])

    def export(target):
        with _quiet_onnx_exporter(), torch.no_grad():
            if exporter == 'dynamo':
                torch.onnx.export(model, io.args, target, input_names=io.inputs,
                                  output_names=io.outputs, opset_version=opset, dynamo=True,
                                  dynamic_shapes=io.dynamic_shapes(_batch_dim()),
                                  external_data=False, verbose=False)
            else:
                torch.onnx.export(model, io.args, target, input_names=io.inputs,
                                  output_names=io.outputs, opset_version=opset, dynamo=False,
                                  dynamic_axes={name: {0: 'batch'} for name in io.inputs + io.outputs})
    _replace_when_written(path, export)


def write_onnx_with_fallback(model, example, path, opset, exporter, logger, io=None):
    """write_onnx with `exporter`; when the dynamo exporter fails on this model, the tracing
    exporter instead. Returns what meta.json records: the exporter's name, or
    {'used': 'torchscript', 'fallback_reason': the first line of the dynamo error}."""
    if exporter == 'dynamo':
        try:
            write_onnx(model, example, path, opset, 'dynamo', io)
            return 'dynamo'
        except Exception as err:            # any failure of the exporter: the other one may work
            reason = first_line(err)
            logger.warning('the dynamo ONNX exporter failed on %s (%s); falling back to '
                           'the tracing exporter', osp.basename(path), reason)
        write_onnx(model, example, path, opset, 'torchscript', io)
        return {'used': 'torchscript', 'fallback_reason': reason}
    write_onnx(model, example, path, opset, exporter, io)
    return exporter


@dataclass
class OnnxIO:
    """A model's example arguments and the ONNX names of its inputs and outputs; every
    input's first axis is the batch. `varargs`: the arguments after the first are one
    *args of the model's forward (torch.export wants their shapes as one tuple)."""
    args: tuple
    inputs: list
    outputs: list
    varargs: bool = False

    def dynamic_shapes(self, batch):
        if self.varargs:
            return ({0: batch}, tuple({0: batch} for _ in self.args[1:]))
        return tuple({0: batch} for _ in self.args)


def write_online_onnx(model, spec, path, opset, exporter, logger):
    """model_online.onnx: one frame of an online TSM, its cached channels as explicit inputs
    (cache_i, zeros at a stream's start) and outputs (next_cache_i, fed back with the next
    frame), so a runtime can stream it. Returns meta.json's 'online' record."""
    step = OnlineStep(model).eval()
    frame = torch.zeros(EXAMPLE_BATCH, 3, spec.crop_size, spec.crop_size)
    caches = step.initial_caches(frame)
    names = [f'cache_{i}' for i in range(len(caches))]
    io = OnnxIO((frame, *caches), ['frame'] + names, ['logits'] + [f'next_{n}' for n in names],
                varargs=True)
    used = write_onnx_with_fallback(step, None, path, opset, exporter, logger, io)
    logger.info('wrote %s (the online TSM, one frame a call, %d cached-channel inputs)', path,
                len(caches))
    return {'file': osp.basename(path), 'inputs': io.inputs, 'outputs': io.outputs,
            'frame_shape': ['batch', 3, spec.crop_size, spec.crop_size],
            'cache_shapes': [['batch'] + list(c.shape[1:]) for c in caches],
            'onnx_exporter': used}


def check_online_parity(model, path, spec, frames=6, batch=PARITY_BATCH, seed=0):
    """Max |difference| of the per-frame logits between the PyTorch online runner and the
    exported step streamed in ONNX Runtime over `frames` random frames."""
    import onnxruntime
    rng = np.random.default_rng(seed)
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    ours, exported = OnlineRunner(TorchOnlineStep(model)), OnlineRunner(OnnxOnlineStep(session))
    worst = 0.0
    for _ in range(frames):
        frame = rng.standard_normal((batch, 3, spec.crop_size, spec.crop_size)).astype(np.float32)
        worst = max(worst, float(np.abs(ours(frame) - exported(frame)).max()))
    return worst


def first_line(err):
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f'{type(err).__name__}: {lines[0] if lines else "(no message)"}'


def write_torchscript(model, example, path, logger):
    """model.ts, traced; torch's deprecation warnings become one plain log line."""
    with quiet_torchscript('written', logger), torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
        _replace_when_written(path, lambda target: traced.save(target))


def write_text(path, text):
    def write(target):
        with open(target, 'w', encoding='utf-8') as handle:
            handle.write(text)
    _replace_when_written(path, write)


def opset_of(onnx_path):
    """The ONNX opset the file really has (the dynamo exporter may write a newer one than asked)."""
    import onnx
    model = onnx.load(onnx_path, load_external_data=False)
    return max(entry.version for entry in model.opset_import if entry.domain in ('', 'ai.onnx'))


def exported_runners(paths, torchscript, logger):
    """name -> a function from a float clip tensor to logits (numpy), for each file written."""
    import onnxruntime
    runners = {'pt2': lambda clips, module=Pt2Module(paths['model.pt2']): module(clips).numpy()}
    if torchscript:
        with quiet_torchscript(None):                  # write_torchscript's line said why
            scripted = torch.jit.load(paths['model.ts'])
        runners['torchscript'] = lambda clips: scripted(clips).detach().numpy()
    session = onnxruntime.InferenceSession(paths['model.onnx'], providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    runners['onnxruntime'] = lambda clips: session.run(None, {name: clips.numpy()})[0]
    return runners


def check_parity(model, runners, spec, batch=PARITY_BATCH, seed=0):
    """Max absolute difference of the logits between every two of eager PyTorch and the
    exported files (`runners`), on `batch` random clips."""
    clips = torch.from_numpy(np.random.default_rng(seed).standard_normal(
        [batch] + spec.input_shape).astype(np.float32))
    with torch.no_grad():
        outputs = {'eager': model(clips).numpy()}
    outputs.update({name: run(clips) for name, run in runners.items()})
    return {f'{a}_vs_{b}': float(np.abs(outputs[a] - outputs[b]).max())
            for a, b in itertools.combinations(outputs, 2)}


def describe_export(cfg, spec, paths, onnx_exporter, checkpoint_path, state, differences,
                    tolerance):
    """meta.json's content: what predict.py, demo.py and evaluate.py start from."""
    files = {kind: name for kind, name in (('pt2', 'model.pt2'), ('onnx', 'model.onnx'),
                                           ('torchscript', 'model.ts'))
             if osp.isfile(paths[name])}
    return {
        'model': cfg.MODEL_NAME, 'backbone': cfg.BACKBONE, 'modality': cfg.MODALITY,
        'input': {'name': 'clip', 'shape': ['batch'] + spec.input_shape, 'dtype': 'float32',
                  'layout': 'N,C,T,H,W',
                  'value': f'({spec.channel_order.lower()} / 255 * {spec.value_range:g} - mean) / std'},
        'output': {'name': 'logits', 'shape': ['batch', cfg.DATASET.CLASS_NUM]},
        'clip': spec.to_dict(), 'mean': list(spec.mean), 'std': list(spec.std),
        'frames': spec.frames, 'num_classes': cfg.DATASET.CLASS_NUM, 'labels': 'labels.txt',
        'files': files, 'opset': opset_of(paths['model.onnx']), 'onnx_exporter': onnx_exporter,
        'checkpoint': osp.abspath(checkpoint_path), 'checkpoint_epoch': state.get('epoch'),
        'parity': differences, 'parity_batch': PARITY_BATCH, 'tolerance': tolerance,
        'class_names': class_names_of(cfg), 'config': to_plain(cfg),
    }


def print_parity(differences, batch=PARITY_BATCH):
    print(f'parity on {batch} random clips, max |difference| of the logits: ' +
          ', '.join(f'{name.replace("_", " ")} {value:.2e}' for name, value in differences.items()))


def write_int8(cfg, paths, options, logger):
    """model_int8.onnx: model.onnx quantized, calibrated on validation clips; then INT8 and
    float compared on other validation clips. Returns meta.json's 'int8' record."""
    split = validation_split(cfg, options)
    _replace_when_written(paths['model_int8.onnx'], lambda target: quantize_onnx(
        paths['model.onnx'], target, clip_batches(cfg, split.dataset, split.calibration), options))
    result = compare_with_float(paths['model.onnx'], paths['model_int8.onnx'],
                                clip_batches(cfg, split.dataset, split.check))
    which = ('the calibration clips themselves: the validation set has no others'
             if split.check_is_calibration else 'other clips than the calibration ones')
    logger.info('wrote %s (INT8 weights per channel, %s activations, %s calibration on %d clips of '
                '%s); checked on %d validation clips, %s: top-1 agreement with float %.1f%%, top1 '
                'float %.2f, INT8 %.2f; ONNX Runtime %.1f ms per clip float, %.1f INT8',
                paths['model_int8.onnx'], options.activations, options.calibration,
                len(split.calibration), cfg.DATASET.VAL_META_PATH, result['check_clips'], which,
                100 * result['agreement'], result['top1_float'], result['top1_int8'],
                result['ms_per_clip_float'], result['ms_per_clip_int8'])
    return dict(result, file='model_int8.onnx', float_file='model.onnx', format='QDQ',
                weights='int8, per output channel', activations=options.activations,
                calibration=options.calibration, calibration_clips=len(split.calibration),
                check_is_calibration=split.check_is_calibration,
                metafile=cfg.DATASET.VAL_META_PATH, min_agreement=options.min_agreement)


def check_int8_agreement(result, options):
    if result['agreement'] < options.min_agreement:
        raise Int8AgreementError(
            f"the INT8 model agrees with the float model's top-1 on {result['agreement']:.1%} of "
            f"{result['check_clips']} validation clips (--int8-min-agreement "
            f"{options.min_agreement:.0%}); top1 float {result['top1_float']:.2f}, INT8 "
            f"{result['top1_int8']:.2f}. Try another --int8-calibration or more --calib-clips")


def export(cfg, checkpoint_path=None, out_dir=None, opset=18, exporter='dynamo',
           tolerance=1e-4, torchscript=False, int8=None):
    """Write the export folder and check it; returns meta.json's content. `int8`: an
    Int8Options to write and check model_int8.onnx too, or None."""
    folder = exp_dir(cfg)
    out_dir = out_dir or osp.join(folder, 'export')
    logger = setup_logger(osp.join(folder, 'log'), filename='export.log')
    log_resolution(cfg, logger)
    set_cpu_threads(cfg.NUM_THREADS)
    checkpoint_path = checkpoint_path or default_checkpoint(cfg)
    model, state = load_model(cfg, checkpoint_path, logger)
    model.eval()
    spec = ClipSpec.from_config(cfg)
    example = torch.zeros([EXAMPLE_BATCH] + spec.input_shape)
    paths = prepare_folder(out_dir, logger)

    write_pt2(model, example, paths['model.pt2'])
    logger.info('wrote %s (torch.export, dynamic batch)', paths['model.pt2'])
    onnx_exporter = write_onnx_with_fallback(model, example, paths['model.onnx'], opset, exporter,
                                             logger)
    log_onnx(paths['model.onnx'], opset, onnx_exporter, logger)
    online = getattr(model, 'shift_mode', None) == 'online'
    if online:
        online_record = write_online_onnx(model, spec, paths['model_online.onnx'], opset, exporter,
                                          logger)
    if torchscript:
        write_torchscript(model, example, paths['model.ts'], logger)
        logger.info('wrote %s (TorchScript)', paths['model.ts'])
    write_text(paths['labels.txt'], ''.join(f'{name}\n' for name in class_names_of(cfg)))

    differences = check_parity(model, exported_runners(paths, torchscript, logger), spec)
    if online:
        differences['online_eager_vs_onnxruntime'] = check_online_parity(
            model, paths['model_online.onnx'], spec)
    print_parity(differences)
    meta = describe_export(cfg, spec, paths, onnx_exporter, checkpoint_path, state, differences,
                           tolerance)
    if online:
        meta['online'] = online_record
        meta['files']['online'] = 'model_online.onnx'
    worst = max(differences.values())
    parity_ok = worst <= tolerance
    if int8 is not None and parity_ok:                  # no point quantizing a wrong model
        meta['int8'] = write_int8(cfg, paths, int8, logger)
        meta['files']['int8'] = 'model_int8.onnx'
    write_text(paths['meta.json'], json.dumps(meta, indent=2))
    if not parity_ok:
        raise ExportParityError(f'exported models differ from PyTorch by {worst:.2e} '
                                f'(> tolerance {tolerance:g}): {differences}')
    logger.info('export checked (max difference %.2e <= %g) -> %s', worst, tolerance, out_dir)
    if int8 is not None:
        check_int8_agreement(meta['int8'], int8)
    return meta


def prepare_folder(out_dir, logger):
    """The export folder's file paths, without the optional files an earlier export left
    (model.ts, model_int8.onnx, model_online.onnx): they would be taken for this checkpoint's."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: osp.join(out_dir, name) for name in FILES}
    for name in ('model.ts', 'model_int8.onnx', 'model_online.onnx'):
        if osp.isfile(paths[name]):
            os.remove(paths[name])
            logger.info('removed %s of an earlier export', paths[name])
    return paths


def log_onnx(path, asked, exporter, logger):
    used = exporter if isinstance(exporter, str) else exporter['used']
    written = opset_of(path)
    logger.info('wrote %s (opset %d%s, %s exporter)', path, written,
                f'; asked for {asked}, which this exporter could not write' if written > asked else '',
                'tracing' if used == 'torchscript' else used)


def add_int8_arguments(parser):
    options = Int8Options()
    parser.add_argument('--int8', action='store_true',
                        help='also write model_int8.onnx: model.onnx quantized for CPUs '
                             '(ONNX Runtime, static, calibrated on validation clips)')
    parser.add_argument('--calib-clips', type=int, default=options.calib_clips,
                        help='validation clips to calibrate the INT8 model on (default %(default)s)')
    parser.add_argument('--int8-check-clips', type=int, default=options.check_clips,
                        help='other validation clips to compare INT8 and float on (default %(default)s)')
    parser.add_argument('--int8-min-agreement', type=float, default=options.min_agreement,
                        help='least top-1 agreement of INT8 with float, 0-1 (default %(default)s)')
    parser.add_argument('--int8-calibration', choices=CALIBRATION_METHODS, default=options.calibration,
                        help='how activation ranges are chosen (default %(default)s)')
    parser.add_argument('--int8-activations', choices=ACTIVATION_TYPES, default=options.activations,
                        help='activation type (default %(default)s: the fast one on x86 CPUs)')


def int8_options(args, parser):
    if not args.int8:
        return None
    if args.calib_clips < 1 or args.int8_check_clips < 1:
        parser.error('--calib-clips and --int8-check-clips must be at least 1')
    if not 0 <= args.int8_min_agreement <= 1:
        parser.error('--int8-min-agreement is a fraction between 0 and 1')
    return Int8Options(calib_clips=args.calib_clips, check_clips=args.int8_check_clips,
                       min_agreement=args.int8_min_agreement, calibration=args.int8_calibration,
                       activations=args.int8_activations)


def main(argv=None):
    parser = build_parser('Export a trained DLAC model to torch.export (model.pt2) and ONNX')
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint to export (default: <experiment>/checkpoints/best.pth)')
    parser.add_argument('--out', default=None, help='output folder (default: <experiment>/export)')
    parser.add_argument('--opset', type=int, default=18,
                        help='ONNX opset (17 or newer; the dynamo exporter writes 18 or newer)')
    parser.add_argument('--exporter', choices=EXPORTERS, default='dynamo',
                        help="torch's ONNX exporter: 'dynamo' (torch.export-based; falls back to "
                             "tracing where it fails on a model) or 'torchscript' (tracing only)")
    # dest: config.trained_source takes args.torchscript for an exported file to start from
    parser.add_argument('--torchscript', action='store_true', dest='write_torchscript',
                        help='also write model.ts (TorchScript: deprecated by torch, for runtimes '
                             'that still need it)')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest allowed difference between the outputs')
    add_int8_arguments(parser)
    cfg, args = parse_config(argv, parser=parser, exp_type='E',
                             trained=trained_source)
    if args.opset < 17:
        parser.error('--opset must be 17 or newer')
    try:
        return run_entry_point(export, cfg, args.checkpoint, args.out, args.opset,
                               args.exporter, args.tolerance, args.write_torchscript,
                               int8_options(args, parser))
    except ExportCheckError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
