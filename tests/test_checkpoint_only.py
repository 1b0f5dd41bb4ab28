"""Your own videos, the whole cycle (docs/data.md#your-own-videos): DataTool Custom -> train ->
then only `--checkpoint` for evaluate, predict, demo and export. The set has 3 classes with
real names and the run non-default sizes, so anything still read from the defaults (72/64 px,
8 classes, class_<i>) would show."""
import json
import os
import os.path as osp
import shutil

import pytest
import torch

import demo
import evaluate
import export_model
import predict
import train
from conftest import run_main
from DataTool.Custom import custom

pytestmark = pytest.mark.slow

CLASSES = ('blink', 'grow', 'move_left')
TRAINED = ['EXP_TAG', 'mine', 'DATASET.SCALE_SIZE', '80', 'DATASET.CROP_SIZE', '72',
           'DATA.NUM_SEGMENTS', '2', 'VAL.NUM_SEGMENTS', '3', 'TRAIN.EPOCHS', '1',
           'TRAIN.BASE_BATCH_SIZE', '3', 'VAL.BATCH_SIZE', '3', 'DATASET.NUM_WORKERS', '0',
           'NUM_THREADS', '2']


@pytest.fixture(scope='module')
def trained(tiny_root, tmp_path_factory):
    """A folder of class folders (3 of the tiny set's classes), the Custom tool's output, and
    a one-epoch run on it; returns (videos folder, snapshot root, best.pth, dataset yaml)."""
    base = tmp_path_factory.mktemp('own')
    videos = base / 'my_videos'
    for name in CLASSES:
        source = osp.join(str(tiny_root), 'synthetic', 'VideoSeq', name)
        (videos / name).mkdir(parents=True)
        for file in sorted(os.listdir(source)):
            if osp.isfile(osp.join(source, file)):           # the videos (mp4, avi, mkv, webm)
                shutil.copy(osp.join(source, file), videos / name / file)
    out = base / 'data' / 'my_videos'
    assert custom.main(['--root', str(videos), '--out', str(out), '--val-ratio', '0.4',
                        '--mode', 'video', '--workers', '1']) is None
    dataset_yaml = str(out / 'dataset_split1.yaml')
    snapshot = base / 'output'
    assert run_main(train, ['--cfg', dataset_yaml, 'SNAPSHOT_ROOT', str(snapshot)] + TRAINED) == 0
    best = osp.join(str(snapshot), 'ar_output', 'tsn', 'mine', 'checkpoints', 'best.pth')
    return videos, snapshot, best, dataset_yaml


def test_the_checkpoint_carries_its_config_and_class_names(trained):
    _, _, best, _ = trained
    for name in ('best.pth', 'last.pth'):
        state = torch.load(osp.join(osp.dirname(best), name), weights_only=True)
        assert state['class_names'] == list(CLASSES), name
        assert (state['config']['DATASET']['CROP_SIZE'], state['config']['DATASET']['CLASS_NUM']) == (72, 3)


def test_evaluate_with_only_the_checkpoint_equals_the_full_command(trained, tmp_path):
    _, snapshot, best, dataset_yaml = trained
    folder = osp.join(str(snapshot), 'ar_output', 'tsn', 'mine')
    assert run_main(evaluate, ['--cfg', dataset_yaml, 'SNAPSHOT_ROOT', str(snapshot)] + TRAINED) == 0
    with open(osp.join(folder, 'eval', 'report.json'), encoding='utf-8') as handle:
        full = json.load(handle)
    os.rename(osp.join(folder, 'eval'), str(tmp_path / 'full_eval'))
    assert run_main(evaluate, ['--checkpoint', best]) == 0
    with open(osp.join(folder, 'eval', 'report.json'), encoding='utf-8') as handle:
        alone = json.load(handle)
    assert alone['views'] == full['views'] == '3 segments x 1 crops'
    for key in ('top1', 'top5', 'mean_class_accuracy', 'num_videos', 'metafile'):
        assert alone[key] == full[key], key
    with open(osp.join(folder, 'eval', 'per_class.csv'), encoding='utf-8') as handle:
        assert [line.split(',')[1] for line in handle.read().splitlines()[1:]] == list(CLASSES)
    with open(osp.join(folder, 'log', 'eval.log'), encoding='utf-8') as handle:
        log = handle.read()
    assert f'settings from {best}: tsn/resnet18 RGB, 3 classes (blink, grow, move_left)' in log
    assert '80/72 px' in log


def test_demo_and_predict_show_the_real_class_names(trained, tmp_path):
    videos, _, best, _ = trained
    video = str(videos / 'grow' / sorted(os.listdir(videos / 'grow'))[0])
    assert run_main(demo, ['--checkpoint', best, '--video', video, '--out', str(tmp_path / 'demo')]) == 0
    with open(tmp_path / 'demo' / 'predictions.json', encoding='utf-8') as handle:
        windows = json.load(handle)['windows']
    assert {top['class'] for window in windows for top in window['top']} == set(CLASSES)
    assert run_main(predict, ['--checkpoint', best, '--input', str(videos), '--out', str(tmp_path / 'p'),
                              '--topk', '3']) == 0
    with open(tmp_path / 'p' / 'predictions.jsonl', encoding='utf-8') as handle:
        rows = [json.loads(line) for line in handle]
    assert len(rows) == 15 and all({name for name, _ in row['top']} == set(CLASSES) for row in rows)
    assert all(row['views'] == '3 segments x 1 crops' for row in rows)


def test_export_with_only_the_checkpoint_then_predict_from_the_export(trained, tmp_path):
    videos, snapshot, best, _ = trained
    assert run_main(export_model, ['--checkpoint', best]) == 0
    export = osp.join(str(snapshot), 'ar_output', 'tsn', 'mine', 'export')
    with open(osp.join(export, 'meta.json'), encoding='utf-8') as handle:
        meta = json.load(handle)
    assert meta['class_names'] == list(CLASSES) and meta['input']['shape'] == ['batch', 3, 3, 72, 72]
    assert meta['config']['DATASET']['SCALE_SIZE'] == 80
    assert run_main(predict, ['--onnx', osp.join(export, 'model.onnx'), '--input', str(videos / 'blink'),
                              '--out', str(tmp_path / 'p')]) == 0
    with open(tmp_path / 'p' / 'predictions.jsonl', encoding='utf-8') as handle:
        rows = [json.loads(line) for line in handle]
    assert len(rows) == 5 and all({name for name, _ in row['top']} == set(CLASSES) for row in rows)


def test_an_override_that_changes_the_model_s_shape_is_refused(trained, capsys):
    _, _, best, _ = trained
    with pytest.raises(SystemExit) as stopped:
        run_main(evaluate, ['--checkpoint', best, 'DATASET.CLASS_NUM', '8'])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f'DATASET.CLASS_NUM 8 here, but {best} was trained with DATASET.CLASS_NUM 3' in err
