"""The seed's "Experiment Show": every run in one table, from what each run saved."""
import csv
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest
import torch

import evaluate
import train
from browser import is_blank, render_and_check
from conftest import ROOT, require, run_main, tiny_overrides
from utils import experiment_table as table
from utils.run_facts import is_training, training_marker

HEADER = ('| TOP1 | Training Time | Parallel Method | Loader Method | Backbone | Segments | Model | '
          'Modality | Dataset | BatchSize | LR | Steps | Epochs | GPUs |')


def policy_of(folder):
    with open(osp.join(folder, 'training_policy.json'), encoding='utf-8') as handle:
        return json.load(handle)


@pytest.fixture(scope='module')
def two_runs(tiny_root, tmp_path_factory):
    """Two tiny runs on the synthetic set: TSN with SuperLoader, evaluated; TSN dense-sampled
    with DataLoaderX (2 epochs, other LR), not evaluated. Returns (snapshot, folders)."""
    snapshot = tmp_path_factory.mktemp('runs')
    first = tiny_overrides(tiny_root, snapshot, **{'TRAIN.EPOCHS': 1, 'EXP_TAG': 'segments'})
    second = tiny_overrides(tiny_root, snapshot, **{
        'TRAIN.EPOCHS': 2, 'EXP_TAG': 'dense', 'DATASET.LOADER': 'DataLoaderX',
        'DATASET.SAMPLING': 'dense', 'DATA.CLIP_LEN': 4, 'DATA.FRAME_INTERVAL': 2,
        'TRAIN.BASE_LR': 0.005, 'TRAIN.LR_STEPS': [1], 'VAL.NUM_CLIPS': 1})
    assert run_main(train, first) == 0 and run_main(train, second) == 0
    assert run_main(evaluate, first) == 0
    base = osp.join(snapshot, 'ar_output', 'tsn')
    return snapshot, {'segments': osp.join(base, 'segments'), 'dense': osp.join(base, 'dense')}


def rows_of(text):
    return [[cell.strip() for cell in line.strip('|').split('|')]
            for line in text.splitlines()[2:] if line.startswith('|') and line.strip('| ')]


def test_the_policy_records_what_the_table_needs(two_runs):
    policy = policy_of(two_runs[1]['dense'])
    assert (policy['loader'], policy['parallel'], policy['processes'], policy['nodes'],
            policy['gpus'], policy['modality']) == ('DataLoaderX', 'DP', 1, 1, 0, 'RGB')
    assert policy['training_time_s'] == pytest.approx(
        sum(r['epoch_time_s'] for r in policy['per_epoch']), abs=0.02)
    assert policy['epochs_done'] == 2 and policy['sampling'] == 'dense'
    versions = policy['versions']
    assert versions['torch'] == torch.__version__ and versions['cuda'] == torch.version.cuda
    head = subprocess.run(['git', '-C', ROOT, 'rev-parse', 'HEAD'], capture_output=True,
                          text=True).stdout.strip()
    assert versions['dlac_commit'] == (head or None)


