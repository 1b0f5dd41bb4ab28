"""Weight files declare what they are (timm's pretrained_cfg habit): every converter says its
file's kind ('model', '2d_backbone', '3d_backbone', 'encoder', 'masked_autoencoder'), its classifier's names and its
first convolution's name, and models.weights.load_converted loads each kind its own way,
never by guessing from how many of the file's names the model shares.

The files are small synthetic ones in each source's own layout (our models' random weights,
renamed as the source names them), so no reference package is needed except for the Hugging
Face folder (transformers) and PySlowFast's layouts (tests/data/layouts)."""
import json
import logging
import os.path as osp
import re

import pytest
import torch

import models
from conftest import ROOT
from test_convert import dlac_i3d_names
from models import ModelConfigError, build_model
from models.backbones import build_backbone
from models.backbones.mfnet import MFNet
from models.convert import SOURCES, read_weights
from models.convert.common import (KIND_2D_BACKBONE, KIND_ENCODER, KIND_MODEL, KIND_PRETRAIN, KINDS, Converted)
from models.errors import ModelOptionError
from models.i3d import I3D
from models.mfnet3d import MFNet3D
from models.modality import cross_modality_weight, first_conv_key
from models.tsm import TSM, TemporalShift
from models.tsn import TSN
from models.video_resnet import VideoResNet
from models.videomae import VideoMAE
from models.videomae_pretrain import VideoMAEPretrain
from models.weights import WeightsError, load_converted, load_pretrained
from models.x3d import X3D

LOG = logging.getLogger('test')


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


def state_of(model, seed=0):
    """The model's state with random values in every floating tensor (so a test cannot pass on
    a freshly initialised copy)."""
    generator = torch.Generator().manual_seed(seed)
    return {k: (torch.rand(v.shape, generator=generator) + 0.5 if v.is_floating_point() else v.clone())
            for k, v in model.state_dict().items()}


# ---------------------------------------------------------------- each source's own layout
def in_2d_names(backbone):
    """An ImageNet 2D network's file as its source names it (torchvision, Cadene, MFNet
    authors): the weights of a TSN of 1000 classes, the classifier by its 2D name."""
    classifier = {'resnet18': 'fc.', 'bninception': 'fc.', 'inceptionv3': 'fc.', 'mfnet2d': 'classifier.',
                  'mobilenetv2': 'classifier.1.'}[backbone]
    return {(classifier + k[len('head.fc.'):] if k.startswith('head.fc.') else k[len('backbone.'):]): v
            for k, v in state_of(TSN(1000, backbone)).items()}


def authors_layout(model):
    """A TSN/TSM in the TSN/TSM authors' (and the original DLAC's) names: module.base_model.*,
    a shifted block's conv1 wrapped as conv1.net, module.new_fc."""
    shifted = {name[:-len('.temporal_shift')] for name, m in model.named_modules() if isinstance(m, TemporalShift)}
    layout = {}
    for key, value in state_of(model).items():
        if key.startswith('head.fc.'):
            layout['module.new_fc.' + key[len('head.fc.'):]] = value
            continue
        name = key[len('backbone.'):]
        if 'backbone.' + name.rsplit('.', 2)[0] in shifted and name.endswith('.conv1.weight'):
            name = name.replace('.conv1.weight', '.conv1.net.weight')
        layout['module.base_model.' + name] = value
    return layout


def mfnet_layout(model):
    return {'module.' + ('classifier.' + k[len('head.fc.'):] if k.startswith('head.fc.') else k[len('backbone.'):]): v
            for k, v in state_of(model).items()}


