"""Damaged and hostile weight files: every one refused with a message that names the file and
what is wrong (keys with their shapes, NaN tensors by name, the wrong kind of content), never
an AttributeError, KeyError or IndexError from deep inside."""
import logging

import pytest
import torch

from models.convert import read_weights
from models.tsn import TSN
from models.weights import WeightsError, load_into, load_pretrained
from utils.checkpoint import CheckpointError, load_checkpoint
from utils.trained_model import load_model

LOG = logging.getLogger('test')


def tsn_checkpoint(path, cfg, weights=None, **extra):
    """What train.py writes for TSN-ResNet18 on 8 classes: {'model', 'config', ...}."""
    import config
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'tsn', 'resnet18', 8
    state = {'model': weights if weights is not None else TSN(8, 'resnet18').state_dict(),
             'config': config.to_plain(cfg), 'epoch': 1, 'top1': 50.0}
    state.update(extra)
    torch.save(state, path)
    return str(path)


def test_a_key_and_shape_mismatch_lists_the_keys_with_their_shapes(cfg, tmp_path):
    weights = TSN(8, 'resnet18').state_dict()
    del weights['backbone.layer1.0.conv1.weight']
    weights['backbone.extra.weight'] = torch.zeros(3)
    weights['backbone.conv1.weight'] = torch.zeros(64, 3, 5, 5)
    path = tsn_checkpoint(tmp_path / 'best.pth', cfg, weights)
    with pytest.raises(WeightsError) as caught:
        load_model(cfg, path, LOG)
    message = str(caught.value)
    assert message.startswith(f'{path} does not fit tsn/resnet18:')
    assert 'missing keys: backbone.layer1.0.conv1.weight' in message
    assert 'unexpected keys: backbone.extra.weight' in message
    assert 'backbone.conv1.weight (64, 3, 5, 5) vs (64, 3, 7, 7)' in message
    assert 'Error(s) in loading state_dict' not in message


def test_long_key_lists_are_shortened_with_a_count(cfg):
    model = TSN(8, 'resnet18')
    with pytest.raises(WeightsError, match=r'missing keys: (\S+, ){7}\S+ \.\.\. and \d+ more'):
        load_into(model, {}, source='empty.pth')


@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf')])
def test_nan_or_inf_weights_are_refused_by_name(cfg, tmp_path, value):
    weights = TSN(8, 'resnet18').state_dict()
    weights['backbone.layer2.0.bn1.running_var'][3] = value
    path = tsn_checkpoint(tmp_path / 'best.pth', cfg, weights)
    with pytest.raises(WeightsError, match=r'holds NaN or Inf values in 1 tensor: '
                                           r'backbone\.layer2\.0\.bn1\.running_var'):
        load_model(cfg, path, LOG)
    # the same file as MODEL.PRETRAINED (through the converters)
    with pytest.raises(WeightsError, match='backbone.layer2.0.bn1.running_var'):
        load_pretrained(TSN(8, 'resnet18'), path)


def test_nan_in_a_torchvision_backbone_file_is_refused(cfg, tmp_path):
    """An ImageNet ResNet-18 in torchvision's names (what MODEL.PRETRAINED imagenet reads)."""
    state = {key[len('backbone.'):]: value for key, value in TSN(8, 'resnet18').state_dict().items()
             if key.startswith('backbone.')}
    state.update({'fc.weight': torch.zeros(1000, 512), 'fc.bias': torch.zeros(1000)})
    state['layer3.1.conv2.weight'][0, 0, 0, 0] = float('nan')
    torch.save(state, tmp_path / 'resnet18.pth')
    with pytest.raises(WeightsError, match=r'NaN or Inf values in 1 tensor: backbone\.layer3\.1\.conv2\.weight'):
        load_pretrained(TSN(8, 'resnet18'), str(tmp_path / 'resnet18.pth'))


@pytest.mark.parametrize('content, what', [
    ([torch.zeros(2)], 'holds list'), (torch.zeros(3), 'holds Tensor'), ('text', 'holds str'),
    ({1: torch.zeros(2)}, 'holds a dict with non-text keys')], ids=['list', 'tensor', 'str', 'int-keys'])
