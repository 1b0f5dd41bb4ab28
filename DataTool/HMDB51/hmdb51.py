"""HMDB51 -> metafiles (and frames): the official rars or their unpacked folders.

    python -m DataTool.HMDB51.hmdb51 --root ~/Downloads/hmdb51 --out data/hmdb51 --split 1 2 3

--root holds `hmdb51_org.rar` (a rar of one rar per class) and `test_train_splits.rar`, or
what they unpack to: `<class>/*.avi` folders and `testTrainMulti_7030_splits/`. Split files
`<class>_test_split<N>.txt` tag each video 1 (train), 2 (test) or 0 (not used); classes are
sorted alphabetically and numbered from 0 (brush_hair = 0 ... wave = 50).
"""
import os
import os.path as osp
import sys

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from DataTool.common.archives import find_archive, unpack  # noqa: E402
from DataTool.common.builder import (AnnotationError, Sample, argument_parser, build,  # noqa: E402
                                     encoding_options,
                                     find_class_folders, find_folder, run_tool, unpack_limits)

VIDEO_ARCHIVE = 'hmdb51_org'
SPLIT_ARCHIVE = 'test_train_splits'
SPLIT_FOLDER = 'testTrainMulti_7030_splits'
SPLIT_SUFFIX = '_test_split{}.txt'
TAGS = {'1': 'train', '2': 'val', '0': None}


def locate(root, out, limits=None):
    """(split folder, video folder): unpacks the official archives into out/download first
    (limits: `unpack`'s keyword arguments)."""
    download = osp.join(out, 'download')
    for stem in (SPLIT_ARCHIVE, VIDEO_ARCHIVE):
        archive = find_archive(root, stem)
        if archive:
            unpack(archive, osp.join(download, stem), nested=True, **(limits or {}))
    split_dir = find_folder([root, download], lambda folder, names: any(
        name.endswith(SPLIT_SUFFIX.format(1)) for name in names))
    if split_dir is None:
        raise FileNotFoundError(f'HMDB51: no split files (*{SPLIT_SUFFIX.format(1)}) under '
                                f'{root}: put {SPLIT_ARCHIVE}.rar or {SPLIT_FOLDER}/ there')
    classes = class_names(split_dir)
    video_dir = find_class_folders([root, download], classes)
    if video_dir is None:
        raise FileNotFoundError(f'HMDB51: no video folders ({classes[0]}/ ... {classes[-1]}/) '
                                f'under {root}: put {VIDEO_ARCHIVE}.rar there')
    return split_dir, video_dir


def class_names(split_dir):
    suffix = SPLIT_SUFFIX.format(1)
    return sorted(name[:-len(suffix)] for name in os.listdir(split_dir) if name.endswith(suffix))


def read_split(split_dir, video_dir, split, classes):
    """{'train': [Sample], 'val': [Sample]} of official split `split`."""
    subsets = {'train': [], 'val': []}
    for label, name in enumerate(classes):
        path = osp.join(split_dir, name + SPLIT_SUFFIX.format(split))
        if not osp.isfile(path):
            raise FileNotFoundError(f'HMDB51: split file missing: {path}')
        with open(path, encoding='utf-8') as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2 or parts[1] not in TAGS:
                    raise AnnotationError(f"{path}:{line_no}: expected '<video> <0|1|2>', "
                                          f'got {line.strip()!r}')
                subset = TAGS[parts[1]]
                if subset:
                    stem = osp.splitext(parts[0])[0]
                    subsets[subset].append(Sample(f'{name}/{stem}', label,
                                                  osp.join(video_dir, name, parts[0]),
                                                  f'{path}:{line_no}'))
    return subsets


def main(argv=None):
    parser = argument_parser(__doc__.split('\n')[0], splits=(1, 2, 3), unpacks_archives=True)
    args = parser.parse_args(argv)
    split_dir, video_dir = locate(args.root, args.out, unpack_limits(args))
    classes = class_names(split_dir)
    splits = {n: read_split(split_dir, video_dir, n, classes) for n in args.split}
    build('hmdb51', args.out, splits, classes, args.mode, args.workers, args.short_side, video_dir,
          flow=args.flow, frame_start=args.frame_start,
          **encoding_options(args))


if __name__ == '__main__':
    sys.exit(run_tool(main))
