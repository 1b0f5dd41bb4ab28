"""export_model.py's formats, quickly: model.pt2 (torch.export, dynamic batch), ONNX through the
dynamo exporter with its automatic fallback to tracing, TorchScript only on request and without
torch's deprecation warnings escaping, the parity check, and INT8 (calibrated on validation
clips, checked against the float model, evaluated beside it). A tiny 3D network stands in for
the registry's models (test_export_demo.py exports those, marked slow), so each test takes
seconds."""
import json
import os
import os.path as osp
import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx.external_data_helper import uses_external_data
from onnx.numpy_helper import to_array
from torch import nn

import config
import evaluate
import export_model
from conftest import run_main, tiny_overrides
from utils.exported_model import exported_module

CLASSES = 8


class TinyVideoNet(nn.Module):
    """[N, 3, T, H, W] -> logits [N, CLASSES]: conv, BN, pooling, linear."""

    def __init__(self, classes=CLASSES):
        super().__init__()
        self.conv = nn.Conv3d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm3d(8)
        self.fc = nn.Linear(8, classes)

    def forward(self, clips):
        features = torch.relu(self.bn(self.conv(clips)))
        return self.fc(features.mean(dim=(2, 3, 4)))


def tiny_model(seed=0):
    torch.manual_seed(seed)
    model = TinyVideoNet()
    with torch.no_grad():          # BN statistics away from identity, as after training
        model.bn.running_mean.uniform_(-0.2, 0.2)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture
def tiny_export(monkeypatch, tmp_path):
    """(config, model): an I3D-shaped config (4 frames at 32 px) whose checkpoint loads as
    TinyVideoNet; export_model.export(cfg) then exports that."""
    cfg = config.build_config(['MODEL_NAME', 'i3d', 'BACKBONE', 'resnet18', 'EXP_TAG', 'tiny',
                               'SNAPSHOT_ROOT', str(tmp_path), 'DATASET.CLASS_NUM', str(CLASSES),
                               'DATASET.ROOT_PATH', str(tmp_path / 'no_data'), 'DATASET.SCALE_SIZE', '36', 'DATASET.CROP_SIZE', '32',
                               'DATA.CLIP_LEN', '4', 'NUM_THREADS', '2'])
    model = tiny_model()
    monkeypatch.setattr(export_model, 'load_model', lambda *args: (model, {'epoch': 1}))
    return cfg, model


def out_dir(cfg):
    return osp.join(config.exp_dir(cfg), 'export')


def test_pt2_matches_pytorch_at_any_batch(tiny_export):
    cfg, model = tiny_export
    meta = export_model.export(cfg, exporter='torchscript')          # the quick ONNX exporter
    assert sorted(meta['files']) == ['onnx', 'pt2'] and not osp.exists(osp.join(out_dir(cfg), 'model.ts'))
    assert meta['parity_batch'] != export_model.EXAMPLE_BATCH
    assert set(meta['parity']) == {'eager_vs_pt2', 'eager_vs_onnxruntime', 'pt2_vs_onnxruntime'}
    loaded = torch.export.load(osp.join(out_dir(cfg), 'model.pt2')).module()
    for batch in (1, 2, 5):                                          # the example had 2
        clips = torch.randn(batch, 3, 4, 32, 32)
        with torch.no_grad():
            assert torch.allclose(loaded(clips), model(clips), atol=1e-5)


def test_onnx_from_the_dynamo_exporter_has_a_dynamic_batch(tiny_export):
    cfg, model = tiny_export
    meta = export_model.export(cfg)
    assert meta['onnx_exporter'] == 'dynamo' and max(meta['parity'].values()) <= 1e-4
    path = osp.join(out_dir(cfg), 'model.onnx')
    assert meta['opset'] == export_model.opset_of(path) >= 18
    graph = onnx.load(path, load_external_data=False).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param      # named, not a number
    assert not any(uses_external_data(init) for init in graph.initializer)   # weights inside
    assert sorted(os.listdir(out_dir(cfg))) == ['labels.txt', 'meta.json', 'model.onnx', 'model.pt2']
    clips = torch.randn(3, 3, 4, 32, 32)
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {'clip': clips.numpy()})[0], model(clips).numpy(),
                                   atol=1e-5)


