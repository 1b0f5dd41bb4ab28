"""Every run under SNAPSHOT_ROOT/ar_output in one table: the original DLAC's "Experiment
Show", with its columns in its order, written from what each run saved (config.yaml,
training_policy.json, eval/report.json), not by hand.

    python -m utils.experiment_table [SNAPSHOT_ROOT] [--html FILE] [--csv FILE]
                                     [--dataset NAME] [--model NAME]

(`bash Script/show_experiments.sh` runs it.) One row per run, sorted by dataset, then TOP1
from best to worst. TOP1 is the evaluation's top1 when eval/report.json exists (marked *: all
views), else the best validation top1 during training. A run whose training process is alive
is marked "training" in Epochs; one that stopped early keeps its row, with the epochs done.
"""
import argparse
import csv
import html
import json
import os
import os.path as osp
import sys
from dataclasses import dataclass

import yaml

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from utils.run_facts import is_training  # noqa: E402
from utils.safe_text import spreadsheet_row  # noqa: E402

COLUMNS = ('TOP1', 'Training Time', 'Parallel Method', 'Loader Method', 'Backbone', 'Segments',
           'Model', 'Modality', 'Dataset', 'BatchSize', 'LR', 'Steps', 'Epochs', 'GPUs')
MODEL_NAMES = {'tsn': 'TSN', 'tsm': 'TSM', 'i3d': 'I3D', 'slowfast': 'SlowFast',
               'mfnet3d': 'MFNet3D', 'x3d': 'X3D', 'r3d': 'R3D', 'mc3': 'MC3',
               'r2plus1d': 'R(2+1)D', 'videomae': 'VideoMAE'}
BACKBONE_NAMES = {'bninception': 'BNInception', 'inceptionv3': 'InceptionV3',
                  'mobilenetv2': 'MobileNetV2'}
DATASET_NAMES = {'hmdb51': 'HMDB51', 'ucf101': 'UCF101', 'activitynet': 'ActivityNet Trimmed',
                 'sthv2': 'SomethingV2', 'kinetics400': 'K400', 'kinetics600': 'K600',
                 'kinetics700': 'K700', 'synthetic': 'Synthetic', 'custom': 'Custom'}
SKIPPED_FOLDERS = ('pretrain_model_zoo',)
EVALUATED_MARK = '*'


@dataclass
class Run:
    """One experiment folder and the table's cells for it."""
    folder: str
    cells: dict
    top1: float            # for sorting; -1 when there is none
    dataset: str           # DATASET.NAME and MODEL_NAME, for the filters
    model: str
    report: str            # eval/report.html when it exists, else ''


def training_time(seconds):
    """As the seed writes it: minutes with three decimals under a day ('32.462min'), days and
    hours beyond ('7d16h', '9d')."""
    if seconds < 86400:
        return f'{seconds / 60:.3f}min'
    days, hours = int(seconds // 86400), int(seconds % 86400 // 3600)
    return f'{days}d{hours}h' if hours else f'{days}d'


def read_json(path):
    """The JSON object in `path`, or None when it is missing or damaged (a run being written,
    or cut off: the table shows what it can)."""
    try:
        with open(path, encoding='utf-8') as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_config(path):
    try:
        with open(path, encoding='utf-8') as handle:
            value = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError):
        return None
    return value if isinstance(value, dict) else None


def find_runs(snapshot_root):
    """Experiment folders (config.yaml beside training_policy.json or checkpoints/) under
    SNAPSHOT_ROOT/ar_output, sorted."""
    base = osp.join(snapshot_root, 'ar_output')
    found = []
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS and not d.startswith('.'))
        if 'config.yaml' in files and ('training_policy.json' in files or 'checkpoints' in dirs):
            found.append(folder)
            dirs[:] = []          # a run's own subfolders hold no runs
    return found


def _segments(cfg):
    data = cfg.get('DATA', {})
    if cfg.get('DATASET', {}).get('SAMPLING') == 'dense':
        return f"{data.get('CLIP_LEN')}x{data.get('FRAME_INTERVAL')}"
    return str(data.get('NUM_SEGMENTS'))


