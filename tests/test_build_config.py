"""config.build_config: one config per run, resolved once (paths, the model's defaults, the
MODEL.PRETRAINED file's convention and options, a trained model's config) and frozen; explicit
keys always win; configs built in one process never affect each other."""
import logging

import pytest
import torch

import config
from config_frozen import FrozenConfigError
from config_trained import SHAPE_KEYS

LOG = logging.getLogger('test')
CAFFE = {'DATASET.CHANNEL_ORDER': 'BGR', 'DATASET.VALUE_RANGE': 255.0,
         'DATASET.MEAN': [104.0, 117.0, 128.0], 'DATASET.STD': [1.0, 1.0, 1.0]}


@pytest.fixture
def caffe_file(tmp_path):
    """A file in the Caffe BN-Inception layout (the converter knows it by its stem conv)."""
    path = tmp_path / 'bn_inception-52deb4733.pth'
    torch.save({'conv1_7x7_s2.weight': torch.zeros(64, 3, 7, 7), 'last_linear.weight': torch.zeros(10, 4)},
               path)
    return str(path)


def test_the_weights_convention_is_resolved_before_any_model_exists(caffe_file, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError('a model was built while the config was resolved')
    monkeypatch.setattr('models.build_model', no_model)
    cfg = config.build_config(['BACKBONE', 'bninception', 'MODEL.PRETRAINED', caffe_file])
    assert {key: config.value_at(cfg, key) for key in CAFFE} == CAFFE
    assert cfg.resolution.from_weights == CAFFE                   # what changed, and only that
    assert 'bninception-caffe weights' in cfg.resolution.weights


def test_explicit_keys_win_over_the_weights(caffe_file, caplog):
    cfg = config.build_config(['MODEL.PRETRAINED', caffe_file, 'DATASET.CHANNEL_ORDER', 'RGB',
                               'BACKBONE', 'bninception'])
    assert cfg.DATASET.CHANNEL_ORDER == 'RGB' and cfg.DATASET.VALUE_RANGE == 255.0
    assert cfg.resolution.kept_over_weights == {'DATASET.CHANNEL_ORDER': 'BGR'}
    assert 'DATASET.CHANNEL_ORDER' in cfg.explicit and 'DATASET.VALUE_RANGE' not in cfg.explicit
    with caplog.at_level(logging.INFO):
        config.log_resolution(cfg, LOG)
    assert 'kept as given (the weights say otherwise): DATASET.CHANNEL_ORDER BGR' in caplog.text


def test_two_configs_in_one_process_never_affect_each_other(caffe_file):
    first = config.build_config(['MODEL.PRETRAINED', caffe_file, 'BACKBONE', 'bninception',
                                 'TRAIN.EPOCHS', '3'])
    second = config.build_config([])
    assert second.DATASET.CHANNEL_ORDER == 'RGB' and second.TRAIN.EPOCHS == 12
    assert second.explicit == frozenset() and not second.resolution.from_weights
    third = config.build_config(['DATASET.CHANNEL_ORDER', 'BGR'])
    assert first.explicit == {'MODEL.PRETRAINED', 'BACKBONE', 'TRAIN.EPOCHS'}
    assert third.explicit == {'DATASET.CHANNEL_ORDER'}
    assert config.ActivityConfig.DATASET.CHANNEL_ORDER == 'RGB'        # the defaults untouched


def test_a_built_config_is_frozen_and_says_which_key():
    cfg = config.build_config(['TRAIN.LR_STEPS', '[2,4]'])
    with pytest.raises(FrozenConfigError, match="'TRAIN.EPOCHS' cannot be changed"):
        cfg.TRAIN.EPOCHS = 3
    with pytest.raises(FrozenConfigError, match="'DATASET.MEAN' cannot be changed"):
        cfg.DATASET['MEAN'] = [0.5] * 3
    with pytest.raises(FrozenConfigError, match="'MODEL_NAME' cannot be changed"):
        cfg.MODEL_NAME = 'i3d'
    with pytest.raises(FrozenConfigError, match="'TRAIN.LR_STEPS' cannot be changed"):
        cfg.TRAIN.LR_STEPS.append(6)
    with pytest.raises(FrozenConfigError, match="'VAL' cannot be changed"):
        cfg.VAL.update({'BATCH_SIZE': 2})
    with pytest.raises(FrozenConfigError):
        del cfg.TRAIN.EPOCHS
    assert cfg.TRAIN.LR_STEPS == [2, 4] and cfg.TRAIN.EPOCHS == 12


def test_updated_gives_a_new_config_and_leaves_the_old_one():
    cfg = config.build_config(['TRAIN.EPOCHS', '3'])
    changed = config.updated(cfg, {'VAL.NUM_CROPS': 3, 'TRAIN.RESUME': ''})
    assert (changed.VAL.NUM_CROPS, changed.TRAIN.RESUME, changed.TRAIN.EPOCHS) == (3, '', 3)
    assert (cfg.VAL.NUM_CROPS, cfg.TRAIN.RESUME) == (1, 'auto')
    assert {'VAL.NUM_CROPS', 'TRAIN.RESUME', 'TRAIN.EPOCHS'} <= changed.explicit
    with pytest.raises(config.ConfigError, match='VAL.NUM_CROPS must be 1, 3 or 10'):
        config.updated(cfg, {'VAL.NUM_CROPS': 5})


def test_a_frozen_config_pickles_copies_and_saves_as_plain_data(tmp_path):
    import copy
    import pickle
    cfg = config.build_config(['TRAIN.EPOCHS', '3'])
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and again.explicit == cfg.explicit
    with pytest.raises(FrozenConfigError):
        again.TRAIN.EPOCHS = 4
    mutable = copy.deepcopy(cfg)
    mutable.TRAIN.EPOCHS = 4                                     # a copy to change by hand
    assert cfg.TRAIN.EPOCHS == 3
    plain = config.to_plain(cfg)
    assert type(plain) is dict and type(plain['TRAIN']['LR_STEPS']) is list


def test_lr_steps_beyond_the_epochs_are_warned_about():
    cfg = config.build_config(['TRAIN.EPOCHS', '5', 'TRAIN.LR_STEPS', '[3,8]'])
    assert cfg.resolution.warnings == [
        'TRAIN.LR_STEPS [3, 8]: [8] at or beyond TRAIN.EPOCHS 5 never take effect, so the LR '
        'decays less than planned']
    assert config.build_config(['TRAIN.EPOCHS', '5', 'TRAIN.LR_STEPS', '[5]']).resolution.warnings == [
        'TRAIN.LR_STEPS [5]: [5] at or beyond TRAIN.EPOCHS 5 never take effect, so the LR never decays']
    assert not config.build_config(['TRAIN.EPOCHS', '12']).resolution.warnings
    assert not config.build_config(['TRAIN.EPOCHS', '5', 'TRAIN.LR_STEPS', '[4]']).resolution.warnings


def test_weights_settings_list_only_changed_keys_that_matter_to_the_model(tmp_path, caplog):
    """Our own TSN checkpoint as MODEL.PRETRAINED: no SlowFast or I3D options in the log,
    only the convention keys that differ, and it says it is our own checkpoint."""
    from models import build_model
    from utils.checkpoint import save_atomic
    trained = config.build_config(['DATASET.MEAN', '[0.5,0.5,0.5]', 'DATASET.STD', '[0.25,0.25,0.25]',
                                   'MODEL.SLOWFAST_ALPHA', '4', 'MODEL.NON_LOCAL', 'True'])
    path = str(tmp_path / 'best.pth')
    save_atomic({'model': build_model(trained).state_dict(), 'config': config.to_plain(trained)}, path)
    cfg = config.build_config(['MODEL.PRETRAINED', path])
    assert cfg.resolution.from_weights == {'DATASET.MEAN': [0.5] * 3, 'DATASET.STD': [0.25] * 3}
    assert (cfg.MODEL.SLOWFAST_ALPHA, cfg.MODEL.NON_LOCAL) == (8, False)     # not TSN's options
    with caplog.at_level(logging.INFO):
        config.log_resolution(cfg, LOG)
    assert f'MODEL.PRETRAINED {path}: our own checkpoint' in caplog.text
    assert 'settings from the weights: DATASET.MEAN [0.5, 0.5, 0.5], DATASET.STD [0.25, 0.25, 0.25]' in caplog.text
    assert 'SLOWFAST' not in caplog.text and 'NON_LOCAL' not in caplog.text


# ---------------------------------------------------------------- a trained model's config
def trained_checkpoint(tmp_path, pairs, class_names=None, drop=()):
    """best.pth of a random model built from `pairs`, with its config (less `drop`ped keys:
    a file from an older version) and class names."""
    from models import build_model
    from utils.checkpoint import save_atomic
    cfg = config.build_config(pairs)
    saved = config.to_plain(cfg)
    for key in drop:
        *parents, leaf = key.split('.')
        node = saved
        for part in parents:
            node = node[part]
        del node[leaf]
    path = str(tmp_path / 'best.pth')
    state = {'model': build_model(cfg).state_dict(), 'config': saved}
    if class_names is not None:
        state['class_names'] = class_names
    save_atomic(state, path)
    return path, cfg


TRAINED = ['MODEL_NAME', 'tsn', 'BACKBONE', 'resnet18', 'DATASET.CLASS_NUM', '3',
           'DATASET.SCALE_SIZE', '128', 'DATASET.CROP_SIZE', '112', 'DATA.NUM_SEGMENTS', '4',
           'VAL.NUM_SEGMENTS', '6', 'DATASET.MEAN', '[0.5,0.5,0.5]', 'EXP_TAG', 'mine']


def test_evaluation_takes_everything_from_the_checkpoint(tmp_path, caplog):
    path, trained = trained_checkpoint(tmp_path, TRAINED, ['jump', 'run', 'sit'])
    cfg = config.build_config([], exp_type='E', trained=path)
    for key in ('MODEL_NAME', 'BACKBONE', 'DATASET.CLASS_NUM', 'DATASET.SCALE_SIZE',
                'DATASET.CROP_SIZE', 'DATASET.MEAN', 'DATASET.SAMPLING', 'VAL.NUM_SEGMENTS',
                'VAL.NUM_CROPS', 'EXP_TAG', 'DATASET.VAL_META_PATH'):
        assert config.value_at(cfg, key) == config.value_at(trained, key), key
    assert cfg.EXP_TYPE == 'E' and cfg.VAL.CHECKPOINT == path
    assert config.class_names_of(cfg) == ['jump', 'run', 'sit']
    with caplog.at_level(logging.INFO):
        config.log_resolution(cfg, LOG)
    lines = [line for line in caplog.text.splitlines() if f'settings from {path}' in line]
    assert len(lines) == 1 and ('tsn/resnet18 RGB, 3 classes (jump, run, sit), input RGB 0-1 mean '
                                '[0.5, 0.5, 0.5] std [0.229, 0.224, 0.225], 128/112 px, segment '
                                'sampling, 6 segments x 1 crops') in lines[0]
    assert 'older DLAC' not in caplog.text


def test_overrides_still_win_but_not_over_the_model_s_shape(tmp_path):
    path, _ = trained_checkpoint(tmp_path, TRAINED, ['jump', 'run', 'sit'])
    cfg = config.build_config(['VAL.NUM_CROPS', '3', 'DATASET.SCALE_SIZE', '120'], exp_type='E', trained=path)
    assert (cfg.VAL.NUM_CROPS, cfg.DATASET.SCALE_SIZE, cfg.DATASET.CROP_SIZE) == (3, 120, 112)
    with pytest.raises(config.ConfigError, match=rf"DATASET.CLASS_NUM 5 here, but {path} was trained "
                                                 r"with DATASET.CLASS_NUM 3"):
        config.build_config(['DATASET.CLASS_NUM', '5'], exp_type='E', trained=path)
    with pytest.raises(config.ConfigError, match=r"BACKBONE 'resnet50' here, but .* BACKBONE 'resnet18'"):
        config.build_config(['BACKBONE', 'resnet50'], exp_type='E', trained=path)
    assert config.build_config(['DATASET.CLASS_NUM', '3'], exp_type='E', trained=path).DATASET.CLASS_NUM == 3
    assert {'MODEL_NAME', 'BACKBONE', 'DATASET.CLASS_NUM', 'MODALITY'} <= set(SHAPE_KEYS)


def test_the_machine_s_keys_are_this_run_s(tmp_path):
    path, _ = trained_checkpoint(tmp_path, TRAINED + ['NUM_THREADS', '7', 'DATASET.NUM_WORKERS', '5',
                                                      'TRAIN.RESUME', ''])
    cfg = config.build_config(['DATASET.NUM_WORKERS', '1'], exp_type='E', trained=path)
    assert (cfg.NUM_THREADS, cfg.DATASET.NUM_WORKERS, cfg.TRAIN.RESUME) == (0, 1, 'auto')
    # a starting point config.py names (here absent from this machine) is not looked for:
    # the trained model's weights replace it
    defaults = config.default_config()
    defaults.MODEL.PRETRAINED = 'resnet50-from-another-machine.pth'
    cfg = config.build_config([], exp_type='E', trained=path, base=defaults)
    assert cfg.MODEL.PRETRAINED == ''


def test_an_old_checkpoint_loads_with_a_warning_naming_what_was_assumed(tmp_path, caplog):
    path, _ = trained_checkpoint(tmp_path, TRAINED, class_names=None,
                                 drop=('DATASET.CHANNEL_ORDER', 'MODEL.NON_LOCAL'))
    cfg = config.build_config([], exp_type='E', trained=path)
    assert cfg.DATASET.CHANNEL_ORDER == 'RGB' and cfg.DATASET.CLASS_NUM == 3
    with caplog.at_level(logging.INFO):
        config.log_resolution(cfg, LOG)
    assert (f'{path} was written by an older DLAC: 2 settings are not in it and were assumed: '
            'DATASET.CHANNEL_ORDER RGB, MODEL.NON_LOCAL False; it carries no class names') in caplog.text
    assert config.class_names_of(cfg) == ['class_0', 'class_1', 'class_2']


def test_a_missing_checkpoint_leaves_the_config_to_this_run(tmp_path):
    cfg = config.build_config(['SNAPSHOT_ROOT', str(tmp_path)], exp_type='E', trained='default')
    assert cfg.resolution.trained is None and cfg.DATASET.CLASS_NUM == 8


def test_an_export_s_meta_json_is_read_like_a_checkpoint(tmp_path):
    import json
    trained = config.build_config(TRAINED)
    folder = tmp_path / 'export'
    folder.mkdir()
    (folder / 'meta.json').write_text(json.dumps({'config': config.to_plain(trained),
                                                  'class_names': ['a', 'b', 'c']}))
    cfg = config.build_config([], exp_type='E', trained=str(folder / 'model.onnx'))
    assert (cfg.DATASET.CROP_SIZE, cfg.DATASET.CLASS_NUM) == (112, 3)
    assert config.class_names_of(cfg) == ['a', 'b', 'c']
    assert cfg.resolution.trained.kind == 'export'
