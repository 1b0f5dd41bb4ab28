"""Export a trained DLAC model to TorchScript and ONNX, and check both against PyTorch:
    python export_model.py [--cfg FILE ...] [--checkpoint PATH] [KEY VALUE ...]

Writes <experiment>/export/: model.ts (TorchScript), model.onnx (dynamic batch axis),
labels.txt (one class name per line, in label order) and meta.json (input shape, sampling,
mean/std and the rest of the weights' input convention, the class names and the run's whole
config, so predict.py, demo.py and evaluate.py take everything from the export alone). The
input is one test view, float32 [N, 3, T, H, W], normalised as (rgb / 255 - mean) / std, or as
the weights' convention says (BGR channels, 0-255 values: clip.channel_order,
clip.value_range). After writing, the same random clips go through eager PyTorch, the
TorchScript file and onnxruntime; a difference above --tolerance fails the export (exit 1).
"""
import json
import os
import os.path as osp
import sys
import warnings

import numpy as np
import torch

from config import (build_parser, class_names_of, default_checkpoint, exp_dir, log_resolution, parse_config,
                    to_plain, trained_source)
from datasets.clip_spec import ClipSpec
from utils.cli import run_entry_point
from utils.device import set_cpu_threads
from utils.logger import setup_logger
from utils.trained_model import load_model

EXPORTERS = ('torchscript', 'dynamo')


class ExportParityError(RuntimeError):
    """An exported model whose outputs differ from PyTorch's beyond the tolerance."""


def _replace_when_written(path, write):
    """write(temporary path), then rename: a failed export never leaves a half file."""
    partial = path + '.part'
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        if osp.exists(partial):
            os.remove(partial)


def write_torchscript(model, example, path):
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)   # parity is checked after
        traced = torch.jit.trace(model, example, check_trace=False)
    _replace_when_written(path, lambda target: traced.save(target))


def write_onnx(model, example, path, opset, exporter='torchscript'):
    """ONNX with a dynamic batch axis. 'torchscript' is torch's tracing exporter (exact opset);
    'dynamo' is torch.export's (it may write a newer opset when conversion is not possible)."""
    def export(target):
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')
            if exporter == 'dynamo':
                batch = torch.export.Dim('batch', min=1, max=4096)
                torch.onnx.export(model, (example,), target, input_names=['clip'],
                                  output_names=['logits'], opset_version=opset, dynamo=True,
                                  dynamic_shapes=({0: batch},), verbose=False)
            else:
                torch.onnx.export(model, (example,), target, input_names=['clip'],
                                  output_names=['logits'], opset_version=opset, dynamo=False,
                                  dynamic_axes={'clip': {0: 'batch'}, 'logits': {0: 'batch'}})
    _replace_when_written(path, export)


def check_parity(model, ts_path, onnx_path, spec, batch=2, seed=0):
    """Max absolute difference of the logits: eager vs TorchScript vs onnxruntime, on `batch`
    random clips (a batch other than the traced one checks the dynamic axis)."""
    import onnxruntime
    clips = torch.from_numpy(np.random.default_rng(seed).standard_normal(
        [batch] + spec.input_shape).astype(np.float32))
    with torch.no_grad():
        eager = model(clips).numpy()
        scripted = torch.jit.load(ts_path)(clips).numpy()
    session = onnxruntime.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
    onnx_out = session.run(None, {session.get_inputs()[0].name: clips.numpy()})[0]
    return {'eager_vs_torchscript': float(np.abs(eager - scripted).max()),
            'eager_vs_onnxruntime': float(np.abs(eager - onnx_out).max()),
            'torchscript_vs_onnxruntime': float(np.abs(scripted - onnx_out).max())}


def opset_of(onnx_path):
    import onnx
    model = onnx.load(onnx_path, load_external_data=False)
    return max(entry.version for entry in model.opset_import if entry.domain in ('', 'ai.onnx'))


