"""A DLAC user's assets work unchanged: their config.py, comma-separated metafiles, frame
folders from img_00000.jpg, and DLAC's training policy (LR policies with warmup, TSN's
parameter groups, GPUS as a count)."""
import json
import math
import os.path as osp
import shutil

import pytest
import torch

import config
import config_dlac
import evaluate
import train
from conftest import ROOT, TINY_FRAMES, TINY_PER_CLASS, run_main, training_run
from datasets.records import MetafileError, parse_metafile
from DataTool.Synthetic.synthetic import generate
from models.tsn import TSN
from references import randomize
from utils.device import select_device
from engine.lr_schedule import learning_rate
from engine.optimizer import build_optimizer, parameter_groups
from engine.train_step import train_one_epoch


def train_settings(**values):
    settings = dict(config.default_config().TRAIN)
    settings.update(values)
    return type('Train', (), settings)


# ---------------------------------------------------------------- LR policies
def dlac_sgdr(step, steps_per_epoch, period_epoch, base_lr, warmup_epoch):
    """DLAC's sgdr_learning_rate (base/train.py), as a formula."""
    warmup_steps = int(steps_per_epoch * warmup_epoch)
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    within = (step - warmup_steps) % (period_epoch * steps_per_epoch)
    return 0.5 * (1.0 + math.cos(math.pi * within / (period_epoch * steps_per_epoch))) * base_lr


def test_sgdr_with_warmup_and_restarts_is_dlac_s(cfg):
    policy = train_settings(LR_POLICY='sgdr', WARMUP_EPOCHS=2.0, SGDR_PERIOD_EPOCHS=3.0,
                            WARMUP_START_LR=0.0, EPOCHS=20)
    for step in (0, 7, 20, 21, 35, 50, 51, 80, 199):
        assert learning_rate(policy, 0.1, step, 10) == pytest.approx(dlac_sgdr(step, 10, 3, 0.1, 2), abs=1e-12)
    assert learning_rate(policy, 0.1, 20, 10) == pytest.approx(0.1)      # warm, then the top
    assert learning_rate(policy, 0.1, 50, 10) == pytest.approx(0.1)      # a restart


def test_cosine_and_step_with_warmup(cfg):
    cosine = train_settings(LR_POLICY='cosine', EPOCHS=10, WARMUP_EPOCHS=2.0, WARMUP_START_LR=0.01)
    assert learning_rate(cosine, 1.0, 50, 10) == pytest.approx(0.5)      # half way: half the LR
    assert learning_rate(cosine, 1.0, 100, 10) == pytest.approx(0.0, abs=1e-12)
    at_warmup_end = 0.5 * (1 + math.cos(math.pi * 0.2))
    assert learning_rate(cosine, 1.0, 10, 10) == pytest.approx(0.01 + (at_warmup_end - 0.01) * 0.5)
    step = train_settings(LR_POLICY='step', LR_STEPS=[3, 6], LR_DECAY=0.1, WARMUP_EPOCHS=1.0,
                          WARMUP_START_LR=0.0)
    assert [learning_rate(step, 0.1, s, 10) for s in (0, 5, 10, 29, 30, 60)] == pytest.approx(
        [0.0, 0.05, 0.1, 0.1, 0.01, 0.001])


def test_a_resumed_epoch_sets_the_same_lrs(cfg):
    from test_acceleration import FourBatches, RecordingWriter

    class Remaining(FourBatches):
        def __len__(self):
            return 2

        def __iter__(self):
            return iter(list(super().__iter__())[2:])

    cfg.TRAIN.LR_POLICY, cfg.TRAIN.WARMUP_EPOCHS, cfg.TRAIN.SGDR_PERIOD_EPOCHS = 'sgdr', 0.5, 0.75
    runs = []
    for loader, start in ((FourBatches(), 0), (Remaining(), 2)):
        writer, model = RecordingWriter(), torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(4))
        model(torch.zeros(1, 3, 1, 4, 4))
        lrs = []
        writer.add_scalar = lambda tag, value, step, lrs=lrs: lrs.append((step, value)) if tag == 'train/lr' else None
        run = training_run(cfg, model, loader, torch.optim.SGD(model.parameters(), lr=9.0), 0.1,
                           writer=writer)
        train_one_epoch(run, 3, start, None, None)
        runs.append(dict(lrs))
    assert sorted(runs[1]) == [14, 15]
    assert runs[1] == {step: runs[0][step] for step in (14, 15)}
    assert runs[0][12] == pytest.approx(dlac_sgdr(12, 4, 0.75, 0.1, 0.5))


