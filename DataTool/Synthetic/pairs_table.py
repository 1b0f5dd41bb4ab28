"""Table of how experiments did on the synthetic set's time-reversed pairs, from the
`eval/report.json` files evaluate.py writes.

    python -m DataTool.Synthetic.pairs_table EXPERIMENT_DIR [EXPERIMENT_DIR ...]

A model that sees frame order separates each pair (paired-class top1 near 100%); one that
averages frames (TSN) stays near 50% within a pair.
"""
import json
import os.path as osp
import sys


def read_json(path):
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def last_epoch_val_top1(folder):
    """Validation top1 after the final epoch (training_policy.json), or None: set beside the
    best checkpoint's figures, it shows that picking the best epoch on the same videos did
    not make the result."""
    path = osp.join(folder, 'training_policy.json')
    epochs = read_json(path).get('per_epoch', []) if osp.isfile(path) else []
    values = [e['val_top1'] for e in epochs if e.get('val_top1') is not None]
    return values[-1] if values else None


def table_rows(experiment_dirs):
    rows = ['| experiment | backbone | top1 | paired classes top1 | within-pair accuracy '
            '| non-paired top1 | views | best epoch | last-epoch val top1 |',
            '|---|---|---|---|---|---|---|---|---|']
    for folder in experiment_dirs:
        path = osp.join(folder, 'eval', 'report.json')
        report = read_json(path)
        pairs = report.get('synthetic_pairs')
        if pairs is None:
            raise SystemExit(f'{path}: no synthetic_pairs section (not evaluated on the synthetic set)')
        name = osp.join(osp.basename(osp.dirname(osp.normpath(folder))), osp.basename(osp.normpath(folder)))
        last = last_epoch_val_top1(folder)
        rows.append(f"| {name} | {report.get('backbone', '')} | {report['top1']:.1f} "
                    f"| {pairs['paired_top1']:.1f} | {pairs['mean_within_pair_accuracy']:.1f} "
                    f"| {pairs['non_paired_top1']:.1f} | {report.get('views', '')} "
                    f"| {report.get('checkpoint_epoch', '')} | {'' if last is None else f'{last:.1f}'} |")
    return rows


if __name__ == '__main__':
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print('\n'.join(table_rows(sys.argv[1:])))
