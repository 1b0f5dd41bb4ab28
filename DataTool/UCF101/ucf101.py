"""UCF101 -> metafiles (and frames): the official rar and split zip or their unpacked folders.

    python -m DataTool.UCF101.ucf101 --root ~/Downloads/ucf101 --out data/ucf101 --split 1 2 3

--root holds `UCF101.rar` (-> `UCF-101/<ClassName>/v_<ClassName>_gGG_cCC.avi`) and
`UCF101TrainTestSplits-RecognitionTask.zip` (-> `ucfTrainTestlist/`), or what they unpack to.
`classInd.txt` numbers classes from 1; DLAC's labels are 0-based. Train lists give the label,
test lists only the path, so the class always comes from the list path's folder part: the
file names of HandstandPushups say `HandStandPushups`, the folder and classInd do not.
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

VIDEO_ARCHIVE = 'UCF101'
SPLIT_ARCHIVE = 'UCF101TrainTestSplits-RecognitionTask'
LISTS = {'train': 'trainlist0{}.txt', 'val': 'testlist0{}.txt'}


def locate(root, out, limits=None):
    """(list folder, video folder): unpacks the official archives into out/download first
    (limits: `unpack`'s keyword arguments)."""
    download = osp.join(out, 'download')
    for stem in (SPLIT_ARCHIVE, VIDEO_ARCHIVE):
        archive = find_archive(root, stem)
        if archive:
            unpack(archive, osp.join(download, stem), **(limits or {}))
    list_dir = find_folder([root, download], lambda folder, names: 'classInd.txt' in names)
    if list_dir is None:
        raise FileNotFoundError(f'UCF101: no classInd.txt under {root}: put {SPLIT_ARCHIVE}.zip '
                                f'or ucfTrainTestlist/ there')
    classes = read_class_index(osp.join(list_dir, 'classInd.txt'))
    video_dir = find_class_folders([root, download], classes)
    if video_dir is None:
        raise FileNotFoundError(f'UCF101: no video folders ({classes[0]}/ ... {classes[-1]}/) '
                                f'under {root}: put {VIDEO_ARCHIVE}.rar or UCF-101/ there')
    return list_dir, video_dir


def read_class_index(path):
    """classInd.txt (`1 ApplyEyeMakeup` ...) -> class names in 0-based label order."""
    names = {}
    with open(path, encoding='utf-8') as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[0].isdigit():
                raise AnnotationError(f"{path}:{line_no}: expected '<index> <ClassName>', "
                                      f'got {line.strip()!r}')
            names[int(parts[0])] = parts[1]
    if sorted(names) != list(range(1, len(names) + 1)):
        raise AnnotationError(f'{path}: class indices must run from 1 to {len(names)}')
    return [names[index] for index in sorted(names)]


class _VideoFinder:
    """Path of a listed video, matched case-insensitively within its class folder when the
    exact name is not on disk (list files and downloads disagree on capitalisation)."""

    def __init__(self, video_dir):
        self.video_dir = video_dir
        self.folders = {}

    def __call__(self, folder, file_name):
        exact = osp.join(self.video_dir, folder, file_name)
        if osp.isfile(exact):
            return exact
        if folder not in self.folders:
            path = osp.join(self.video_dir, folder)
            names = os.listdir(path) if osp.isdir(path) else []
            self.folders[folder] = {name.lower(): osp.join(path, name) for name in names}
        return self.folders[folder].get(file_name.lower())


def read_split(list_dir, video_dir, split, classes):
    """{'train': [Sample], 'val': [Sample]} of official split `split`."""
    label_of = {name: label for label, name in enumerate(classes)}
    lower_label_of = {name.lower(): label for name, label in label_of.items()}
    find = _VideoFinder(video_dir)
    subsets = {}
    for subset, pattern in LISTS.items():
        path = osp.join(list_dir, pattern.format(split))
        if not osp.isfile(path):
            raise FileNotFoundError(f'UCF101: list file missing: {path}')
        samples = []
        with open(path, encoding='utf-8') as handle:
            for line_no, line in enumerate(handle, start=1):
                parts = line.split()
                if not parts:
                    continue
                folder, _, file_name = parts[0].replace('\\', '/').partition('/')
                label = label_of.get(folder, lower_label_of.get(folder.lower()))
                if not file_name or label is None:
                    raise AnnotationError(f'{path}:{line_no}: {parts[0]!r} is not '
                                          f'<ClassName>/<video> with a class of classInd.txt')
                if len(parts) > 1 and (not parts[1].isdigit() or int(parts[1]) - 1 != label):
                    raise AnnotationError(f'{path}:{line_no}: label {parts[1]} does not match '
                                          f'folder {folder} (class {label + 1} in classInd.txt)')
                name = f'{classes[label]}/{osp.splitext(file_name)[0]}'
                samples.append(Sample(name, label, find(folder, file_name), f'{path}:{line_no}'))
        subsets[subset] = samples
    return subsets


def main(argv=None):
    parser = argument_parser(__doc__.split('\n')[0], splits=(1, 2, 3), unpacks_archives=True)
    args = parser.parse_args(argv)
    list_dir, video_dir = locate(args.root, args.out, unpack_limits(args))
    classes = read_class_index(osp.join(list_dir, 'classInd.txt'))
    splits = {n: read_split(list_dir, video_dir, n, classes) for n in args.split}
    build('ucf101', args.out, splits, classes, args.mode, args.workers, args.short_side, video_dir,
          flow=args.flow, frame_start=args.frame_start,
          **encoding_options(args))


if __name__ == '__main__':
    sys.exit(run_tool(main))