def test_a_file_that_is_not_a_dict_of_tensors_is_a_checkpoint_error(cfg, tmp_path, content, what):
    path = tmp_path / 'weights.pth'
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=f'{path} is not a weight file: it {what}'):
        load_checkpoint(str(path))
    with pytest.raises(CheckpointError, match='is not a weight file'):
        load_model(cfg, str(path), LOG)
    with pytest.raises(CheckpointError, match='is not a weight file'):
        read_weights(str(path))


@pytest.mark.parametrize('config_value', [['MODEL_NAME', 'tsn'], 'tsn', 3])
def test_a_config_that_is_not_a_dict_is_refused(cfg, tmp_path, config_value):
    path = tsn_checkpoint(tmp_path / 'best.pth', cfg)
    state = torch.load(path, weights_only=True)
    state['config'] = config_value
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=f"its config is a {type(config_value).__name__}, not a dict"):
        load_model(cfg, path, LOG)
    with pytest.raises(WeightsError, match=f"config is a {type(config_value).__name__}, not the dict"):
        read_weights(path)


def test_a_model_entry_that_is_not_tensors_is_refused(cfg, tmp_path):
    path = tsn_checkpoint(tmp_path / 'best.pth', cfg, weights={'backbone.conv1.weight': 'not a tensor'})
    with pytest.raises(CheckpointError, match="is not a model checkpoint: its model is not a dict of named tensors"):
        load_model(cfg, path, LOG)


MM_STATE = {'backbone.conv1.conv.weight': torch.zeros(64, 3, 7, 7),
            'cls_head.fc_cls.weight': torch.zeros(10, 2048), 'cls_head.fc_cls.bias': torch.zeros(10)}


@pytest.mark.parametrize('checkpoint, reason', [
    ({'state_dict': {'backbone.conv1.conv.weight': torch.zeros(64, 3, 7, 7), 'cls_head.x': torch.zeros(1)}},
     "it has no 'cls_head.fc_cls.weight'"),
    ({'state_dict': {'backbone.layer1.0.conv1.conv.weight': torch.zeros(1), 'cls_head.fc_cls.weight': torch.zeros(1),
                     'cls_head.fc_cls.bias': torch.zeros(1)}},
     "it has no 'backbone.conv1.conv.weight'"),
    ({'meta': {'cfg': 'model = dict(backbone=dict(type="ResNet3d", non_local=(1,)))\x00'}, 'state_dict': MM_STATE},
     'not a ResNet of a known depth'),
    ({'meta': 'not a dict', 'state_dict': dict(MM_STATE, **{'cls_head.fc_cls.weight': torch.zeros(10)})},
     'not a ResNet of a known depth'),
    ({'meta': {'cfg': 'model = dict(backbone=dict(type="ResNet3dSlowFast"))'}, 'state_dict': MM_STATE},
     "it has no 'lateral.0.0.weight'"),
], ids=['no-classifier', 'no-stem', 'nul-in-config', 'meta-not-a-dict', 'slowfast-without-pathways'])
def test_a_malformed_mmaction2_file_is_a_weights_error(tmp_path, checkpoint, reason):
    path = tmp_path / 'mm.pth'
    torch.save(checkpoint, path)
    with pytest.raises(WeightsError) as caught:
        read_weights(str(path))
    assert reason in str(caught.value) and str(path) in str(caught.value)


def test_resume_from_a_file_that_is_not_last_pth_says_so(tiny_root, tmp_path, cfg, capsys):
    """TRAIN.RESUME given a best.pth (no optimizer): exit 2 naming what it lacks."""
    import train
    from conftest import run_main, tiny_overrides
    path = tsn_checkpoint(tmp_path / 'best.pth', cfg)
    overrides = tiny_overrides(tiny_root, tmp_path, **{'TRAIN.EPOCHS': 1, 'TRAIN.RESUME': path})
    assert run_main(train, overrides) == 2
    assert (f'{path} is not a training checkpoint (last.pth): it lacks optimizer, best_top1, history'
            in capsys.readouterr().err)
