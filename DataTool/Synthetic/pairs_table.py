"""Table of how experiments did on the synthetic set's time-reversed pairs, from the
`eval/report.json` files evaluate.py writes.

    python -m DataTool.Synthetic.pairs_table EXPERIMENT_DIR [EXPERIMENT_DIR ...]

A model that sees frame order separates each pair (paired-class top1 near 100%); one that
averages frames (TSN) stays near 50% within a pair.
"""
import json
import os.path as osp
import sys


def table_rows(experiment_dirs):
    rows = ['| experiment | top1 | paired classes top1 | within-pair accuracy | non-paired top1 | views |',
            '|---|---|---|---|---|---|']
    for folder in experiment_dirs:
        path = osp.join(folder, 'eval', 'report.json')
        with open(path, encoding='utf-8') as handle:
            report = json.load(handle)
        pairs = report.get('synthetic_pairs')
        if pairs is None:
            raise SystemExit(f'{path}: no synthetic_pairs section (not evaluated on the synthetic set)')
        name = osp.join(osp.basename(osp.dirname(osp.normpath(folder))), osp.basename(osp.normpath(folder)))
        rows.append(f"| {name} | {report['top1']:.1f} | {pairs['paired_top1']:.1f} "
                    f"| {pairs['mean_within_pair_accuracy']:.1f} | {pairs['non_paired_top1']:.1f} "
                    f"| {report.get('views', '')} |")
    return rows


if __name__ == '__main__':
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print('\n'.join(table_rows(sys.argv[1:])))
