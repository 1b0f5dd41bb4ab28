"""predict.py: a folder of videos (with a corrupt file and a file that is not a video) gives one
line per readable video with evaluate.py's top-1 on the same views, lists the bad files,
resumes without work, and the exported ONNX model gives the same scores. evaluate.py on the
exported models gives the checkpoint's metrics."""
import csv
import json
import os.path as osp
import shutil

import numpy as np
import pytest

import config
import evaluate
import export_model
import predict
from conftest import run_main, save_random_checkpoint, tiny_overrides

pytestmark = pytest.mark.slow


@pytest.fixture
def videos(tiny_root, tmp_path):
    """The 16 validation videos of the tiny set, a truncated mp4 and a text file, in one
    folder tree; and the overrides of a TSN experiment (random weights) over them."""
    folder = tmp_path / 'incoming'
    meta = osp.join(str(tiny_root), 'synthetic', 'MetafileSeq', 'val_split1_video.txt')
    with open(meta, encoding='utf-8') as handle:
        relative = [line.rsplit(maxsplit=2)[0] for line in handle if line.strip()]
    for path in relative:
        (folder / osp.dirname(path)).mkdir(parents=True, exist_ok=True)
        shutil.copy(osp.join(str(tiny_root), 'synthetic', 'VideoSeq', path), folder / path)
    (folder / 'broken.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42 but nothing else')
    (folder / 'notes.txt').write_text('not a video\n', encoding='utf-8')
    overrides = tiny_overrides(tiny_root, tmp_path, **{'DATASET.INPUT_TYPE': 'video', 'VAL.NUM_CROPS': 3})
    save_random_checkpoint(overrides)
    return folder, relative, overrides


def read_predictions(out):
    with open(osp.join(str(out), 'predictions.jsonl'), encoding='utf-8') as handle:
        return [json.loads(line) for line in handle]


def test_predict_a_folder_like_evaluate_and_resume(videos, tmp_path):
    folder, relative, overrides = videos
    out = tmp_path / 'predictions'
    assert run_main(predict, overrides, ['--input', str(folder), '--out', str(out), '--topk', '3']) == 0
    rows = read_predictions(out)
    assert sorted(row['path'] for row in rows) == sorted(str(folder / path) for path in relative)
    assert all(len(row['top']) == 3 and row['views'] == '5 segments x 3 crops' for row in rows)
    with open(out / 'unreadable.csv', encoding='utf-8', newline='') as handle:
        bad = {osp.basename(row['path']): row['reason'] for row in csv.DictReader(handle)}
    assert set(bad) == {'broken.mp4', 'notes.txt'} and 'not a video FFmpeg can read' in bad['notes.txt']
    with open(out / 'predictions.csv', encoding='utf-8', newline='') as handle:
        assert len(list(csv.DictReader(handle))) == 16

    assert run_main(evaluate, overrides) == 0                     # the same videos and views
    scores = np.load(osp.join(config.exp_dir(config.build_config(overrides)), 'eval', 'scores.npz'))
    names = list(scores['class_names'])
    evaluated = {osp.basename(str(path)): names[int(np.argmax(row))]
                 for path, row in zip(scores['paths'], scores['scores'])}
    predicted = {osp.basename(row['path']): row['top'][0][0] for row in rows}
    assert predicted == evaluated

    assert run_main(predict, overrides, ['--input', str(folder), '--out', str(out), '--topk', '3']) == 0
    assert len(read_predictions(out)) == 16                       # nothing done twice
    with open(out / 'log' / 'predict.log', encoding='utf-8') as handle:
        assert '18 done by an earlier run, 0 to predict' in handle.read().splitlines()[-1]


def test_onnx_predictions_equal_the_checkpoint_s(videos, tmp_path):
    folder, _, overrides = videos
    cfg = config.build_config(overrides)
    export_model.export(cfg)
    onnx = osp.join(config.exp_dir(cfg), 'export', 'model.onnx')
    runs = {}
    for name, extra in (('torch', []), ('onnx', ['--onnx', onnx])):
        out = tmp_path / name
        assert run_main(predict, overrides, ['--input', str(folder), '--out', str(out), '--topk', '8'] + extra) == 0
        runs[name] = {row['path']: dict(row['top']) for row in read_predictions(out)}
    assert runs['torch'].keys() == runs['onnx'].keys() and len(runs['torch']) == 16
    for path, scores in runs['torch'].items():
        for name, score in scores.items():
            assert abs(runs['onnx'][path][name] - score) <= 1e-4, (path, name)


def test_evaluate_the_exported_models_beside_the_checkpoint(videos, tmp_path):
    _, _, overrides = videos
    cfg = config.build_config(overrides)
    export_model.export(cfg, torchscript=True)
    folder = config.exp_dir(cfg)
    checkpoint = osp.join(folder, 'checkpoints', 'best.pth')
    assert run_main(evaluate, overrides, ['--checkpoint', checkpoint,
                                          '--onnx', osp.join(folder, 'export', 'model.onnx'),
                                          '--pt2', osp.join(folder, 'export', 'model.pt2'),
                                          '--torchscript', osp.join(folder, 'export', 'model.ts')]) == 0
    with open(osp.join(folder, 'eval', 'report.json'), encoding='utf-8') as handle:
        report = json.load(handle)
    for kind in ('onnx', 'pt2', 'torchscript'):
        with open(osp.join(folder, 'eval', kind, 'report.json'), encoding='utf-8') as handle:
            exported = json.load(handle)
        assert exported['num_videos'] == report['num_videos'] == 16
        assert exported['top1'] == report['top1'] and report['exported'][kind]['top1_difference'] == 0
        np.testing.assert_allclose(np.load(osp.join(folder, 'eval', kind, 'scores.npz'))['scores'],
                                   np.load(osp.join(folder, 'eval', 'scores.npz'))['scores'], atol=1e-4)
    assert run_main(evaluate, overrides + ['VAL.NUM_SEGMENTS', '3'],
                    ['--onnx', osp.join(folder, 'export', 'model.onnx')]) == 2   # another input shape