def mmaction_layout(model):
    """A TSN or I3D in mmaction2 1.x's recognizer names (ConvModule conv/bn, cls_head.fc_cls),
    without config text (as files converted from mmaction2 0.x)."""
    renamed = {}
    for key, value in state_of(model).items():
        if key.startswith('head.fc.'):
            renamed['cls_head.fc_cls.' + key[len('head.fc.'):]] = value
            continue
        name = key[len('backbone.'):]
        name = re.sub(r'^conv1\.weight$', 'conv1.conv.weight', name)
        name = re.sub(r'^bn1\.', 'conv1.bn.', name)
        name = re.sub(r'\.downsample\.0\.', '.downsample.conv.', name)
        name = re.sub(r'\.downsample\.1\.', '.downsample.bn.', name)
        name = re.sub(r'(layer\d\.\d+)\.conv(\d)\.weight$', r'\1.conv\2.conv.weight', name)
        name = re.sub(r'(layer\d\.\d+)\.bn(\d)\.', r'\1.conv\2.bn.', name)
        renamed['backbone.' + name] = value
    return {'meta': {}, 'state_dict': renamed}


def pytorchvideo_i3d_layout(model):
    """Our I3D in pytorchvideo's create_resnet names (blocks.N, res_blocks, branch1/2, proj)."""
    stages, letters = {'1': '1', '2': '3', '3': '4', '4': '5'}, {'1': 'a', '2': 'b', '3': 'c'}
    renamed = {}
    for key, value in state_of(model).items():
        name = key[len('backbone.'):]
        if key.startswith('head.fc.'):
            new = 'blocks.6.proj.' + key[len('head.fc.'):]
        elif name.startswith(('conv1.', 'bn1.')):
            new = ('blocks.0.conv.' if name.startswith('conv1.') else 'blocks.0.norm.') + name.split('.', 1)[1]
        elif m := re.fullmatch(r'layer(\d)\.(\d+)\.(conv|bn)(\d)\.(.+)', name):
            new = (f'blocks.{stages[m[1]]}.res_blocks.{m[2]}.branch2.'
                   f'{"conv" if m[3] == "conv" else "norm"}_{letters[m[4]]}.{m[5]}')
        else:
            m = re.fullmatch(r'layer(\d)\.(\d+)\.downsample\.([01])\.(.+)', name)
            new = f'blocks.{stages[m[1]]}.res_blocks.{m[2]}.branch1_{"conv" if m[3] == "0" else "norm"}.{m[4]}'
        renamed[new] = value
    return {'model_state': renamed}


def pyslowfast_layout(name):
    """Random tensors in a layout read off PySlowFast's code (tests/data/layouts)."""
    with open(osp.join(ROOT, 'tests', 'data', 'layouts', name), encoding='utf-8') as handle:
        shapes = json.load(handle)
    generator = torch.Generator().manual_seed(0)
    return {'model_state': {k: (torch.tensor(5) if k.endswith('num_batches_tracked') else
                                torch.rand(s, generator=generator) + 0.5) for k, s in shapes.items()}}


def videomae_authors_layout(with_head=True):
    state = {('head.' + k[len('head.fc.'):] if k.startswith('head.fc.') else k[len('backbone.'):]): v
             for k, v in state_of(VideoMAE(5, 'vit_small')).items()}
    return {'model': {k: v for k, v in state.items() if with_head or not k.startswith('head.')}}


def huggingface_folder(folder):
    pytest.importorskip('transformers')
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification
    config = VideoMAEConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                            intermediate_size=1536, num_labels=5, use_mean_pooling=True)
    VideoMAEForVideoClassification(config).save_pretrained(str(folder))
    return folder


def huggingface_pretraining_folder(folder):
    """A VideoMAEForPreTraining of ViT-S's size with a 1-block decoder 128 wide."""
    pytest.importorskip('transformers')
    from transformers import VideoMAEConfig, VideoMAEForPreTraining
    config = VideoMAEConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                            use_mean_pooling=False, decoder_hidden_size=128, decoder_num_hidden_layers=1,
                            decoder_num_attention_heads=2, decoder_intermediate_size=512)
    VideoMAEForPreTraining(config).save_pretrained(str(folder))
    return folder


