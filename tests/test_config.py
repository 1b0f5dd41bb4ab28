import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

import config
from config import ConfigError, merge_dict, merge_list

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_defaults_run_out_of_the_box(cfg):
    assert cfg.DATASET.NAME == 'synthetic'
    assert cfg.MODEL_NAME == 'tsn' and cfg.BACKBONE == 'resnet18'
    assert cfg == config.ActivityConfig and cfg is not config.ActivityConfig     # a copy
    cfg = config.build_config([])
    assert cfg.DATASET.VIDEO_SEQ_PATH.endswith(osp.join('synthetic', 'VideoSeq'))
    assert cfg.DATASET.TRAIN_META_PATH.endswith(osp.join('MetafileSeq', 'train_split1.txt'))


def test_list_overrides_are_typed(cfg):
    merge_list(['TRAIN.EPOCHS', '3', 'TRAIN.BASE_LR', '1', 'TRAIN.LR_STEPS', '[2, 4]',
                'MODEL_NAME', 'tsn', 'DATASET.FLIP', 'False', 'EXP_TAG', '123'], cfg)
    assert cfg.TRAIN.EPOCHS == 3
    assert cfg.TRAIN.BASE_LR == 1.0 and isinstance(cfg.TRAIN.BASE_LR, float)
    assert cfg.TRAIN.LR_STEPS == [2, 4]
    assert cfg.DATASET.FLIP is False
    assert cfg.EXP_TAG == '123'


def test_unknown_key_names_closest(cfg):
    with pytest.raises(ConfigError, match=r"unknown config key 'TRAIN.EPOCH'.*'TRAIN.EPOCHS'"):
        merge_list(['TRAIN.EPOCH', '3'], cfg)
    with pytest.raises(ConfigError, match=r"'DATASET.CLAS_NUM'.*'DATASET.CLASS_NUM'"):
        merge_dict({'DATASET': {'CLAS_NUM': 5}}, cfg)


def test_wrong_type_is_refused(cfg):
    with pytest.raises(ConfigError, match=r"'TRAIN.EPOCHS' expects int.*'abc'"):
        merge_list(['TRAIN.EPOCHS', 'abc'], cfg)
    with pytest.raises(ConfigError, match=r"'TRAIN.LR_STEPS' expects list"):
        merge_list(['TRAIN.LR_STEPS', '5'], cfg)
    with pytest.raises(ConfigError, match='section'):
        merge_list(['TRAIN', '5'], cfg)
    with pytest.raises(ConfigError, match='has no value'):
        merge_list(['TRAIN.EPOCHS'], cfg)


def test_settings_checked_together():
    with pytest.raises(ConfigError, match=r'DATASET.CROP_SIZE \(128\) must not exceed'):
        config.build_config(['DATASET.CROP_SIZE', '128', 'DATASET.SCALE_SIZE', '112'])
    with pytest.raises(ConfigError, match='VAL.NUM_CROPS must be 1, 3 or 10'):
        config.build_config(['VAL.NUM_CROPS', '5'])


def test_yaml_and_python_files(cfg, tmp_path):
    yaml_file = tmp_path / 'exp.yaml'
    yaml_file.write_text('TRAIN:\n  EPOCHS: 7\nBACKBONE: resnet50\n')
    merge_dict(config.load_file(str(yaml_file)), cfg)
    assert cfg.TRAIN.EPOCHS == 7 and cfg.BACKBONE == 'resnet50'
    py_file = tmp_path / 'exp.py'
    py_file.write_text("cfg = {'DATASET': {'CLASS_NUM': 51}, 'TRAIN': {'BASE_LR': 0.001}}\n")
    merge_dict(config.load_file(str(py_file)), cfg)
    assert cfg.DATASET.CLASS_NUM == 51 and cfg.TRAIN.BASE_LR == 0.001
    bad = tmp_path / 'bad.yaml'
    bad.write_text('TRAIN:\n  EPOCHZ: 7\n')
    with pytest.raises(ConfigError, match="'TRAIN.EPOCHZ'.*'TRAIN.EPOCHS'"):
        merge_dict(config.load_file(str(bad)), cfg)