# ---------------------------------------------------------------- parameter groups, GPUS
def test_tsn_parameter_groups(cfg):
    model = TSN(8, 'resnet18', partial_bn=True)
    groups = {(g['lr_mult'], g['decay_mult']): g for g in parameter_groups(model, 'tsn')}
    assert list(groups) == [(1.0, 1.0), (1.0, 0.0), (2.0, 0.0)]
    assert len(groups[1.0, 1.0]['params']) == 21                 # 20 convolutions + the classifier
    assert groups[2.0, 0.0]['params'] == [model.head.fc.bias]
    assert groups[1.0, 0.0]['param_names'] == ['backbone.bn1.weight', 'backbone.bn1.bias']  # partial BN
    cfg.TRAIN.PARAM_GROUPS, cfg.TRAIN.WEIGHT_DECAY = 'tsn', 5e-4
    optimizer = build_optimizer(model, cfg, 0.01)
    assert [(g['lr'], g['weight_decay']) for g in optimizer.param_groups] == [(0.01, 5e-4), (0.01, 0.0), (0.02, 0.0)]
    no_decay = sum(p.numel() for g in optimizer.param_groups if g['weight_decay'] == 0 for p in g['params'])
    assert no_decay == 8 + 64 * 2                               # fc bias, first BN's weight and bias
    cfg.TRAIN.PARAM_GROUPS = 'none'
    assert len(build_optimizer(model, cfg, 0.01).param_groups) == 1


def test_gpus_as_a_count_runs_on_what_there_is(cfg, capsys, monkeypatch):
    built = config.build_config(['GPUS', '8'])
    assert built.GPUS == [] and select_device(built) == torch.device('cpu')
    assert built.resolution.warnings == ['GPUS 8 asks for 8 GPUs, this machine shows 0: running on the CPU']
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda device: None)
    built = config.build_config(['GPUS', '8'])
    assert built.GPUS == [0, 1] and select_device(built) == torch.device('cuda', 0)
    assert 'running on GPUs [0, 1]' in built.resolution.warnings[0]
    cfg.GPUS = 8                                # a hand-made config: the count is read as ids
    assert select_device(cfg) == torch.device('cuda', 0) and cfg.GPUS == 8
    assert 'GPUS 8 asks for 8 GPUs, this machine shows 2: running on GPUs [0, 1]' in capsys.readouterr().err
    config.merge_list(['GPUS', '4'], cfg)
    assert cfg.GPUS == 4


# ---------------------------------------------------------------- metafiles and frames
def test_comma_metafiles_with_commas_and_spaces_in_paths(tmp_path):
    path = tmp_path / 'train_split1.csv'
    path.write_text('class a/v, one,12,3\nclass b/plain,7,0\n\n# a comment\nx y/z,w,5,1\n', encoding='utf-8')
    records = parse_metafile(str(path))
    assert [(r.path, r.num_frames, r.label) for r in records] == [
        ('class a/v, one', 12, 3), ('class b/plain', 7, 0), ('x y/z,w', 5, 1)]
    assert records[2].where == f'{path}:5'
    spaced = tmp_path / 'train.txt'
    spaced.write_text('a, b 4 1\n', encoding='utf-8')
    assert parse_metafile(str(spaced))[0].path == 'a, b'
    path.write_text('ok,3,1\nbroken,x,1\n', encoding='utf-8')
    with pytest.raises(MetafileError, match=rf'{path}:2: num_frames and label must be integers'):
        parse_metafile(str(path))