def pretraining_state():
    """A VideoMAE pre-training model's state (the VideoMAE repository's names, and ours)."""
    return state_of(VideoMAEPretrain('vit_small', decoder_depth=1, decoder_width=64))


def torchvision_video_layout(variant):
    return {('fc.' + k[len('head.fc.'):] if k.startswith('head.fc.') else k[len('backbone.'):]): v
            for k, v in state_of(VideoResNet(400, variant)).items()}


def ours(model, model_name, backbone):
    return {'model': state_of(model), 'config': {'MODEL_NAME': model_name, 'BACKBONE': backbone}}


FC = ('head.fc.weight', 'head.fc.bias')
# name: (the file, as its source lays it out; source, kind, model_name, classifier, first_conv)
CASES = {
    'dlac-tsn': (lambda: ours(TSN(5, 'resnet18'), 'tsn', 'resnet18'),
                 'dlac', KIND_MODEL, 'tsn', FC, 'backbone.conv1.weight'),
    'dlac-x3d': (lambda: ours(X3D(7, 'x3d_m'), 'x3d', 'x3d_m'),
                 'dlac', KIND_MODEL, 'x3d', FC, 'backbone.stem.conv_xy.weight'),
    'dlac-original-tsn': (lambda: {'model_dict': authors_layout(TSN(51, 'resnet18'))},
                          'dlac-original', KIND_MODEL, 'tsn', FC, 'backbone.conv1.weight'),
    'dlac-original-mfnet3d': (lambda: {'model_dict': mfnet_layout(MFNet3D(101))},
                              'dlac-original', KIND_MODEL, 'mfnet3d', FC, 'backbone.conv1.conv.weight'),
    'dlac-original-i3d-nl': (lambda: {'model_dict': dlac_i3d_names(state_of(I3D(51, 18, non_local={
        'sub_sample': False, 'scaled': False})))}, 'dlac-original', KIND_MODEL, 'i3d', FC, 'backbone.conv1.weight'),
    'mmaction2-tsn': (lambda: mmaction_layout(TSN(10, 'resnet18')),
                      'mmaction2', KIND_MODEL, 'tsn', FC, 'backbone.conv1.weight'),
    'mmaction2-i3d': (lambda: mmaction_layout(I3D(10, 18, stem_temporal_stride=(2, 2), inflate_conv2=True)),
                      'mmaction2', KIND_MODEL, 'i3d', FC, 'backbone.conv1.weight'),
    'pyslowfast-slowfast': (lambda: pyslowfast_layout('pyslowfast_slowfast_r50.json'),
                            'pyslowfast', KIND_MODEL, 'slowfast', FC, 'fast.conv1.weight'),
    'pyslowfast-i3d': (lambda: pyslowfast_layout('pyslowfast_i3d_r50.json'),
                       'pyslowfast', KIND_MODEL, 'i3d', FC, 'backbone.conv1.weight'),
    'pytorchvideo-i3d': (lambda: pytorchvideo_i3d_layout(I3D(400, 18)),
                         'pytorchvideo', KIND_MODEL, 'i3d', FC, 'backbone.conv1.weight'),
    'tsm-authors-tsm': (lambda: {'epoch': 50, 'state_dict': authors_layout(TSM(400, 'resnet18'))},
                        'tsm-authors', KIND_MODEL, 'tsm', FC, 'backbone.conv1.weight'),
    'tsm-authors-bninception': (lambda: {'state_dict': authors_layout(TSN(101, 'bninception'))},
                                'tsm-authors', KIND_MODEL, 'tsn', FC, 'backbone.conv1_7x7_s2.weight'),
    'mfnet-authors-2d': (lambda: in_2d_names('mfnet2d'),
                         'mfnet-authors', KIND_2D_BACKBONE, 'tsn', FC, 'backbone.conv1.conv.weight'),
    'mfnet-authors-3d': (lambda: {'epoch': 20, 'state_dict': mfnet_layout(MFNet3D(400))},
                         'mfnet-authors', KIND_MODEL, 'mfnet3d', FC, 'backbone.conv1.conv.weight'),
    'bninception-caffe': (lambda: in_2d_names('bninception'),
                          'bninception-caffe', KIND_2D_BACKBONE, 'tsn', FC, 'backbone.conv1_7x7_s2.weight'),
    'torchvision-resnet': (lambda: in_2d_names('resnet18'),
                           'torchvision', KIND_2D_BACKBONE, 'tsn', FC, 'backbone.conv1.weight'),
    'torchvision-resnet-headless': (lambda: state_of(build_backbone('resnet18', num_classes=0)),
                                    'torchvision', KIND_2D_BACKBONE, 'tsn', (), 'backbone.conv1.weight'),
    'torchvision-mobilenetv2': (lambda: in_2d_names('mobilenetv2'),
                                'torchvision', KIND_2D_BACKBONE, 'tsn', FC, 'backbone.features.0.0.weight'),
    'torchvision-inceptionv3': (lambda: in_2d_names('inceptionv3'),
                                'torchvision', KIND_2D_BACKBONE, 'tsn', FC, 'backbone.Conv2d_1a_3x3.conv.weight'),
    'torchvision-r2plus1d': (lambda: torchvision_video_layout('r2plus1d'),
                             'torchvision', KIND_MODEL, 'r2plus1d', FC, 'backbone.stem.0.weight'),
    'huggingface-videomae': (huggingface_folder, 'huggingface', KIND_MODEL, 'videomae', FC,
                             'backbone.patch_embed.proj.weight'),
    'videomae-authors': (lambda: videomae_authors_layout(), 'videomae-authors', KIND_MODEL, 'videomae', FC,
                         'backbone.patch_embed.proj.weight'),
    'videomae-authors-encoder': (lambda: videomae_authors_layout(with_head=False), 'videomae-authors',
                                 KIND_ENCODER, 'videomae', (), 'backbone.patch_embed.proj.weight'),
    'videomae-authors-pretraining': (lambda: {'model': pretraining_state(), 'epoch': 799}, 'videomae-authors',
                                     KIND_PRETRAIN, 'videomae', (), 'encoder.patch_embed.proj.weight'),
    'huggingface-videomae-pretraining': (huggingface_pretraining_folder, 'huggingface', KIND_PRETRAIN, 'videomae',
                                         (), 'encoder.patch_embed.proj.weight'),
    'dlac-videomae-pretraining': (lambda: {'model': pretraining_state(), 'config': {
        'MODEL_NAME': 'videomae', 'BACKBONE': 'vit_small', 'TRAIN': {'TASK': 'pretrain'},
        'MODEL': {'DECODER_DEPTH': 1, 'DECODER_WIDTH': 64}}}, 'dlac', KIND_PRETRAIN, 'videomae', (),
        'encoder.patch_embed.proj.weight'),
}
FOLDERS = (huggingface_folder, huggingface_pretraining_folder)     # save_pretrained folders, not files