def test_the_table_has_the_seeds_header_and_each_runs_own_figures(two_runs, capsys):
    snapshot, folders = two_runs
    assert table.main([str(snapshot)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert re.sub(r' +', ' ', lines[0]) == HEADER
    rows = {row[6]: row for row in rows_of(text)}
    assert set(rows) == {'TSN', 'TSN(Dense_Sample)'}
    with open(osp.join(folders['segments'], 'eval', 'report.json'), encoding='utf-8') as handle:
        evaluated = json.load(handle)['top1']
    assert rows['TSN'][0] == f'{evaluated:.3f}*'
    dense = policy_of(folders['dense'])
    assert rows['TSN(Dense_Sample)'][0] == f"{max(r['val_top1'] for r in dense['per_epoch']):.3f}"
    assert rows['TSN(Dense_Sample)'][1] == f"{dense['training_time_s'] / 60:.3f}min"
    assert rows['TSN'][2:6] == ['DP', 'SuperLoader', 'resnet18', '3']
    assert rows['TSN(Dense_Sample)'][2:] == ['DP', 'DataLoaderX', 'resnet18', '4x2',
                                             'TSN(Dense_Sample)', 'RGB', 'Synthetic', '8',
                                             '0.005', '[1]', '2', '0']
    assert rows['TSN'][11:] == ['[1]', '1', '0']
    order = [row[0] for row in rows_of(text)]
    assert [float(v.rstrip('*')) for v in order] == sorted(
        (float(v.rstrip('*')) for v in order), reverse=True)
    assert '* the evaluation\'s top1 (evaluate.py, all views)' in text


def test_training_and_stopped_runs_are_marked_and_kept(two_runs, tmp_path, capsys):
    snapshot, folders = two_runs
    copy = tmp_path / 'ar_output' / 'tsn'
    shutil.copytree(folders['dense'], copy / 'still_going')
    shutil.copytree(folders['dense'], copy / 'cut_short')
    policy = policy_of(copy / 'cut_short')
    policy['per_epoch'] = policy['per_epoch'][:1]
    (copy / 'cut_short' / 'training_policy.json').write_text(json.dumps(policy))
    with training_marker(str(copy / 'still_going')) as held:
        assert held and is_training(str(copy / 'still_going'))
        assert table.main([str(tmp_path)]) == 0
    assert not is_training(str(copy / 'still_going'))
    epochs = sorted(row[12] for row in rows_of(capsys.readouterr().out))
    assert epochs == ['1/2 (stopped)', '2/2 (training)']


def test_a_damaged_policy_keeps_the_row(two_runs, tmp_path, capsys):
    snapshot, folders = two_runs
    shutil.copytree(folders['dense'], tmp_path / 'ar_output' / 'tsn' / 'broken')
    (tmp_path / 'ar_output' / 'tsn' / 'broken' / 'training_policy.json').write_text('{"per_ep')
    assert table.main([str(tmp_path)]) == 0
    [row] = rows_of(capsys.readouterr().out)
    assert row[0] == '' and row[6] == 'TSN(Dense_Sample)' and row[12] == '0/2 (stopped)'


def test_filters(two_runs, capsys):
    snapshot, _ = two_runs
    table.main([str(snapshot), '--model', 'TSN(Dense_Sample)'])
    assert [row[6] for row in rows_of(capsys.readouterr().out)] == ['TSN(Dense_Sample)']
    table.main([str(snapshot), '--dataset', 'synthetic', '--model', 'tsn'])
    assert len(rows_of(capsys.readouterr().out)) == 2
    table.main([str(snapshot), '--dataset', 'HMDB51'])
    assert 'no runs under' in capsys.readouterr().out


def test_csv_and_html_from_the_script(two_runs, tmp_path):
    snapshot, folders = two_runs
    subprocess.run(['bash', osp.join(ROOT, 'Script', 'show_experiments.sh'), str(snapshot),
                    '--csv', 'table.csv', '--html', 'table.html'], cwd=tmp_path, check=True,
                   capture_output=True, env=dict(os.environ, DLAC_PYTHON=sys.executable))
    with open(tmp_path / 'table.csv', encoding='utf-8', newline='') as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0][:14]) == table.COLUMNS and len(rows) == 3
    page = (tmp_path / 'table.html').read_text(encoding='utf-8')
    assert '<script' not in page and 'http' not in page.replace('http-equiv', '')
    links = re.findall(r'href="([^"]+)"', page)
    assert [osp.normpath(osp.join(tmp_path, link)) for link in links] == [
        osp.join(folders['segments'], 'eval', 'report.html')]
    assert page.count('<tr>') == 3 and 'not evaluated' in page


def test_training_time_as_the_seed_writes_it():
    assert table.training_time(32.462 * 60) == '32.462min'
    assert table.training_time(134.872 * 60) == '134.872min'
    assert table.training_time(7 * 86400 + 16 * 3600 + 59) == '7d16h'
    assert table.training_time(9 * 86400 + 120) == '9d'


def test_html_escapes_what_runs_saved(tmp_path):
    run = table.Run('f', dict.fromkeys(table.COLUMNS, '<b>x</b>&'), 1.0, 'd', 'm', '')
    table.write_html([run], str(tmp_path / 't.html'))
    page = (tmp_path / 't.html').read_text(encoding='utf-8')
    assert '<b>x</b>' not in page and '&lt;b&gt;x&lt;/b&gt;&amp;' in page


def test_no_ar_output_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as stop:
        table.main([str(tmp_path)])
    assert stop.value.code == 2


def test_the_html_table_renders_in_chromium(two_runs, tmp_path):
    """As a person sees it: not blank, and the report page its row links to loads too."""
    require(shutil.which('chromium'), 'Debian chromium is not installed (apt-get install chromium)')
    snapshot, folders = two_runs
    page = tmp_path / 'experiments.html'
    table.main([str(snapshot), '--html', str(page)])
    shot, images_ok, broken = render_and_check(str(page), str(tmp_path / 'table.png'),
                                               window_size=(1600, 600))
    assert images_ok and broken == [] and not is_blank(shot)
    [link] = re.findall(r'href="([^"]+)"', page.read_text(encoding='utf-8'))
    report = osp.normpath(osp.join(tmp_path, link))
    shot, images_ok, broken = render_and_check(report, str(tmp_path / 'report.png'))
    assert images_ok and broken == [] and not is_blank(shot)


def test_cells_of_other_settings(tmp_path):
    assert table._steps({'LR_POLICY': 'step', 'LR_STEPS': [20, 50, 80]}) == '[20,50,80]'
    assert table._steps({'LR_POLICY': 'cosine', 'LR_STEPS': [20]}) == 'cosine'
    assert table._parallel({'parallel': 'DDP', 'processes': 16, 'nodes': 2}) == 'DDP (2x8)'
    assert table._parallel({'processes': 2}) == 'DDP (1x2)'        # a policy from before
    assert table._parallel({'parallel': 'DP', 'processes': 1}) == 'DP'
    history = [{'val_top1': 10.0}, {'val_top1': 30.0}, {'val_top1': 20.0}, {'val_top1': None}]
    assert table._top1(str(tmp_path), history) == ('30.000', 30.0)
    (tmp_path / 'eval').mkdir()
    (tmp_path / 'eval' / 'report.json').write_text('{"top1": 54.3789}')
    assert table._top1(str(tmp_path), history) == ('54.379*', 54.3789)