def test_exponent_notation_is_a_float(cfg, tmp_path):
    merge_list(['TRAIN.BASE_LR', '1e-3'], cfg)            # YAML 1.1 reads this as a string
    assert cfg.TRAIN.BASE_LR == 0.001
    merge_dict({'TRAIN': {'WEIGHT_DECAY': '5e-4'}}, cfg)
    assert cfg.TRAIN.WEIGHT_DECAY == 0.0005
    with pytest.raises(ConfigError, match="'TRAIN.BASE_LR' expects float"):
        merge_list(['TRAIN.BASE_LR', 'fast'], cfg)


def test_repeated_cfg_files_merge_in_order(tmp_path):
    preset = tmp_path / 'preset.yaml'
    preset.write_text('DATASET:\n  CLASS_NUM: 51\n  FLIP: true\nTRAIN:\n  EPOCHS: 60\n')
    dataset = tmp_path / 'dataset_split1.yaml'
    dataset.write_text('DATASET:\n  CLASS_NUM: 3\n')
    cfg = config.build_config(['--cfg', str(preset), '--cfg', str(dataset), 'TRAIN.EPOCHS', '2'])
    assert (cfg.DATASET.CLASS_NUM, cfg.DATASET.FLIP, cfg.TRAIN.EPOCHS) == (3, True, 2)


@pytest.mark.parametrize('preset', sorted(
    name for name in os.listdir(osp.join(ROOT, 'experiments')) if name.endswith('.yaml')))
def test_presets_are_valid_configs_for_their_models(preset):
    from models import build_model
    path = osp.join(ROOT, 'experiments', preset)
    cfg = config.build_config(['--cfg', path, 'DATASET.CLASS_NUM', '5', 'MODEL.PRETRAINED', ''])
    if not preset.startswith('custom_'):      # custom presets take paths from the DataTool's yaml
        assert cfg.DATASET.VIDEO_SEQ_PATH == f'data/{cfg.DATASET.NAME}/frames'

    # VideoMAE's pre-training crops and never flips
    assert cfg.DATASET.FLIP == (cfg.DATASET.NAME != 'sthv2' and cfg.TRAIN.TASK != 'pretrain')
    model = build_model(cfg)            # a BACKBONE that does not fit MODEL_NAME raises here
    if cfg.TRAIN.TASK == 'pretrain':    # a pixel head, no classifier
        assert model.decoder.head.out_features == 2 * 16 * 16 * 3
        return
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert classifier.out_features == 5


def test_saved_config_round_trips(tmp_path):
    cfg = config.build_config(['TRAIN.EPOCHS', '9', 'DATASET.MEAN', '[0.5,0.5,0.5]'])
    path = tmp_path / 'out' / 'config.yaml'
    config.save_config(cfg, str(path))
    again = config.build_config(['--cfg', str(path)])
    assert again == cfg and again.TRAIN.EPOCHS == 9 and again.DATASET.MEAN == [0.5] * 3


@pytest.mark.parametrize('script', ['train.py', 'evaluate.py'])
@pytest.mark.parametrize('args, message', [
    (['TRAIN.EPOCH', '3'], "closest known key: 'TRAIN.EPOCHS'"),
    (['TRAIN.EPOCHS', 'many'], "'TRAIN.EPOCHS' expects int"),
    (['--cfg', '/nonexistent/exp.yaml'], 'config file not found: /nonexistent/exp.yaml'),
])
def test_entry_points_exit_2_on_config_errors(script, args, message):
    result = subprocess.run([sys.executable, script] + args, cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_flags_before_between_or_after_the_overrides():
    """`python demo.py MODEL_NAME tsn --video x.mp4` used to stop with '--video is required'."""
    parser = config.build_parser('test')
    parser.add_argument('--video', required=True)
    for argv in (['MODEL_NAME', 'i3d', '--video', 'x.mp4', 'TRAIN.EPOCHS', '3'],
                 ['--video', 'x.mp4', 'MODEL_NAME', 'i3d', 'TRAIN.EPOCHS', '3'],
                 ['MODEL_NAME', 'i3d', 'TRAIN.EPOCHS', '3', '--video', 'x.mp4']):
        parsed, args = config.parse_config(argv, parser=parser)
        assert (args.video, parsed.MODEL_NAME, parsed.TRAIN.EPOCHS) == ('x.mp4', 'i3d', 3)