def write(case, tmp_path):
    make = CASES[case][0]
    if make in FOLDERS:
        return str(make(tmp_path / case))
    path = tmp_path / f'{case}.pth'
    torch.save(make(), path)
    return str(path)


def test_every_source_is_covered():
    """A new converter cannot escape these tests."""
    assert {case[1] for case in CASES.values()} == set(SOURCES)


def declared_model(cfg, converted, classes=None):
    """The model the file declares (MODEL_NAME, BACKBONE, its architecture options), built by
    the registry's own builder."""
    cfg.MODEL_NAME, cfg.BACKBONE = converted.model_name, converted.options['BACKBONE']
    cfg.DATASET.CLASS_NUM = classes or converted.num_classes or 5
    for key, value in converted.options.items():
        if key.startswith('MODEL.'):
            cfg.MODEL[key[len('MODEL.'):]] = value
    if converted.kind == KIND_PRETRAIN:             # a VideoMAE pre-training model
        return models.build_pretrain_model(cfg)
    return models.MODELS[converted.model_name][1](cfg)


@pytest.mark.parametrize('case', list(CASES))
def test_each_converter_declares_what_its_file_is(cfg, tmp_path, case):
    _, source, kind, model_name, classifier, first_conv = CASES[case]
    converted = read_weights(write(case, tmp_path))
    assert (converted.source, converted.kind, converted.model_name) == (source, kind, model_name)
    assert converted.kind in KINDS
    assert converted.classifier == classifier and converted.first_conv == first_conv
    # the names are the file's, in our names
    assert set(classifier) <= set(converted.state_dict) and first_conv in converted.state_dict
    # ... and the model's: what its first convolution is found as, where its classifier is
    model = declared_model(cfg, converted)
    assert first_conv_key(model) == first_conv
    assert set(classifier) <= set(model.state_dict())
    assert converted.state_dict[first_conv].dim() == model.state_dict()[first_conv].dim()