def _steps(train):
    if train.get('LR_POLICY', 'step') != 'step':
        return str(train.get('LR_POLICY'))
    return '[' + ','.join(str(step) for step in train.get('LR_STEPS') or []) + ']'


def _parallel(policy):
    if policy.get('parallel') == 'DDP' or policy.get('processes', 1) > 1:
        nodes, processes = policy.get('nodes', 1), policy.get('processes', 1)
        return f'DDP ({nodes}x{processes // max(1, nodes)})'
    return 'DP'


def _top1(folder, history):
    """(cell, value): the evaluation's top1 (marked) or the best validation top1."""
    report = read_json(osp.join(folder, 'eval', 'report.json'))
    if report and isinstance(report.get('top1'), (int, float)):
        return f"{report['top1']:.3f}{EVALUATED_MARK}", float(report['top1'])
    values = [r['val_top1'] for r in history if isinstance(r.get('val_top1'), (int, float))]
    if values:
        return f'{max(values):.3f}', max(values)
    return '', -1.0


def read_run(folder):
    """The table's row for one experiment folder, or None when its config cannot be read."""
    cfg = read_config(osp.join(folder, 'config.yaml'))
    if cfg is None:
        return None
    policy = read_json(osp.join(folder, 'training_policy.json')) or {}
    history = [r for r in policy.get('per_epoch') or [] if isinstance(r, dict)]
    train, dataset = cfg.get('TRAIN', {}), cfg.get('DATASET', {})
    top1_cell, top1 = _top1(folder, history)
    seconds = policy.get('training_time_s')
    if seconds is None:                # written before the policy kept the total
        seconds = sum(r.get('epoch_time_s') or 0 for r in history)
    epochs, done = train.get('EPOCHS'), len(history)
    if is_training(folder):
        epoch_cell = f'{done}/{epochs} (training)'
    elif done < (epochs or 0):
        epoch_cell = f'{done}/{epochs} (stopped)'
    else:
        epoch_cell = str(epochs)
    model = cfg.get('MODEL_NAME', '')
    model_cell = MODEL_NAMES.get(model, model)
    if dataset.get('SAMPLING') == 'dense' and model != 'slowfast':
        model_cell += '(Dense_Sample)'
    if train.get('TASK') == 'pretrain':
        model_cell += ' pre-training'
    loader = policy.get('loader') or ('Shards' if dataset.get('INPUT_TYPE') == 'shards'
                                      else dataset.get('LOADER', ''))
    batch = policy.get('global_batch_size') or train.get('BASE_BATCH_SIZE')
    cells = {
        'TOP1': top1_cell, 'Training Time': training_time(seconds) if history else '',
        'Parallel Method': _parallel(policy), 'Loader Method': loader,
        'Backbone': BACKBONE_NAMES.get(cfg.get('BACKBONE'), cfg.get('BACKBONE', '')),
        'Segments': _segments(cfg), 'Model': model_cell,
        'Modality': policy.get('modality') or cfg.get('MODALITY', ''),
        'Dataset': DATASET_NAMES.get(dataset.get('NAME'), dataset.get('NAME', '')),
        'BatchSize': str(batch), 'LR': f"{train.get('BASE_LR', 0):g}", 'Steps': _steps(train),
        'Epochs': epoch_cell, 'GPUs': str(policy.get('gpus', '')),
    }
    report = osp.join(folder, 'eval', 'report.html')
    return Run(folder, cells, top1, str(dataset.get('NAME', '')), model,
               report if osp.isfile(report) else '')


def collect(snapshot_root, dataset=None, model=None):
    """The rows, filtered (a name as in the config or as the table shows it, any case) and
    sorted by dataset, then TOP1 from best to worst."""
    runs = [run for run in map(read_run, find_runs(snapshot_root)) if run is not None]
    if dataset:
        runs = [r for r in runs if dataset.lower() in (r.dataset.lower(), r.cells['Dataset'].lower())]
    if model:
        runs = [r for r in runs if model.lower() in (r.model.lower(), r.cells['Model'].lower())]
    return sorted(runs, key=lambda r: (r.cells['Dataset'].lower(), -r.top1, r.folder))