# ---------------------------------------------------------------- a DLAC config.py, end to end
@pytest.fixture(scope='module')
def dlac_setup(tmp_path_factory):
    """DLAC's layout: frames from img_00000.jpg, CSV metafiles, a pretrained file in the zoo."""
    root = tmp_path_factory.mktemp('dlac')
    dataset = root / 'data' / 'DLACSynthetic'
    generate(str(dataset), seed=0, videos_per_class=TINY_PER_CLASS, frame_range=TINY_FRAMES,
             show_progress=False, frame_start=0)
    for split in ('train', 'val'):
        records = parse_metafile(str(dataset / 'MetafileSeq' / f'{split}_split1.txt'))
        (dataset / 'MetafileSeq' / f'{split}_split1.csv').write_text(
            ''.join(f'{r.path},{r.num_frames},{r.label}\n' for r in records), encoding='utf-8')
    first = dataset / 'VideoSeq' / records[0].path
    assert (first / 'img_00000.jpg').is_file() and not (first / f'img_{records[0].num_frames:05d}.jpg').exists()
    zoo = root / 'ar_output' / 'pretrain_model_zoo'
    zoo.mkdir(parents=True)
    torch.save(randomize(TSN(1000, 'resnet18')).backbone.state_dict() | {
        'fc.weight': torch.zeros(1000, 512), 'fc.bias': torch.zeros(1000)}, zoo / 'resnet18-dlac-test.pth')
    return root


def dlac_config(root, exp_type='T'):
    with open(osp.join(ROOT, 'tests', 'data', 'dlac_config.py.template'), encoding='utf-8') as handle:
        text = handle.read()
    text = (text.replace('@SNAPSHOT_ROOT@', str(root)).replace('@ROOT_PATH@', str(root / 'data'))
            .replace('@EXP_TYPE@', exp_type))
    path = root / f'config_{exp_type}.py'
    path.write_text(text, encoding='utf-8')
    return str(path)


def test_dlac_config_translates_key_by_key(dlac_setup):
    import runpy
    namespace = runpy.run_path(dlac_config(dlac_setup))
    overrides, notes, ignored = config_dlac.translate(namespace['__C'])
    data = str(dlac_setup / 'data')
    assert overrides == {
        'GPUS': 8, 'DATASET.LOADER': 'SuperLoader', 'USE_DISTRIBUTED': False, 'MODEL.SYNC_BN': False,
        'TRAIN.AMP': False, 'EXP_TYPE': 'T', 'MODEL_NAME': 'tsn', 'EXP_TAG': 'dlac_resnet18_RGB',
        'BACKBONE': 'resnet18', 'SNAPSHOT_ROOT': str(dlac_setup),
        'DATASET.ROOT_PATH': data, 'DATASET.NAME': 'DLACSynthetic', 'DATASET.CLASS_NUM': 8,
        'DATASET.IMG_FORMAT': 'img_{:05d}.jpg',
        'DATASET.VIDEO_SEQ_PATH': osp.join(data, 'DLACSynthetic', 'VideoSeq'),
        'DATASET.TRAIN_META_PATH': osp.join(data, 'DLACSynthetic', 'MetafileSeq', 'train_split1.csv'),
        'DATASET.VAL_META_PATH': osp.join(data, 'DLACSynthetic', 'MetafileSeq', 'val_split1.csv'),
        'DATASET.SAMPLING': 'segment', 'TRAIN.EPOCHS': 2, 'TRAIN.BASE_BATCH_SIZE': 8,
        'TRAIN.BASE_LR': 0.01, 'TRAIN.LR_POLICY': 'sgdr', 'TRAIN.LR_STEPS': [20, 40],
        'TRAIN.MOMENTUM': 0.9, 'TRAIN.WEIGHT_DECAY': 5e-4, 'TRAIN.CLIP_GRAD': 20,
        'TRAIN.PRINT_FREQ': 4, 'TRAIN.EVAL_FREQ': 1, 'MODEL.DROPOUT': 0.8, 'DATA.NUM_SEGMENTS': 3,
        'MODALITY': 'RGB', 'MODEL.PARTIAL_BN': True, 'MODEL.TSM_SHIFT_DIV': 8,
        'VAL.BATCH_SIZE': 4, 'VAL.NUM_SEGMENTS': 5, 'VAL.NUM_CROPS': 1, 'DATASET.CROP_SIZE': 64,
        'DATASET.SCALE_SIZE': 73, 'TRAIN.WARMUP_EPOCHS': 1.0, 'TRAIN.SGDR_PERIOD_EPOCHS': 1.0,
        'TRAIN.WARMUP_START_LR': 0.0, 'MODEL.PRETRAINED': 'resnet18-dlac-test.pth',
        'DATASET.FRAME_START': 0, 'TRAIN.LR_SCALING': 'none', 'TRAIN.PARAM_GROUPS': 'tsn'}
    assert set(ignored) >= {'TIMESTAMP', 'WORKSPACE_PATH', 'KEEP_HISTORY', 'DEBUG_MODE', 'REDIS_MODE',
                            'HUMANACTION_PKL_ROOT_PATH', 'DATASET.LOAD_METHOD', 'USE_SUMMARY'}
    assert any(note.startswith("TRAIN.SEG_NUM 3 -> DATA.NUM_SEGMENTS 3") for note in notes)