@pytest.mark.parametrize('case', [c for c in CASES if CASES[c][2] == KIND_MODEL])
def test_a_whole_model_file_loads_whole_into_its_model(cfg, tmp_path, case):
    path = write(case, tmp_path)
    converted = read_weights(path)
    model = declared_model(cfg, converted)
    load_converted(model, converted, path, LOG, model_name=converted.model_name)
    own = model.state_dict()
    for name in converted.classifier + (converted.first_conv,):
        assert torch.equal(own[name], converted.state_dict[name].to(own[name].dtype)), name


def test_a_2d_network_file_is_its_own_tsn_and_the_backbone_of_others(cfg, tmp_path, caplog):
    """An ImageNet ResNet: its classifier is the head of a TSN of its 1000 classes (the 2D
    network itself), and left out of a TSN of other classes and of an inflated I3D."""
    path = write('torchvision-resnet', tmp_path)
    converted = read_weights(path)
    same = TSN(1000, 'resnet18')
    load_converted(same, converted, path, LOG, model_name='tsn')
    assert torch.equal(same.head.fc.weight, converted.state_dict['head.fc.weight'])
    other = TSN(5, 'resnet18')
    built = other.head.fc.weight.clone()
    with caplog.at_level(logging.INFO):
        load_converted(other, converted, path, LOG, model_name='tsn')
    assert torch.equal(other.head.fc.weight, built) and 'left out the classifier: fc.bias, fc.weight' in caplog.text
    assert torch.equal(other.backbone.layer4[1].conv2.weight, converted.state_dict['backbone.layer4.1.conv2.weight'])
    i3d = I3D(5, 18)
    load_converted(i3d, converted, path, LOG, model_name='i3d')
    torch.testing.assert_close(i3d.backbone.layer1[0].conv1.weight.sum(dim=2),
                               converted.state_dict['backbone.layer1.0.conv1.weight'])


# ---------------------------------------------------------------- what the 50% rule got wrong
@pytest.mark.parametrize('model_class', [TSN, TSM])
def test_a_backbone_file_without_a_classifier_loads_into_an_rgb_segment_model(tmp_path, model_class):
    """timm's num_classes=0 weights, or a torchvision file with fc dropped: every name is the
    model's with the model's shapes, so the old guess took it for a whole checkpoint and
    refused it for its missing classifier. It is a 2D backbone, and loads as one."""
    path = write('torchvision-resnet-headless', tmp_path)
    model = model_class(5, 'resnet18')
    built = model.head.fc.weight.clone()
    load_pretrained(model, path, model_name=model_class.__name__.lower())
    state = torch.load(path, weights_only=True)
    assert torch.equal(model.backbone.layer3[1].conv2.weight, state['layer3.1.conv2.weight'])
    assert torch.equal(model.head.fc.weight, built)


