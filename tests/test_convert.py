"""Weight files from the ecosystem, proven exact against the reference code: each reference
model is built with random weights (every BN statistic randomised), saved in its project's own
checkpoint layout, read through MODEL.PRETRAINED and through `python -m models.convert`, and
its logits compared with ours in float64 on the same input."""
import json
import logging
import os.path as osp

import numpy as np
import pytest
import torch

import config
from config_frozen import thaw
from conftest import ROOT
from datasets.transforms import build_normalizer
from models import build_model
from models.convert import SOURCES, detect, read_weights
from models.convert.__main__ import main as convert_main
from models.errors import ModelOptionError
from models.weights import WeightsError
from references import (cadene_bninception, mmaction_model, pytorchvideo_module, randomize,
                        timm_resnet)
from utils.trained_model import load_model

pytestmark = pytest.mark.slow      # reference models built and run for each converter: seconds each

torch.set_default_dtype(torch.float32)
LOG = logging.getLogger('test')


def assert_same_logits(ours, theirs):
    """max |difference| <= 1e-6 of max |logit|."""
    assert ours.shape == theirs.shape
    scale = theirs.abs().max().item()
    difference = (ours - theirs).abs().max().item()
    assert difference <= 1e-6 * scale, f'max |difference| {difference:.3g}, max |logit| {scale:.3g}'


def through_pretrained(cfg, path, **settings):
    """build_model of the config built with MODEL.PRETRAINED = path over the test's `cfg`
    (settings: other keys, as KEY VALUE), in float64. The built config's values are put back
    into `cfg`, so the test's assertions read what building it resolved."""
    pairs = ['MODEL.PRETRAINED', str(path)]
    for key, value in settings.items():
        pairs += [key, json.dumps(value) if not isinstance(value, str) else value]
    built = config.build_config(pairs, base=cfg)
    cfg.update(thaw(built))
    return build_model(built, LOG).eval().double()


def through_convert(tmp_path, path, *overrides):
    """`python -m models.convert path out`, then the checkpoint loaded as evaluate.py does
    (its config from the checkpoint)."""
    out = tmp_path / 'converted.pth'
    assert convert_main([str(path), str(out)] + list(overrides)) == 0
    cfg = config.build_config([], exp_type='E', trained=str(out))
    model, _ = load_model(cfg, str(out), LOG)
    return model.eval().double(), cfg


def save(path, checkpoint):
    torch.save(checkpoint, path)
    return path


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


# ---------------------------------------------------------------- torchvision / timm, BN-Inception
@pytest.mark.parametrize('depth', [18, 50])
def test_timm_and_torchvision_resnets_into_tsn(cfg, tmp_path, depth):
    reference = timm_resnet(depth).double()
    path = save(tmp_path / f'resnet{depth}.pth', reference.state_dict())      # torchvision's layout too
    image = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    expected = reference(image)
    cfg.BACKBONE, cfg.DATASET.CLASS_NUM = f'resnet{depth}', 1000
    ours = through_pretrained(cfg, path)
    assert_same_logits(ours(image.unsqueeze(2)), expected)      # one segment: the 2D network
    converted, converted_cfg = through_convert(tmp_path, path)
    assert (converted_cfg.MODEL_NAME, converted_cfg.BACKBONE) == ('tsn', f'resnet{depth}')
    assert_same_logits(converted(image.unsqueeze(2)), expected)


def test_caffe_bninception_with_its_input_convention(cfg, tmp_path):
    """Cadene's BNInception (the Caffe file's layout): our whole input path, decoded RGB uint8
    -> normaliser -> model, gives the reference's logits on the BGR 0-255 mean-subtracted
    tensor it was trained on."""
    reference = cadene_bninception().double()
    path = save(tmp_path / 'bn_inception-52deb4733.pth', reference.state_dict())
    rgb = torch.randint(0, 256, (1, 3, 1, 224, 224), dtype=torch.uint8)      # its pool is 7x7 at 224
    bgr = rgb[:, [2, 1, 0], 0].double() - torch.tensor([104.0, 117.0, 128.0]).view(1, 3, 1, 1).double()
    expected = reference(bgr)
    cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'bninception', 1000
    ours = through_pretrained(cfg, path)
    assert (cfg.DATASET.CHANNEL_ORDER, cfg.DATASET.VALUE_RANGE) == ('BGR', 255.0)
    assert cfg.DATASET.MEAN == [104.0, 117.0, 128.0] and cfg.DATASET.STD == [1.0, 1.0, 1.0]
    assert_same_logits(ours(build_normalizer(cfg)(rgb).double()), expected)
    converted, converted_cfg = through_convert(tmp_path, path)
    assert_same_logits(converted(build_normalizer(converted_cfg)(rgb).double()), expected)


