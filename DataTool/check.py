"""Check a dataset before training on it: every sample of its metafiles, read as the loader will.

    python -m DataTool.check --meta train.txt val.txt --root VIDEO_SEQ_PATH --out check/ \
        [--workers N] [--full] [--frames 8] [--drop-duplicates]

For every sample (a video file or a frame folder): does it open, hold a video stream and
decode (its sampled frames; every frame with --full), its real frame count against the
metafile's, duration, frame rate (variable or not), size as shown, rotation, codec, keyframe
interval, and a content hash that finds duplicates, across metafiles too (a validation video
that is also in training). Parallel, with a progress bar; a rerun continues where the last
stopped (results are kept in --out/samples.jsonl).

Written under --out:
    report.json            every problem (sample, metafile, line, severity, reason) and the summary
    clean_<metafile>       each metafile without its unusable samples, frame counts corrected
    report.png             class balance, durations, sizes, keyframe intervals
    samples.jsonl          what was found about each sample
and a one-screen summary with what to do. Exit 0 whenever it ran, whatever it found; 2 only
for bad arguments.
"""
import argparse
import json
import os
import os.path as osp
import re
import sys

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from DataTool.common.check_report import (Entry, mark_duplicates, problem_list,  # noqa: E402
                                          save_report_png, summarise, write_clean_metafiles)
from DataTool.common.jobs import ResultLog, file_key, run_parallel  # noqa: E402
from DataTool.common.sample_check import UNUSABLE, check_sample  # noqa: E402
from datasets.records import MetafileError, check_metafile, read_class_names  # noqa: E402

RESULTS = 'samples.jsonl'


def read_entries(metafiles):
    """(entries of every usable line, report problems of every bad line)."""
    entries, bad_lines = [], []
    for metafile in metafiles:
        records, problems = check_metafile(metafile, labelled=False)
        for record in records:
            line = int(record.where.rpartition(':')[2] or 0)
            entries.append(Entry(metafile, line, record.path, record.num_frames, record.label))
        for text in problems:
            found = re.match(r'(.*?):(\d+): (.*)', text)
            line, reason = (int(found[2]), found[3]) if found else (0, text)
            bad_lines.append({'sample': '', 'metafile': metafile, 'line': line,
                              'severity': UNUSABLE, 'problem': 'bad_line', 'reason': reason})
    return entries, bad_lines


def class_names_beside(metafiles):
    """The classInd.txt beside the first metafile that has one, else None."""
    for metafile in metafiles:
        path = osp.join(osp.dirname(osp.abspath(metafile)), 'classInd.txt')
        if osp.isfile(path):
            try:
                return read_class_names(path)
            except MetafileError:
                return None
    return None


def inspect_all(entries, root, out, options, workers):
    """{key: result} for every entry, from earlier runs or inspected now (each distinct
    file and listed count once)."""
    log = ResultLog(osp.join(out, RESULTS))
    settings = '|'.join(f'{k}={options[k]}' for k in sorted(options))
    jobs = {}
    for entry in entries:
        path = osp.join(root, entry.path)
        entry.key = f'{file_key(path)}|{entry.listed}|{settings}'
        if entry.key not in log.done and entry.key not in jobs:
            jobs[entry.key] = (entry.key, path, entry.listed, options)
    reused = len({e.key for e in entries}) - len(jobs)
    if reused:
        print(f'{reused} samples were checked by an earlier run ({osp.join(out, RESULTS)})')
    try:
        for result in run_parallel(check_sample, list(jobs.values()), workers, 'checking'):
            log.add(result)
    finally:
        log.close()
    return log.done


def print_summary(summary, out, metafiles):
    names = ', '.join(f"{osp.basename(m)}: {summary['clean_metafiles'][m]['lines']} usable"
                      for m in metafiles)
    print(f"\nchecked {summary['samples']} samples ({summary['videos']} videos, "
          f"{summary['frame_folders']} frame folders usable): {names}")
    for line in summary['advice']:
        print(line)
    print(f"details: {osp.join(out, 'report.json')}, {osp.join(out, 'report.png')}")


def argument_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--meta', nargs='+', required=True,
                        help='metafile(s) to check, training first (duplicates are named in '
                             'the later ones)')
    parser.add_argument('--root', required=True, help='the folder the metafile paths are under '
                                                      '(DATASET.VIDEO_SEQ_PATH)')
    parser.add_argument('--out', required=True, help='where the report and clean metafiles go')
    parser.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument('--full', action='store_true',
                        help='decode every frame (default: the sampled frames and the last)')
    parser.add_argument('--frames', type=int, default=8,
                        help='frames decoded per sample without --full (segment centres)')
    parser.add_argument('--drop-duplicates', action='store_true',
                        help='leave duplicates out of the clean metafiles too (the later copy: '
                             'the one in the later metafile)')
    parser.add_argument('--img-format', default='img_{:05d}.jpg',
                        help='frame file names in frame folders (DATASET.IMG_FORMAT)')
    parser.add_argument('--frame-start', type=int, choices=(0, 1), default=1,
                        help="number of a folder's first frame file (DATASET.FRAME_START)")
    return parser


def main(argv=None):
    parser = argument_parser()
    args = parser.parse_args(argv)
    for path in args.meta:
        if not osp.isfile(path):
            parser.error(f'--meta {path}: no such file')
    names = [osp.basename(path) for path in args.meta]
    if len(set(names)) != len(names):
        parser.error(f'--meta: two metafiles share a name ({", ".join(names)}); their clean '
                     'copies would overwrite each other')
    if not osp.isdir(args.root):
        parser.error(f'--root {args.root}: no such folder')
    if args.frames < 0:
        parser.error('--frames must be 0 or more')
    os.makedirs(args.out, exist_ok=True)
    entries, bad_lines = read_entries(args.meta)
    options = {'full': args.full, 'frames': args.frames, 'img_format': args.img_format,
               'frame_start': args.frame_start}
    results = inspect_all(entries, args.root, args.out, options, args.workers)
    for entry in entries:
        entry.problems = list(results[entry.key]['problems'])
    mark_duplicates(entries, results)
    clean = write_clean_metafiles(args.meta, entries, results, args.out, args.drop_duplicates)
    summary = summarise(entries, results, bad_lines, clean, class_names_beside(args.meta),
                        args.root)
    with open(osp.join(args.out, 'report.json'), 'w', encoding='utf-8') as handle:
        json.dump({'summary': summary, 'problems': problem_list(entries, bad_lines)}, handle,
                  indent=1)
    save_report_png(entries, results, summary, osp.join(args.out, 'report.png'))
    print_summary(summary, args.out, args.meta)
    return 0


if __name__ == '__main__':
    sys.exit(main())