def test_a_whole_model_of_other_classes_keeps_all_but_its_classifier(tmp_path, caplog):
    """X3D's head has pretrained layers before its classifier (conv_5, bn_5, lin_5): only the
    declared classifier (head.fc) is re-initialised, not every `head.` tensor (the old code
    called a reset_parameters that X3D's head does not have)."""
    path = write('dlac-x3d', tmp_path)
    state = torch.load(path, weights_only=True)['model']
    model = X3D(5, 'x3d_m')
    built = model.head.fc.weight.clone()
    with caplog.at_level(logging.INFO):
        load_pretrained(model, path, LOG, model_name='x3d')
    assert 're-initialised' in caplog.text and '(7, 2048) -> (5, 2048)' in caplog.text
    assert torch.equal(model.head.lin_5.weight, state['head.lin_5.weight'])
    assert torch.equal(model.head.bn_5.running_var, state['head.bn_5.running_var'])
    assert torch.equal(model.backbone.stem.conv_xy.weight, state['backbone.stem.conv_xy.weight'])
    assert torch.equal(model.head.fc.weight, built) and not model.head.fc.bias.any()


def test_an_rgb_tsn_checkpoint_gives_a_flow_tsn_its_backbone(tmp_path, caplog):
    """A whole RGB TSN (kind 'model') into a Flow TSN: the same names, but the first
    convolution takes 10 channels, so the backbone goes in with cross-modality
    initialisation and the classifier stays out."""
    path = write('dlac-tsn', tmp_path)
    state = torch.load(path, weights_only=True)['model']
    flow = TSN(5, 'resnet18', modality='Flow', new_length=5)
    built = flow.head.fc.weight.clone()
    with caplog.at_level(logging.INFO):
        load_pretrained(flow, path, LOG, model_name='tsn')
    assert 'by cross-modality initialisation' in caplog.text
    torch.testing.assert_close(flow.backbone.conv1.weight, cross_modality_weight(state['backbone.conv1.weight'], 10))
    assert torch.equal(flow.backbone.layer2[0].downsample[1].running_mean,
                       state['backbone.layer2.0.downsample.1.running_mean'])
    assert torch.equal(flow.head.fc.weight, built)


def test_a_flow_checkpoint_is_refused_by_an_rgb_model_for_its_channels(tmp_path):
    flow = TSN(5, 'resnet18', modality='Flow', new_length=5)
    torch.save({'model': state_of(flow), 'config': {'MODEL_NAME': 'tsn', 'BACKBONE': 'resnet18'}},
               tmp_path / 'flow.pth')
    with pytest.raises(WeightsError, match=r'first convolution backbone\.conv1\.weight takes 10 input '
                                           r'channels, the model\'s 3 \(another MODALITY'):
        load_pretrained(TSN(5, 'resnet18'), str(tmp_path / 'flow.pth'), model_name='tsn')


def test_a_whole_model_of_another_model_name_is_refused_by_name(tmp_path):
    """A torchvision R(2+1)D file into an R3D: the same parameter names; the file says which
    model it is, and the error says which MODEL_NAME takes it."""
    path = write('torchvision-r2plus1d', tmp_path)
    with pytest.raises(WeightsError, match=r'holds a r2plus1d model \(torchvision\), whose weights do not '
                                           r'fit VideoResNet: use it with MODEL_NAME r2plus1d'):
        load_pretrained(VideoResNet(5, 'r3d'), path, model_name='r3d')


def test_tsn_and_tsm_files_go_into_each_other_and_inflate_into_3d_models(tmp_path):
    """TSN and TSM have the same parameters (the shift has none; a BN-Inception file cannot
    say which it is); a TSN file's 2D backbone inflates into an I3D."""
    path = write('tsm-authors-tsm', tmp_path)
    state = read_weights(path).state_dict
    tsn = TSN(400, 'resnet18')
    load_pretrained(tsn, path, model_name='tsn')
    assert torch.equal(tsn.head.fc.weight, state['head.fc.weight'])
    i3d = I3D(400, 18)
    load_pretrained(i3d, path, model_name='i3d')
    torch.testing.assert_close(i3d.backbone.conv1.weight.sum(dim=2), state['backbone.conv1.weight'])
    assert not torch.equal(i3d.head.fc.weight, state['head.fc.weight'])      # left out