@pytest.mark.slow
def test_a_dlac_config_py_trains_and_evaluates(dlac_setup, capsys):
    path = dlac_config(dlac_setup)
    assert run_main(train, ['--cfg', path, 'NUM_THREADS', '2', 'DATASET.NUM_WORKERS', '0']) == 0
    folder = osp.join(str(dlac_setup), 'ar_output', 'tsn', 'dlac_resnet18_RGB')
    with open(osp.join(folder, 'training_policy.json'), encoding='utf-8') as handle:
        policy = json.load(handle)
    assert (policy['lr_policy'], policy['param_groups'], policy['lr']) == ('sgdr', 'tsn', 0.01)
    assert [row['epoch'] for row in policy['per_epoch']] == [1, 2]
    assert policy['per_epoch'][0]['lr'] == 0.0                          # warming up from 0
    assert policy['per_epoch'][0]['replaced_samples'] == 0              # every img_00000.jpg read
    with open(osp.join(folder, 'log', 'train.log'), encoding='utf-8') as handle:
        log = handle.read()
    assert 'DLAC config: read ' in log and 'TRAIN.LR_STEP_TYPE' in log
    assert 'DLAC config keys with no meaning here, ignored: TIMESTAMP, WORKSPACE_PATH' in log
    assert 'resnet18-dlac-test.pth' in log                               # PRETRAIN_MODEL_DICT
    assert 'GPUS 8 asks for 8 GPUs, this machine shows 0: running on the CPU' in log

    assert run_main(evaluate, ['--cfg', path, 'DATASET.NUM_WORKERS', '0']) == 0
    with open(osp.join(folder, 'eval', 'report.json'), encoding='utf-8') as handle:
        report = json.load(handle)
    assert report['num_videos'] == 16 and report['num_unreadable'] == 0
    shutil.rmtree(osp.join(folder, 'eval'))
    # EXP_TYPE 'E' given to train.py evaluates
    assert run_main(train, ['--cfg', dlac_config(dlac_setup, 'E'), 'DATASET.NUM_WORKERS', '0']) == 0
    assert osp.isfile(osp.join(folder, 'eval', 'report.json'))
    assert "EXP_TYPE 'E' (evaluate) in the config: evaluating instead of training" in capsys.readouterr().err