def markdown(runs):
    """The table as the seed's README has it (a blank row between datasets), and its notes."""
    widths = {c: max([len(c)] + [len(r.cells[c]) for r in runs]) for c in COLUMNS}

    def line(values):
        return '| ' + ' | '.join(v.ljust(widths[c]) for c, v in zip(COLUMNS, values)) + ' |'
    lines = [line(COLUMNS), '| ' + ' | '.join('-' * widths[c] for c in COLUMNS) + ' |']
    for index, run in enumerate(runs):
        if index and run.cells['Dataset'] != runs[index - 1].cells['Dataset']:
            lines.append(line([''] * len(COLUMNS)))
        lines.append(line([run.cells[c] for c in COLUMNS]))
    return '\n'.join(lines) + '\n\n' + notes(runs)


def notes(runs):
    text = ('TOP1: the best validation top1 during training (one view per video)'
            + (f'; {EVALUATED_MARK} the evaluation\'s top1 (evaluate.py, all views)'
               if any(r.cells['TOP1'].endswith(EVALUATED_MARK) for r in runs) else '')
            + '. Training Time: the epochs\' wall-clock time, validation included. BatchSize: '
            'over all processes. GPUs: 0 on the CPU.')
    return text


def write_csv(runs, path):
    with open(path, 'w', newline='', encoding='utf-8') as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS + ('Folder', 'Report'))
        for run in runs:
            writer.writerow(spreadsheet_row([run.cells[c] for c in COLUMNS]
                                            + [run.folder, run.report]))


def write_html(runs, path):
    """A static page (no scripts): the table, each row linked to its report page."""
    here = osp.dirname(osp.abspath(path))
    rows = []
    for run in runs:
        if run.report:
            link = (f'<a href="{html.escape(osp.relpath(run.report, here))}">report</a>')
        else:
            link = 'not evaluated'
        cells = ''.join(f'<td>{html.escape(run.cells[c])}</td>' for c in COLUMNS)
        rows.append(f'<tr>{cells}<td>{link}</td></tr>')
    head = ''.join(f'<th>{html.escape(c)}</th>' for c in COLUMNS)
    page = f'''<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Experiment Show</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #999; padding: 4px 8px; text-align: left; }}
th {{ background: #eee; }}
tr:nth-child(even) td {{ background: #f7f7f7; }}
</style></head>
<body><h1>Experiment Show</h1>
<table><thead><tr>{head}<th>Report</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p>{html.escape(notes(runs))}</p>
</body></html>
'''
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(page)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('snapshot_root', nargs='?', default=None,
                        help="the SNAPSHOT_ROOT whose ar_output/ holds the runs (default: "
                             "config.py's)")
    parser.add_argument('--html', help='also write the table as a web page, rows linked to '
                                       'their eval/report.html')
    parser.add_argument('--csv', help='also write the table as CSV (with each run\'s folder)')
    parser.add_argument('--dataset', help='only this dataset (e.g. hmdb51 or HMDB51)')
    parser.add_argument('--model', help='only this model (e.g. tsn)')
    args = parser.parse_args(argv)
    caller = os.environ.get('DLAC_CALLER_DIR', '')     # Script/show_experiments.sh runs us from
    for name in ('snapshot_root', 'html', 'csv'):       # the repository: paths are the caller's
        value = getattr(args, name)
        if value and caller and not osp.isabs(value):
            setattr(args, name, osp.join(caller, value))
    root = args.snapshot_root
    if root is None:
        import config
        root = config.default_config().SNAPSHOT_ROOT
    if not osp.isdir(osp.join(root, 'ar_output')):
        parser.error(f'{root}: no ar_output/ folder, so no runs (give the SNAPSHOT_ROOT)')
    runs = collect(root, args.dataset, args.model)
    print(markdown(runs))
    if args.csv:
        write_csv(runs, args.csv)
    if args.html:
        write_html(runs, args.html)
    if not runs:
        print(f'no runs under {osp.join(root, "ar_output")}'
              + (' matching the filters' if args.dataset or args.model else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