def test_an_encoder_file_is_refused_saying_what_it_is(tmp_path):
    path = write('videomae-authors-encoder', tmp_path)
    with pytest.raises(WeightsError, match=r"holds an encoder without a classifier \(videomae-authors: kind "
                                           r"'encoder', videomae/vit_small\)"):
        load_pretrained(VideoMAE(5, 'vit_small'), path, model_name='videomae')


def test_a_converter_must_say_what_its_file_is():
    with pytest.raises(TypeError, match='kind'):
        Converted({}, 'tsn', {}, {})
    with pytest.raises(ValueError, match="weight kind 'backbone' is not one of"):
        Converted({}, 'tsn', {}, {}, kind='backbone', classifier=(), first_conv=None)
    import models.weights
    assert not hasattr(models.weights, 'is_model_checkpoint')


# ---------------------------------------------------------------- model options
@pytest.mark.parametrize('build, message', [
    (lambda: TSN(5, backbone='vgg'), r"unknown BACKBONE 'vgg'; choose one of \[.*'resnet18'"),
    (lambda: TSN(5, consensus='median'), r"unknown MODEL.CONSENSUS 'median'; choose one of \['avg', 'max'\]"),
    (lambda: TSN(5, modality='Depth'), r"unknown MODALITY 'Depth'; choose one of \['RGB', 'Flow', 'RGBDiff'\]"),
    (lambda: TSM(5, backbone='inceptionv3'), r"TSM shifts inside residual or inception blocks.*'inceptionv3'"),
    (lambda: I3D(5, depth=42), r"unknown ResNet depth 42; choose one of \[18, 34, 50, 101, 152\]"),
    (lambda: X3D(5, variant='x3d_q'), r"unknown X3D variant \(BACKBONE\) 'x3d_q'; choose one of \['x3d_l'"),
    (lambda: VideoMAE(5, size='vit_huge'), r"unknown VideoMAE size \(BACKBONE\) 'vit_huge'; choose one of "
                                           r"\['vit_base', 'vit_small'\]"),
    (lambda: VideoResNet(5, variant='r4d'), r"unknown video ResNet variant \(MODEL_NAME\) 'r4d'; choose one of "
                                            r"\['mc3', 'r2plus1d', 'r3d'\]"),
    (lambda: build_backbone('resnet19'), r"unknown BACKBONE 'resnet19'"),
    (lambda: MFNet(dim=4), r"unknown MFNet dim 4; choose one of \[2, 3\]"),
], ids=['backbone', 'consensus', 'modality', 'tsm-backbone', 'depth', 'x3d', 'videomae', 'video-resnet',
        'build-backbone', 'mfnet-dim'])
def test_a_bad_model_option_names_the_argument_and_the_choices(build, message):
    with pytest.raises(ModelOptionError, match=message) as raised:
        build()
    assert isinstance(raised.value, ValueError) and not isinstance(raised.value, KeyError)


def test_a_key_error_inside_a_constructor_is_a_bug_not_a_config_error(cfg, monkeypatch):
    def broken(cfg):
        return {}['a bug in a constructor']

    name = cfg.MODEL_NAME.lower()
    monkeypatch.setitem(models.MODELS, name, (models.MODELS[name][0], broken))
    with pytest.raises(KeyError) as raised:
        build_model(cfg, pretrained=False)
    assert not isinstance(raised.value, ModelConfigError)


def test_a_bad_model_option_is_a_config_error_through_build_model(cfg, monkeypatch):
    name = cfg.MODEL_NAME.lower()
    monkeypatch.setitem(models.MODELS, name, (models.MODELS[name][0], lambda cfg: X3D(5, variant='x3d_q')))
    with pytest.raises(ModelConfigError, match=r"unknown X3D variant \(BACKBONE\) 'x3d_q'"):
        build_model(cfg, pretrained=False)
