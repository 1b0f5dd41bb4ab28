"""Kinetics-400/600/700 -> metafiles (and frames) from the official CSVs and downloaded clips.

    python -m DataTool.Kinetics.kinetics --root ~/datasets/k400 --out data/k400 --version 400

--root holds `train.csv` and `validate.csv` (header `label,youtube_id,time_start,time_end,
split`, some releases add `is_cc`), directly or in an `annotations/` folder, and the clips
anywhere below it, named `<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>` (or just
`<youtube_id>.<ext>`), in per-label folders or flat. Labels are sorted and numbered from 0.
Clips that never downloaded (usually 5-10%) are reported in skipped.txt.
"""
import csv
import os.path as osp
import re
import sys

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from DataTool.common.builder import (AnnotationError, Sample, argument_parser, build,  # noqa: E402
                                     encoding_options,
                                     find_folder, find_video, index_videos, run_tool)

CSV_NAMES = {'train': ('train.csv',), 'val': ('validate.csv', 'val.csv')}
REQUIRED_COLUMNS = ('label', 'youtube_id', 'time_start', 'time_end')
VERSIONS = (400, 600, 700)


def find_csv(root, subset):
    names = CSV_NAMES[subset]
    folder = find_folder([root], lambda _, found: any(name in found for name in names))
    if folder is None:
        raise FileNotFoundError(f"Kinetics: no {' or '.join(names)} under {root}")
    return next(osp.join(folder, name) for name in names if osp.isfile(osp.join(folder, name)))


def read_csv(path):
    """[(label, clip stem, youtube id, 'file:line')] of one subset's CSV."""
    rows = []
    with open(path, encoding='utf-8', newline='') as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise AnnotationError(f'{path}:1: header lacks {missing}; expected '
                                  f"'label,youtube_id,time_start,time_end,split'")
        for row in reader:
            where = f'{path}:{reader.line_num}'
            try:
                start, end = int(float(row['time_start'])), int(float(row['time_end']))
            except (TypeError, ValueError):
                raise AnnotationError(f'{where}: time_start/time_end must be numbers, got '
                                      f"{row['time_start']!r}, {row['time_end']!r}") from None
            label, youtube_id = (row['label'] or '').strip(), (row['youtube_id'] or '').strip()
            if not label or not youtube_id:
                raise AnnotationError(f'{where}: empty label or youtube_id')
            rows.append((label, f'{youtube_id}_{start:06d}_{end:06d}', youtube_id, where))
    return rows


def folder_name(label):
    """A label as a file-system-safe folder name: 'passing American football (in game)' ->
    'passing_American_football_in_game'."""
    return re.sub(r'[^0-9A-Za-z]+', '_', label).strip('_')


def main(argv=None):
    parser = argument_parser(__doc__.split('\n')[0])
    parser.add_argument('--version', type=int, choices=VERSIONS, default=None,
                        help='check that the CSVs hold this many classes')
    args = parser.parse_args(argv)
    rows = {subset: read_csv(find_csv(args.root, subset)) for subset in CSV_NAMES}
    classes = sorted({label for label, _, _, _ in rows['train']})
    if args.version and len(classes) != args.version:
        raise AnnotationError(f'Kinetics-{args.version}: train.csv names {len(classes)} classes, '
                              f'expected {args.version}')
    label_of = {name: index for index, name in enumerate(classes)}
    videos = index_videos(args.root)
    subsets = {}
    for subset, subset_rows in rows.items():
        subsets[subset] = []
        for label, stem, youtube_id, where in subset_rows:
            if label not in label_of:
                raise AnnotationError(f'{where}: label {label!r} is not in train.csv')
            video = find_video(videos, stem, youtube_id)
            subsets[subset].append(Sample(f'{folder_name(label)}/{stem}', label_of[label], video,
                                          where if video else f'{where} (no {stem}.* under --root)'))
    name = f'kinetics{args.version or len(classes)}'
    build(name, args.out, {1: subsets}, classes, args.mode, args.workers, args.short_side,
          args.root, flow=args.flow, frame_start=args.frame_start,
          **encoding_options(args))


if __name__ == '__main__':
    sys.exit(run_tool(main))