# ---------------------------------------------------------------- mmaction2 1.2.0
PREPROCESSOR = dict(type='ActionDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])


def mm_tsn(depth=50, tsm=False):
    backbone = (dict(type='ResNetTSM', pretrained=None, pretrained2d=False, depth=depth, norm_eval=False,
                     shift_div=8, num_segments=4) if tsm else
                dict(type='ResNet', pretrained=None, depth=depth, norm_eval=False))
    head = dict(type='TSMHead' if tsm else 'TSNHead', num_classes=10, in_channels=2048, spatial_type='avg',
                consensus=dict(type='AvgConsensus', dim=1), dropout_ratio=0.5, average_clips='prob')
    if tsm:
        head.update(num_segments=4, is_shift=True)
    return dict(type='Recognizer2D', backbone=backbone, cls_head=head,
                data_preprocessor=dict(PREPROCESSOR, format_shape='NCHW'))


def mm_i3d():
    return dict(type='Recognizer3D', backbone=dict(
        type='ResNet3d', pretrained2d=True, pretrained=None, depth=50, conv1_kernel=(5, 7, 7),
        conv1_stride_t=2, pool1_stride_t=2, conv_cfg=dict(type='Conv3d'), norm_eval=False,
        inflate=((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)), zero_init_residual=False),
        cls_head=dict(type='I3DHead', num_classes=10, in_channels=2048, spatial_type='avg',
                      dropout_ratio=0.5, average_clips='prob'),
        data_preprocessor=dict(PREPROCESSOR, format_shape='NCTHW'))


def mm_i3d_nl():
    """mmaction2's i3d_imagenet-pretrained-r50-nl-embedded-gaussian config model."""
    model = mm_i3d()
    model['backbone'].update(non_local=((0, 0, 0), (0, 1, 0, 1), (0, 1, 0, 1, 0, 1), (0, 0, 0)),
                             non_local_cfg=dict(sub_sample=True, use_scale=False, mode='embedded_gaussian',
                                                norm_cfg=dict(type='BN3d', requires_grad=True)))
    return model


def mm_slowfast(alpha, kernel, lateral_norm=False):
    slow = dict(type='resnet3d', depth=50, pretrained=None, lateral=True, fusion_kernel=kernel,
                conv1_kernel=(1, 7, 7), dilations=(1, 1, 1, 1), conv1_stride_t=1, pool1_stride_t=1,
                inflate=(0, 0, 1, 1), norm_eval=False, lateral_norm=lateral_norm)
    fast = dict(type='resnet3d', depth=50, pretrained=None, lateral=False, base_channels=8,
                conv1_kernel=(5, 7, 7), conv1_stride_t=1, pool1_stride_t=1, norm_eval=False)
    return dict(type='Recognizer3D', backbone=dict(
        type='ResNet3dSlowFast', pretrained=None, resample_rate=alpha, speed_ratio=alpha, channel_ratio=8,
        slow_pathway=slow, fast_pathway=fast),
        cls_head=dict(type='SlowFastHead', in_channels=2304, num_classes=10, spatial_type='avg',
                      dropout_ratio=0.5, average_clips='prob'),
        data_preprocessor=dict(PREPROCESSOR, format_shape='NCTHW'))


def mm_checkpoint(path, model, model_config, with_config=True):
    """What mmengine's runner writes (meta['cfg'] is the config as Python text)."""
    from mmengine.config import Config
    meta = {'cfg': Config(dict(model=model_config)).pretty_text} if with_config else {}
    return save(path, {'meta': meta, 'state_dict': model.state_dict()})


def mm_logits(model, clip, two_d):
    inputs = clip.permute(0, 2, 1, 3, 4).contiguous() if two_d else clip.unsqueeze(1)
    return model.extract_feat(inputs, stage='head', test_mode=False)[0]


MMACTION_CASES = {
    'tsn-r50': (lambda: mm_tsn(50), (1, 3, 3, 64, 64), 'tsn', {}),
    'tsm-r50': (lambda: mm_tsn(50, tsm=True), (1, 3, 4, 64, 64), 'tsm', {}),
    'tsm-r101': (lambda: mm_tsn(101, tsm=True), (1, 3, 4, 64, 64), 'tsm', {}),
    'i3d-r50-32x2x1': (mm_i3d, (1, 3, 16, 64, 64), 'i3d', {'MODEL.STEM_TEMPORAL_STRIDE': [2, 2]}),
    'i3d-nl-r50-32x2x1': (mm_i3d_nl, (1, 3, 16, 64, 64), 'i3d',
                          {'MODEL.NON_LOCAL': True, 'MODEL.NON_LOCAL_SUBSAMPLE': True,
                           'MODEL.NON_LOCAL_SCALED': False}),
    'slowfast-r50-4x16': (lambda: mm_slowfast(8, 5), (1, 3, 16, 64, 64), 'slowfast',
                          {'MODEL.SLOWFAST_ALPHA': 8, 'MODEL.SLOWFAST_LATERAL': 'conv'}),
    'slowfast-r50-8x8': (lambda: mm_slowfast(4, 7), (1, 3, 16, 64, 64), 'slowfast',
                         {'MODEL.SLOWFAST_ALPHA': 4, 'MODEL.SLOWFAST_FUSION_KERNEL': 7}),
    'slowfast-r50-8x8-lateral-norm': (lambda: mm_slowfast(4, 7, lateral_norm=True), (1, 3, 16, 64, 64),
                                      'slowfast', {'MODEL.SLOWFAST_LATERAL': 'conv_bn_relu'}),
}


@pytest.mark.parametrize('case', list(MMACTION_CASES))
def test_mmaction2_checkpoints(cfg, tmp_path, case):
    make_config, shape, model_name, expected_options = MMACTION_CASES[case]
    model_config = make_config()
    reference = mmaction_model(model_config).double()
    path = mm_checkpoint(tmp_path / f'{case}.pth', reference, model_config)
    clip = torch.randn(*shape, dtype=torch.float64)
    expected = mm_logits(reference, clip, model_name in ('tsn', 'tsm'))

    converted = read_weights(str(path))
    assert converted.source == 'mmaction2' and converted.model_name == model_name
    for key, value in expected_options.items():
        assert converted.options[key] == value, key
    cfg.MODEL_NAME, cfg.DATASET.CLASS_NUM = model_name, 10
    cfg.BACKBONE = converted.options['BACKBONE']
    cfg.DATA.NUM_SEGMENTS = shape[2]
    ours = through_pretrained(cfg, path)
    assert_same_logits(ours(clip), expected)
    assert cfg.DATASET.VALUE_RANGE == 255.0 and cfg.DATASET.MEAN == [123.675, 116.28, 103.53]
    via_convert, _ = through_convert(tmp_path, path)
    assert_same_logits(via_convert(clip), expected)


def test_mmaction2_without_config_text_infers_from_shapes(tmp_path):
    """Files converted from mmaction2 0.x carry no config: the I3D stem strides and the
    SlowFast alpha come from the published configurations, and the log says so."""
    i3d_config = mm_i3d()
    path = mm_checkpoint(tmp_path / 'i3d.pth', mmaction_model(i3d_config), i3d_config, with_config=False)
    converted = read_weights(str(path))
    assert converted.options['MODEL.STEM_TEMPORAL_STRIDE'] == [2, 2]
    assert any('inferred' in note for note in converted.notes)
    sf_config = mm_slowfast(4, 7)
    path = mm_checkpoint(tmp_path / 'sf.pth', mmaction_model(sf_config), sf_config, with_config=False)
    converted = read_weights(str(path))
    assert (converted.options['MODEL.SLOWFAST_ALPHA'], converted.options['MODEL.SLOWFAST_FUSION_KERNEL']) == (4, 7)
    assert any('inferred from fusion kernel 7' in note for note in converted.notes)


@pytest.mark.parametrize('with_config, non_local_cfg, expected', [
    (False, None, (True, False)),                    # no config text: the published i3d_nl config
    (True, {'mode': 'embedded_gaussian'}, (False, True)),     # config without them: mmcv's defaults
    (True, {'mode': 'embedded_gaussian', 'sub_sample': True, 'use_scale': True}, (True, True))],
    ids=['no-config-text', 'config-leaves-them-out', 'config-sets-them'])
def test_mmaction2_non_local_options_with_and_without_config_text(cfg, tmp_path, with_config,
                                                                  non_local_cfg, expected):
    """sub_sample and use_scale change the outputs, so each case is checked on logits."""
    model_config = mm_i3d_nl()
    if non_local_cfg is not None:
        model_config['backbone']['non_local_cfg'] = dict(non_local_cfg, norm_cfg=dict(type='BN3d'))
    reference = mmaction_model(model_config).double()
    path = mm_checkpoint(tmp_path / 'i3d_nl.pth', reference, model_config, with_config=with_config)
    clip = torch.randn(1, 3, 16, 64, 64, dtype=torch.float64)
    expected_logits = mm_logits(reference, clip, False)
    converted = read_weights(str(path))
    assert (converted.options['MODEL.NON_LOCAL_SUBSAMPLE'], converted.options['MODEL.NON_LOCAL_SCALED']) == expected
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'i3d', 'resnet50', 10
    assert_same_logits(through_pretrained(cfg, path)(clip), expected_logits)


# ---------------------------------------------------------------- pytorchvideo 0.1.5
def linspace_frames(clip, alpha):
    frames = clip.shape[2]
    return clip.index_select(2, torch.linspace(0, frames - 1, frames // alpha).long())


def test_pytorchvideo_i3d_r50(cfg, tmp_path):
    hub = pytorchvideo_module('pytorchvideo.models.hub.resnet')
    reference = randomize(hub.i3d_r50(pretrained=False, head_pool_kernel_size=(4, 2, 2))).double()
    path = save(tmp_path / 'I3D_8x8_R50.pyth', {'model_state': reference.state_dict()})
    clip = torch.randn(1, 3, 8, 64, 64, dtype=torch.float64)
    expected = reference(clip)
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'i3d', 'resnet50', 400
    ours = through_pretrained(cfg, path)
    assert cfg.DATASET.MEAN == [0.45, 0.45, 0.45] and cfg.DATASET.STD == [0.225, 0.225, 0.225]
    assert_same_logits(ours(clip), expected)
    via_convert, _ = through_convert(tmp_path, path)
    assert_same_logits(via_convert(clip), expected)


@pytest.mark.parametrize('alpha, kernel', [(4, 7), (8, 5)], ids=['8x8', '4x16'])
def test_pytorchvideo_slowfast_r50(cfg, tmp_path, alpha, kernel):
    slowfast = pytorchvideo_module('pytorchvideo.models.slowfast')
    frames = 16
    reference = randomize(slowfast.create_slowfast(
        model_num_class=400, slowfast_fusion_conv_kernel_size=(kernel, 1, 1),
        slowfast_fusion_conv_stride=(alpha, 1, 1),
        head_pool_kernel_sizes=((frames // alpha, 2, 2), (frames, 2, 2)))).double()
    path = save(tmp_path / 'SLOWFAST_R50.pyth', {'model_state': reference.state_dict()})
    clip = torch.randn(1, 3, frames, 64, 64, dtype=torch.float64)
    expected = reference([linspace_frames(clip, alpha), clip])      # PackPathway's frames
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'slowfast', 'resnet50', 400
    ours = through_pretrained(cfg, path, **({'MODEL.SLOWFAST_ALPHA': alpha} if alpha != 4 else {}))
    assert cfg.MODEL.SLOWFAST_SLOW_FRAMES == 'linspace' and cfg.MODEL.SLOWFAST_FUSION_KERNEL == kernel
    assert_same_logits(ours(clip), expected)
    via_convert, _ = through_convert(tmp_path, path, *(['MODEL.SLOWFAST_ALPHA', str(alpha)] if alpha != 4 else []))
    assert_same_logits(via_convert(clip), expected)


# ---------------------------------------------------------------- PySlowFast's own .pyth
def layout_state(name, seed=0):
    """Random tensors in a layout read off the reference code (tests/data/layouts)."""
    with open(osp.join(ROOT, 'tests', 'data', 'layouts', name), encoding='utf-8') as handle:
        shapes = json.load(handle)
    generator = torch.Generator().manual_seed(seed)
    return {key: (torch.tensor(5) if key.endswith('num_batches_tracked') else
                  torch.rand(shape, generator=generator) + 0.5) for key, shape in shapes.items()}


def test_pyslowfast_slowfast_with_its_cfg(cfg, tmp_path):
    state = layout_state('pyslowfast_slowfast_r50.json')
    cfg_text = 'SLOWFAST:\n  ALPHA: 4\n  BETA_INV: 8\n  FUSION_KERNEL_SZ: 7\nMODEL:\n  ARCH: slowfast\n' \
               'DATA:\n  MEAN: [0.45, 0.45, 0.45]\n  STD: [0.225, 0.225, 0.225]\n'
    path = save(tmp_path / 'checkpoint_epoch_00196.pyth',
                {'epoch': 196, 'model_state': state, 'optimizer_state': {}, 'cfg': cfg_text})
    converted = read_weights(str(path))
    assert converted.source == 'pyslowfast' and converted.model_name == 'slowfast'
    assert converted.options == {'BACKBONE': 'resnet50', 'MODEL.SLOWFAST_ALPHA': 4,
                                 'MODEL.SLOWFAST_FUSION_KERNEL': 7, 'MODEL.SLOWFAST_BETA_INV': 8,
                                 'MODEL.SLOWFAST_LATERAL': 'conv_bn_relu',
                                 'MODEL.SLOWFAST_SLOW_FRAMES': 'linspace'}
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'slowfast', 'resnet50', 400
    model = through_pretrained(cfg, path)
    weights = model.state_dict()
    pairs = {'s1.pathway1_stem.conv.weight': 'fast.conv1.weight',
             's3.pathway0_res2.branch2.b_bn.running_var': 'slow.layer2.2.bn2.running_var',
             's4.pathway1_res0.branch1.weight': 'fast.layer3.0.downsample.0.weight',
             's2_fuse.conv_f2s.weight': 'lateral.1.0.weight', 's4_fuse.bn.bias': 'lateral.3.1.bias',
             'head.projection.weight': 'head.fc.weight'}
    for theirs, ours in pairs.items():
        assert torch.equal(weights[ours], state[theirs].double()), ours
    # without cfg: alpha from the lateral kernel, as published configurations pair them
    path = save(tmp_path / 'no_cfg.pyth', {'model_state': state})
    assert read_weights(str(path)).options['MODEL.SLOWFAST_ALPHA'] == 4


def test_pyslowfast_i3d(cfg, tmp_path):
    state = layout_state('pyslowfast_i3d_r50.json')
    path = save(tmp_path / 'i3d.pyth', {'model_state': state, 'cfg': 'MODEL:\n  ARCH: i3d\n'})
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'i3d', 'resnet50', 400
    weights = through_pretrained(cfg, path).state_dict()
    assert torch.equal(weights['backbone.layer4.2.conv3.weight'], state['s5.pathway0_res2.branch2.c.weight'].double())
    assert torch.equal(weights['head.fc.bias'], state['head.projection.bias'].double())


# ---------------------------------------------------------------- detection
def test_every_source_recognises_only_its_own_files(tmp_path):
    ours = {'model': {'backbone.conv1.weight': torch.zeros(1)}, 'config': {'MODEL_NAME': 'tsn'}}
    files = {
        'dlac': ours,
        'mmaction2': {'meta': {}, 'state_dict': {'backbone.conv1.conv.weight': torch.zeros(1),
                                                 'cls_head.fc_cls.weight': torch.zeros(1)}},
        'pyslowfast': {'model_state': {'s1.pathway0_stem.conv.weight': torch.zeros(1)}, 'cfg': ''},
        'pytorchvideo': {'model_state': {'blocks.0.conv.weight': torch.zeros(1)}},
        'mfnet-authors': {'state_dict': {'module.conv1.conv.weight': torch.zeros(1),
                                         'module.conv2.B01.conv_i1.bn.weight': torch.zeros(1)}},
        'bninception-caffe': {'conv1_7x7_s2.weight': torch.zeros(1), 'last_linear.weight': torch.zeros(1)},
        'torchvision': {'conv1.weight': torch.zeros(1, 1, 1, 1), 'bn1.weight': torch.zeros(1),
                        'layer1.0.conv1.weight': torch.zeros(1)},
    }
    assert set(files) <= set(SOURCES)
    for name, checkpoint in files.items():
        assert detect(checkpoint, name) == name
    with pytest.raises(WeightsError, match=r'x.pth: no known weight layout .*Known sources: dlac'):
        detect({'weights': {}}, 'x.pth')


def test_an_ambiguous_file_names_the_candidates(monkeypatch):
    monkeypatch.setitem(SOURCES, 'lookalike', type('Lookalike', (), {
        'recognises': staticmethod(lambda checkpoint: True), 'DESCRIPTION': ''}))
    with pytest.raises(WeightsError, match=r'f.pth looks like several layouts: torchvision, lookalike'):
        detect({'conv1.weight': torch.zeros(1, 1, 1, 1), 'bn1.weight': torch.zeros(1),
                'layer1.0.conv1.weight': torch.zeros(1)}, 'f.pth')


def test_command_line_overrides_win_over_the_file(tmp_path, capsys):
    reference = cadene_bninception()
    path = save(tmp_path / 'bni.pth', reference.state_dict())
    out = tmp_path / 'out.pth'
    assert convert_main([str(path), str(out), 'DATASET.CHANNEL_ORDER', 'RGB', 'DATASET.CLASS_NUM', '1000']) == 0
    log, printed = capsys.readouterr().out.split('config keys set from the file')
    assert 'kept as given (the weights say otherwise): DATASET.CHANNEL_ORDER BGR' in log
    assert 'MODEL_NAME tsn' in printed and 'BACKBONE bninception' in printed
    assert 'DATASET.VALUE_RANGE 255.0' in printed and 'DATASET.CHANNEL_ORDER' not in printed
    saved = torch.load(out, weights_only=True)['config']['DATASET']
    assert saved['CHANNEL_ORDER'] == 'RGB' and saved['VALUE_RANGE'] == 255.0
    assert convert_main([str(path), str(out), '--from', 'mmaction2']) == 2
    assert 'is not a mmaction2 file' in capsys.readouterr().err
    np.testing.assert_array_equal(torch.load(out, weights_only=True)['model']['head.fc.weight'].numpy(),
                                  reference.last_linear.weight.detach().numpy())


# ---------------------------------------------------------------- TSM / MFNet authors, original DLAC
def authors_layout(model):
    """Our TSN/TSM's weights in the TSN/TSM authors' names: module.base_model.*, a shifted
    block's conv1 wrapped (conv1.net), module.new_fc."""
    from models.tsm import TemporalShift
    shifted = {name[:-len('.temporal_shift')] for name, module in model.named_modules()
               if isinstance(module, TemporalShift)}
    layout = {}
    for key, value in model.state_dict().items():
        if key.startswith('head.fc.'):
            layout['module.new_fc.' + key[len('head.fc.'):]] = value
            continue
        name = key[len('backbone.'):]
        block = name.rsplit('.', 2)[0]
        if 'backbone.' + block in shifted and name.endswith('.conv1.weight'):
            name = name.replace('.conv1.weight', '.conv1.net.weight')
        layout['module.base_model.' + name] = value
    return layout


@pytest.mark.parametrize('depth, shifts', [(50, 16), (101, 18)])
def test_tsm_authors_checkpoints(cfg, tmp_path, depth, shifts):
    from models.tsm import TSM
    source = randomize(TSM(400, f'resnet{depth}')).double()
    state = authors_layout(source)
    assert sum('.conv1.net.' in k for k in state) == shifts          # the authors' n_round rule
    path = save(tmp_path / 'TSM_kinetics_RGB.pth', {'epoch': 50, 'arch': f'resnet{depth}',
                                                    'state_dict': state, 'best_prec1': 74.1})
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'tsm', f'resnet{depth}', 400
    clip = torch.randn(1, 3, 4, 64, 64, dtype=torch.float64)
    assert_same_logits(through_pretrained(cfg, path)(clip), source(clip))
    if depth == 101:       # a file that shifts every block is another network
        state = {k.replace('.conv1.weight', '.conv1.net.weight') if '.layer' in k and k.endswith('.conv1.weight') else k: v
                 for k, v in state.items()}
        save(path, {'state_dict': state})
        with pytest.raises(WeightsError, match="TSM file shifts blocks .* DLAC's TSM shifts"):
            read_weights(str(path))


def test_original_dlac_checkpoints(cfg, tmp_path):
    from models.mfnet3d import MFNet3D
    from models.tsn import TSN
    source = randomize(TSN(51, 'bninception')).double()
    layout = authors_layout(source)
    path = save(tmp_path / '20200101_best_NONE_NONE.pth.tar',
                {'epoch': 80, 'model_dict': layout, 'optimizer_dict': {}, 'best_prec1': 52.3})
    cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'bninception', 51
    ours = through_pretrained(cfg, path)
    assert cfg.DATASET.CHANNEL_ORDER == 'BGR' and read_weights(str(path)).source == 'dlac-original'
    clip = torch.randn(1, 3, 2, 96, 96, dtype=torch.float64)
    assert_same_logits(ours(clip), source(clip))

    mfnet = randomize(MFNet3D(101)).double()
    layout = {'module.' + ('classifier.' + k[len('head.fc.'):] if k.startswith('head.fc.') else k[len('backbone.'):]): v
              for k, v in mfnet.state_dict().items()}
    save(path, {'epoch': 3, 'model_dict': layout})
    converted = read_weights(str(path))
    assert converted.model_name == 'mfnet3d' and torch.equal(converted.state_dict['head.fc.weight'],
                                                             mfnet.head.fc.weight)


def dlac_i3d_names(state):
    """Our I3D-NL state dict in the original DLAC's names (base_db/ModelZoo/I3D: I3DResNet under
    base_model, nl_block with g/theta/phi/W, fullyconv), as its DataParallel saved them."""
    layout = {}
    for key, value in state.items():
        if key.startswith('head.fc.'):
            name = 'base_model.fullyconv.' + key.rsplit('.', 1)[1]
            value = value.reshape(value.shape + (1, 1, 1)) if value.dim() == 2 else value
        else:
            name = 'base_model.' + key[len('backbone.'):].replace('.non_local.out.', '.nl_block.W.') \
                .replace('.non_local.', '.nl_block.')
        layout['module.' + name] = value
    return layout


def test_original_dlac_i3d_with_non_local_blocks(cfg, tmp_path):
    from models.i3d import I3D
    source = randomize(I3D(51, 50, non_local={'sub_sample': False, 'scaled': False})).double()
    layout = dlac_i3d_names(source.state_dict())
    assert len([k for k in layout if k.endswith('nl_block.W.0.weight')]) == 5
    assert {'module.base_model.layer2.1.nl_block.theta.weight', 'module.base_model.layer3.5.nl_block.W.1.running_var'} <= set(layout)
    assert tuple(layout['module.base_model.fullyconv.weight'].shape) == (51, 2048, 1, 1, 1)
    path = save(tmp_path / '20200101_best_i3d.pth.tar', {'epoch': 3, 'model_dict': layout})
    converted = read_weights(str(path))
    assert (converted.source, converted.model_name) == ('dlac-original', 'i3d')
    assert converted.options['MODEL.NON_LOCAL'] and not converted.options['MODEL.NON_LOCAL_SUBSAMPLE']
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'i3d', 'resnet50', 51
    ours = through_pretrained(cfg, path)
    clip = torch.randn(1, 3, 8, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(ours(clip), source(clip))


def test_mfnet_authors_kinetics_file_keeps_its_classifier(cfg, tmp_path):
    from models.mfnet3d import MFNet3D
    source = randomize(MFNet3D(400)).double()
    layout = {'module.' + ('classifier.' + k[len('head.fc.'):] if k.startswith('head.fc.') else k[len('backbone.'):]): v
              for k, v in source.state_dict().items() if not k.endswith('num_batches_tracked')}
    path = save(tmp_path / 'MFNet3D_Kinetics-400_72.8.pth', {'epoch': 20, 'state_dict': layout})
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'mfnet3d', 'mfnet3d', 400
    ours = through_pretrained(cfg, path)
    clip = torch.randn(1, 3, 8, 64, 64, dtype=torch.float64)
    assert_same_logits(ours(clip), source(clip))
    assert cfg.DATASET.MEAN == pytest.approx([124 / 255, 117 / 255, 104 / 255])


def test_yjxiong_bninception_with_1xC_batch_norm_tensors(tmp_path):
    reference = cadene_bninception()
    state = {('fc.' + k[len('last_linear.'):] if k.startswith('last_linear.') else k):
             (v.reshape(1, -1) if '_bn.' in k and v.dim() == 1 and not k.endswith('num_batches_tracked') else v)
             for k, v in reference.state_dict().items()}
    path = save(tmp_path / 'bn_inception-9f5701afb96c8044.pth', state)
    converted = read_weights(str(path))
    assert converted.source == 'bninception-caffe'
    assert torch.equal(converted.state_dict['backbone.conv1_7x7_s2_bn.running_var'],
                       reference.conv1_7x7_s2_bn.running_var)


# ---------------------------------------------------------------- MODEL.PRETRAINED imagenet
@pytest.fixture
def weights_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served (stopped afterwards)."""
    import functools
    import http.server
    import threading
    served = tmp_path / 'served'
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f'http://127.0.0.1:{server.server_address[1]}/'
    server.shutdown()
    server.server_close()


def test_imagenet_weights_are_downloaded_once_with_a_checksum(cfg, tmp_path, weights_server, monkeypatch):
    import hashlib
    from models import named_weights
    served, address = weights_server
    reference = timm_resnet(18)
    torch.save(reference.state_dict(), served / 'resnet18-test.pth')
    digest = hashlib.sha256((served / 'resnet18-test.pth').read_bytes()).hexdigest()
    cfg.SNAPSHOT_ROOT, cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = str(tmp_path), 'i3d', 'resnet18', 5
    zoo = config.pretrain_zoo_dir(cfg)

    monkeypatch.setitem(named_weights.IMAGENET_FILES, 'resnet18',
                        ('resnet18-test.pth', address + 'resnet18-test.pth', '00000000'))
    with pytest.raises(WeightsError, match=r'does not match its SHA-256 prefix 00000000.*nothing was saved'):
        through_pretrained(cfg, 'imagenet')
    assert not osp.exists(osp.join(zoo, 'resnet18-test.pth')) and len(list(served.iterdir())) == 1

    monkeypatch.setitem(named_weights.IMAGENET_FILES, 'resnet18',
                        ('resnet18-test.pth', address + 'resnet18-test.pth', digest[:8]))
    model = through_pretrained(cfg, 'imagenet')            # an I3D inflated from the ImageNet file
    assert osp.isfile(osp.join(zoo, 'resnet18-test.pth'))
    assert torch.allclose(model.backbone.layer1[0].conv1.weight.sum(dim=2),
                          reference.layer1[0].conv1.weight.double())
    (served / 'resnet18-test.pth').unlink()                # the copy in the zoo is used from now on
    through_pretrained(cfg, 'imagenet')

    monkeypatch.setitem(named_weights.IMAGENET_FILES, 'resnet34',
                        ('resnet34-test.pth', address + 'missing.pth', 'abc'))
    cfg.BACKBONE = 'resnet34'
    with pytest.raises(WeightsError, match=rf"could not be downloaded .*get {address}missing.pth and put it in {zoo}"):
        through_pretrained(cfg, 'imagenet')
    cfg.MODEL_NAME, cfg.BACKBONE = 'mfnet3d', 'mfnet3d'
    with pytest.raises(WeightsError, match=r'MFNet2D_ImageNet1k-0000.pth is not in .* get it from '
                                           r'https://github.com/cypw/PyTorch-MFNet'):
        through_pretrained(cfg, 'imagenet')


# ---------------------------------------------------------------- the convention and the options
def test_the_normaliser_and_the_exported_clip_spec_apply_the_convention(cfg):
    from datasets.clip_spec import ClipSpec
    cfg.DATASET.MEAN, cfg.DATASET.STD = [104.0, 117.0, 128.0], [1.0, 2.0, 4.0]
    cfg.DATASET.CHANNEL_ORDER, cfg.DATASET.VALUE_RANGE = 'BGR', 255.0
    rgb = torch.randint(0, 256, (1, 3, 2, 8, 8), dtype=torch.uint8)
    expected = (rgb.flip(1).double() - torch.tensor([104.0, 117.0, 128.0]).view(1, 3, 1, 1, 1)) \
        / torch.tensor([1.0, 2.0, 4.0]).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(build_normalizer(cfg)(rgb).double(), expected, rtol=1e-6, atol=1e-4)
    cfg.DATASET.SCALE_SIZE = cfg.DATASET.CROP_SIZE = 8
    spec = ClipSpec.from_config(cfg)
    assert (spec.channel_order, spec.value_range) == ('BGR', 255.0)
    frames = rgb[0].permute(1, 2, 3, 0).numpy()               # [T, H, W, 3] as the demo decodes
    np.testing.assert_allclose(spec.to_input(frames), expected[0].numpy(), rtol=1e-6, atol=1e-4)
    assert ClipSpec.from_dict(spec.to_dict()) == spec         # meta.json carries it


def test_a_checkpoint_brings_its_options_and_convention_to_evaluation(tmp_path, caplog):
    from models.slowfast import SlowFast
    from utils.checkpoint import save_atomic
    trained = config.build_config(['MODEL_NAME', 'slowfast', 'DATASET.CLASS_NUM', '5',
                                   'MODEL.SLOWFAST_ALPHA', '4', 'MODEL.SLOWFAST_LATERAL', 'conv',
                                   'DATASET.CHANNEL_ORDER', 'BGR'])
    model = build_model(trained)
    assert isinstance(model, SlowFast) and len(model.lateral[0]) == 1
    save_atomic({'model': model.state_dict(), 'config': config.to_plain(trained)}, str(tmp_path / 'best.pth'))
    cfg = config.build_config(['DATASET.VALUE_RANGE', '1.0'], exp_type='E',
                              trained=str(tmp_path / 'best.pth'))
    with caplog.at_level(logging.INFO):
        config.log_resolution(cfg, LOG)
        loaded, _ = load_model(cfg, str(tmp_path / 'best.pth'), LOG)
    assert (cfg.MODEL_NAME, cfg.DATASET.CLASS_NUM) == ('slowfast', 5)
    assert (cfg.MODEL.SLOWFAST_ALPHA, cfg.MODEL.SLOWFAST_LATERAL, cfg.DATASET.CHANNEL_ORDER) == (4, 'conv', 'BGR')
    assert f'settings from {tmp_path / "best.pth"}: slowfast/resnet18 RGB, 5 classes' in caplog.text
    clip = torch.randn(1, 3, 8, 32, 32)
    torch.testing.assert_close(loaded.eval()(clip), model.eval()(clip))


def test_slow_frames_lateral_form_and_basic_block_inflation_options():
    from models.i3d import I3D
    from models.slowfast import SlowFast
    clip = torch.arange(32.0).view(1, 1, 32, 1, 1).expand(1, 3, 32, 2, 2)
    slow, _ = SlowFast(4, 18, alpha=4, slow_frames='linspace').pathways(clip)
    assert slow[0, 0, :, 0, 0].tolist() == [0, 4, 8, 13, 17, 22, 26, 31]
    slow, _ = SlowFast(4, 18, alpha=4).pathways(clip)
    assert slow[0, 0, :, 0, 0].tolist() == [0, 4, 8, 12, 16, 20, 24, 28]
    assert [type(m).__name__ for m in SlowFast(4, 18, lateral='conv').lateral[1]] == ['Conv3d']
    assert I3D(4, 18, inflate_conv2=True).backbone.layer1[0].conv2.weight.shape == (64, 64, 3, 3, 3)
    assert I3D(4, 18).backbone.layer1[0].conv2.weight.shape == (64, 64, 1, 3, 3)
    assert I3D(4, 50, stem_temporal_stride=(2, 2)).backbone(torch.randn(1, 3, 16, 32, 32)).shape[2] == 2
    with pytest.raises(ModelOptionError, match="unknown MODEL.SLOWFAST_LATERAL 'bn'"):
        SlowFast(4, 18, lateral='bn')