def test_a_dynamo_failure_falls_back_to_tracing_and_says_so(tiny_export, monkeypatch, capsys):
    cfg, _ = tiny_export
    real_export = torch.onnx.export

    def dynamo_fails(*args, **kwargs):
        if kwargs.get('dynamo'):
            raise RuntimeError('Failed to export the model with torch.export.\nmore details')
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, 'export', dynamo_fails)
    meta = export_model.export(cfg)
    expected = {'used': 'torchscript',
                'fallback_reason': 'RuntimeError: Failed to export the model with torch.export.'}
    assert meta['onnx_exporter'] == expected
    assert json.load(open(osp.join(out_dir(cfg), 'meta.json')))['onnx_exporter'] == expected
    assert meta['opset'] == 18 and max(meta['parity'].values()) <= 1e-4
    log = capsys.readouterr().out
    assert 'the dynamo ONNX exporter failed on model.onnx (RuntimeError: Failed to export' in log
    assert 'falling back to the tracing exporter' in log and 'tracing exporter)' in log


def test_torchscript_on_request_without_deprecation_warnings(tiny_export, capsys):
    cfg, model = tiny_export
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert export_model.main(cfg_args(cfg) + ['--torchscript', '--exporter', 'torchscript']) == 0
        module, _ = exported_module('torchscript', osp.join(out_dir(cfg), 'model.ts'))
    meta = json.load(open(osp.join(out_dir(cfg), 'meta.json')))
    leaked = [str(w.message) for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))
              and 'jit' in str(w.message)]
    assert leaked == []
    assert meta['files']['torchscript'] == 'model.ts' and meta['parity']['eager_vs_torchscript'] <= 1e-5
    clips = torch.randn(3, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(module(clips), model(clips), atol=1e-5)
    log = capsys.readouterr().out
    assert log.count('TorchScript is deprecated in torch') == 2            # one line each
    assert 'model.ts is written for runtimes that still need it; model.pt2 is the current format' in log
    assert 'model.ts is loaded for runtimes' in log                         # exported_module's

    meta = export_model.export(cfg, exporter='torchscript')       # again, without: no stale model.ts
    assert 'torchscript' not in meta['files'] and not osp.exists(osp.join(out_dir(cfg), 'model.ts'))


def test_a_parity_failure_exits_1(tiny_export, monkeypatch, capsys):
    """An ONNX file of slightly different weights (a classifier bias off by 1e-3) is caught."""
    cfg, _ = tiny_export
    write_onnx = export_model.write_onnx

    def write_a_wrong_onnx(model, example, path, *args):
        wrong = tiny_model()
        with torch.no_grad():
            wrong.fc.bias.add_(1e-3)
        write_onnx(wrong, example, path, *args)

    monkeypatch.setattr(export_model, 'write_onnx', write_a_wrong_onnx)
    assert export_model.main(['--exporter', 'torchscript'] + cfg_args(cfg)) == 1
    captured = capsys.readouterr()
    assert 'eager vs pt2 0.00e+00' in captured.out and 'eager vs onnxruntime 1.0' in captured.out
    assert 'exported models differ from PyTorch by 1.0' in captured.err


def cfg_args(cfg):
    """The KEY VALUE pairs that rebuild `cfg` on a command line."""
    return ['MODEL_NAME', cfg.MODEL_NAME, 'BACKBONE', cfg.BACKBONE, 'EXP_TAG', cfg.EXP_TAG,
            'SNAPSHOT_ROOT', cfg.SNAPSHOT_ROOT, 'DATASET.ROOT_PATH', cfg.DATASET.ROOT_PATH, 'DATASET.CLASS_NUM', str(cfg.DATASET.CLASS_NUM),
            'DATASET.SCALE_SIZE', str(cfg.DATASET.SCALE_SIZE), 'DATASET.CROP_SIZE',
            str(cfg.DATASET.CROP_SIZE), 'DATA.CLIP_LEN', str(cfg.DATA.CLIP_LEN), 'NUM_THREADS', '2']


# ---------------------------------------------------------------- INT8
@pytest.fixture
def tiny_set_export(tiny_root, tmp_path, monkeypatch):
    """(KEY VALUE overrides, config) of TSN-shaped clips (5 segments at 64 px) of the tiny
    rendered set (16 validation videos), whose checkpoint loads as TinyVideoNet."""
    overrides = tiny_overrides(tiny_root, tmp_path, **{'EXP_TAG': 'int8'})
    monkeypatch.setattr(export_model, 'load_model', lambda *args: (tiny_model(), {'epoch': 1}))
    return overrides, config.build_config(overrides)


def test_int8_is_calibrated_on_some_validation_clips_and_checked_on_others(tiny_set_export, capsys):
    _, cfg = tiny_set_export
    options = export_model.Int8Options(calib_clips=10, min_agreement=0)
    meta = export_model.export(cfg, exporter='torchscript', int8=options)
    record = meta['int8']
    assert record['calibration_clips'] == 10 and record['check_clips'] == 6       # 16 in all
    assert not record['check_is_calibration']
    assert 0 <= record['agreement'] <= 1 and 0 <= record['top1_int8'] <= 100
    assert json.load(open(osp.join(out_dir(cfg), 'meta.json')))['int8']['agreement'] == record['agreement']
    conv_weight = conv_weight_quantization(osp.join(out_dir(cfg), 'model_int8.onnx'))
    assert conv_weight['dtype'] == np.int8 and conv_weight['scales'] == 8       # one per channel
    log = capsys.readouterr().out
    assert 'checked on 6 validation clips, other clips than the calibration ones' in log

    small = export_model.Int8Options(calib_clips=64, min_agreement=0)            # more than the set
    record = export_model.export(cfg, exporter='torchscript', int8=small)['int8']
    assert record['calibration_clips'] == record['check_clips'] == 16 and record['check_is_calibration']
    assert 'the calibration clips themselves' in capsys.readouterr().out


def conv_weight_quantization(path):
    """How the (one) convolution's weight is stored in a QDQ model: the dtype of the integers
    a DequantizeLinear feeds it from, and how many scales they have."""
    graph = onnx.load(path).graph
    initializers = {init.name: to_array(init) for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    conv = next(node for node in graph.node if node.op_type == 'Conv')
    dequantize = producers[conv.input[1]]
    assert dequantize.op_type == 'DequantizeLinear'
    return {'dtype': initializers[dequantize.input[0]].dtype,
            'scales': initializers[dequantize.input[1]].size}


def negated_onnx(float_path, target, batches, options):
    """A stand-in quantizer whose model ranks the classes the other way round: it never
    agrees with the float model's top-1."""
    model = onnx.load(float_path)
    graph = model.graph
    output = graph.output[0].name
    for node in graph.node:
        node.output[:] = [name + '_raw' if name == output else name for name in node.output]
    graph.node.append(onnx.helper.make_node('Neg', [output + '_raw'], [output]))
    onnx.save(model, target)
    return sum(len(clips) for clips, _ in batches)


def test_int8_below_the_agreement_threshold_exits_1(tiny_set_export, monkeypatch, capsys):
    overrides, cfg = tiny_set_export
    monkeypatch.setattr(export_model, 'quantize_onnx', negated_onnx)
    assert run_main(export_model, overrides, ['--exporter', 'torchscript', '--int8',
                                              '--calib-clips', '10']) == 1
    err = capsys.readouterr().err
    assert "agrees with the float model's top-1 on 0.0% of 6 validation clips" in err
    assert '--int8-min-agreement 90%' in err
    assert json.load(open(osp.join(out_dir(cfg), 'meta.json')))['int8']['agreement'] == 0


def test_int8_without_validation_data_exits_2_naming_the_metafile(tiny_export, capsys):
    cfg, _ = tiny_export
    assert export_model.main(cfg_args(cfg) + ['--int8', '--exporter', 'torchscript']) == 2
    err = capsys.readouterr().err
    assert '--int8 calibrates on validation clips' in err and cfg.DATASET.VAL_META_PATH in err


def test_evaluate_int8_reports_the_float_model_beside_it(tiny_set_export, capsys):
    overrides, cfg = tiny_set_export
    export_model.export(cfg, exporter='torchscript',
                        int8=export_model.Int8Options(calib_clips=10, min_agreement=0))
    int8_path = osp.join(out_dir(cfg), 'model_int8.onnx')
    capsys.readouterr()
    assert run_main(evaluate, overrides, ['--onnx', int8_path]) == 0
    eval_dir = osp.join(config.exp_dir(cfg), 'eval')
    int8_report = json.load(open(osp.join(eval_dir, 'onnx_int8', 'report.json')))
    float_report = json.load(open(osp.join(eval_dir, 'onnx', 'report.json')))
    assert float_report['exported_model'] == osp.join(out_dir(cfg), 'model.onnx')
    assert int8_report['float_model']['top1'] == float_report['top1']
    assert int8_report['top1_difference_vs_float'] == pytest.approx(int8_report['top1'] - float_report['top1'])
    out = capsys.readouterr().out
    assert (f"INT8 model top1 {int8_report['top1']:.2f}, float model top1 {float_report['top1']:.2f}"
            in out)