def export(cfg, checkpoint_path=None, out_dir=None, opset=17, exporter='torchscript',
           tolerance=1e-4):
    """Write the export folder and check it; returns meta.json's content."""
    folder = exp_dir(cfg)
    out_dir = out_dir or osp.join(folder, 'export')
    logger = setup_logger(osp.join(folder, 'log'), filename='export.log')
    log_resolution(cfg, logger)
    set_cpu_threads(cfg.NUM_THREADS)
    checkpoint_path = checkpoint_path or default_checkpoint(cfg)
    model, state = load_model(cfg, checkpoint_path, logger)
    model.eval()
    spec = ClipSpec.from_config(cfg)
    example = torch.zeros([1] + spec.input_shape)
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: osp.join(out_dir, name) for name in
             ('model.ts', 'model.onnx', 'labels.txt', 'meta.json')}
    write_torchscript(model, example, paths['model.ts'])
    logger.info('wrote %s', paths['model.ts'])
    write_onnx(model, example, paths['model.onnx'], opset, exporter)
    logger.info('wrote %s (opset %d, %s exporter)', paths['model.onnx'],
                opset_of(paths['model.onnx']), exporter)
    class_names = class_names_of(cfg)
    with open(paths['labels.txt'], 'w', encoding='utf-8') as handle:
        handle.writelines(f'{name}\n' for name in class_names)
    differences = check_parity(model, paths['model.ts'], paths['model.onnx'], spec)
    print('parity on 2 random clips, max |difference| of the logits: ' +
          ', '.join(f'{name.replace("_", " ")} {value:.2e}' for name, value in differences.items()))
    meta = {
        'model': cfg.MODEL_NAME, 'backbone': cfg.BACKBONE, 'modality': cfg.MODALITY,
        'input': {'name': 'clip', 'shape': ['batch'] + spec.input_shape, 'dtype': 'float32',
                  'layout': 'N,C,T,H,W',
                  'value': f'({spec.channel_order.lower()} / 255 * {spec.value_range:g} - mean) / std'},
        'output': {'name': 'logits', 'shape': ['batch', cfg.DATASET.CLASS_NUM]},
        'clip': spec.to_dict(), 'mean': list(spec.mean), 'std': list(spec.std),
        'frames': spec.frames, 'num_classes': cfg.DATASET.CLASS_NUM, 'labels': 'labels.txt',
        'opset': opset_of(paths['model.onnx']), 'exporter': exporter,
        'checkpoint': osp.abspath(checkpoint_path), 'checkpoint_epoch': state.get('epoch'),
        'parity': differences, 'tolerance': tolerance,
        'class_names': class_names, 'config': to_plain(cfg),      # what predict/demo start from
    }
    with open(paths['meta.json'], 'w', encoding='utf-8') as handle:
        json.dump(meta, handle, indent=2)
    worst = max(differences.values())
    if not worst <= tolerance:
        raise ExportParityError(f'exported models differ from PyTorch by {worst:.2e} '
                                f'(> tolerance {tolerance:g}): {differences}')
    logger.info('export checked (max difference %.2e <= %g) -> %s', worst, tolerance, out_dir)
    return meta


def main(argv=None):
    parser = build_parser('Export a trained DLAC model to TorchScript and ONNX')
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint to export (default: <experiment>/checkpoints/best.pth)')
    parser.add_argument('--out', default=None, help='output folder (default: <experiment>/export)')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset (17 or newer)')
    parser.add_argument('--exporter', choices=EXPORTERS, default='torchscript',
                        help="torch's ONNX exporter: tracing ('torchscript') or torch.export ('dynamo')")
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest allowed difference between the three outputs')
    cfg, args = parse_config(argv, parser=parser, exp_type='E',
                             trained=trained_source)
    if args.opset < 17:
        parser.error('--opset must be 17 or newer')
    try:
        return run_entry_point(export, cfg, args.checkpoint, args.out, args.opset,
                               args.exporter, args.tolerance)
    except ExportParityError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
