"""Any folder of videos, `root/<class name>/<video>`, -> metafiles (and frames).

    python -m DataTool.Custom.custom --root ~/my_videos --out data/my_videos --val-ratio 0.2
    python -m DataTool.Custom.custom --root ~/my_videos --out data/my_videos \\
        --train-list train.txt --val-list val.txt

Classes are the sub-folders of --root, sorted and numbered from 0. Either a random split
(--val-ratio, per class, reproducible with --seed) or your own lists: one video per line,
`<class name>/<video file>` relative to --root (anything after the path is ignored).
"""
import os
import os.path as osp
import sys

import numpy as np

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from DataTool.common.builder import (AnnotationError, Sample, argument_parser, build,  # noqa: E402
                                     encoding_options,
                                     run_tool)
from datasets.video_probe import find_videos  # noqa: E402


SHOWN_SKIPS = 10        # skipped files named on the terminal; the count covers them all


def scan_classes(root):
    """{class name: [video file names]} of root/<class>/<video>. Videos are recognised by
    content (any container FFmpeg reads, any case of extension); every other file is named
    with the reason it was passed over."""
    if not osp.isdir(root):
        raise FileNotFoundError(f'Custom: --root {root} is not a folder')
    classes, skipped = {}, []
    for name in sorted(os.listdir(root)):
        folder = osp.join(root, name)
        if osp.isdir(folder) and not name.startswith('.'):
            videos, passed_over = find_videos(folder)
            classes[name] = [osp.basename(path) for path in videos]
            skipped += passed_over
    if skipped:
        print(f'Custom: skipped {len(skipped)} ' + ('file that is not a usable video:'
              if len(skipped) == 1 else 'files that are not usable videos:'))
        for path, why in skipped[:SHOWN_SKIPS]:
            print(f'  {osp.relpath(path, root)}: {why}')
        if len(skipped) > SHOWN_SKIPS:
            print(f'  ... and {len(skipped) - SHOWN_SKIPS} more')
    found = {name: videos for name, videos in classes.items() if videos}
    if len(found) < 2:
        seen = ', '.join(f'{name} ({len(videos)})' for name, videos in classes.items()) or 'none'
        raise AnnotationError(
            f'Custom: {root} needs at least two class folders holding videos, found '
            f'{len(found)}; class folders (videos in each): {seen}; {len(skipped)} files '
            f'skipped as not usable videos' + (f', e.g. {osp.relpath(skipped[0][0], root)}: '
                                               f'{skipped[0][1]}' if skipped else ''))
    return found


def _sample(root, class_name, file_name, label, origin):
    stem = osp.splitext(file_name)[0]
    return Sample(f'{class_name}/{stem}', label, osp.join(root, class_name, file_name), origin)


def random_split(root, classes, val_ratio, seed):
    """Per class, round(val_ratio x videos) (at least one) go to validation."""
    if not 0 < val_ratio < 1:
        raise AnnotationError(f'Custom: --val-ratio must be between 0 and 1, got {val_ratio}')
    rng = np.random.default_rng(seed)
    subsets = {'train': [], 'val': []}
    for label, (class_name, videos) in enumerate(classes.items()):
        order = rng.permutation(len(videos))
        num_val = min(len(videos) - 1, max(1, round(val_ratio * len(videos))))
        for rank, position in enumerate(order):
            subset = 'val' if rank < num_val else 'train'
            subsets[subset].append(_sample(root, class_name, videos[position], label,
                                           f'{class_name}/{videos[position]}'))
    return subsets


def read_list(path, root, label_of):
    samples = []
    with open(path, encoding='utf-8') as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            relative = line.strip().replace('\\', '/')
            if not osp.isfile(osp.join(root, relative)):
                relative = relative.rsplit(maxsplit=1)[0]    # 'class/video.mp4 <label>' lists
            class_name, _, file_name = relative.partition('/')
            if class_name not in label_of or not file_name:
                raise AnnotationError(f"{path}:{line_no}: expected '<class name>/<video>' with a "
                                      f'class folder of {root}, got {line.strip()!r}')
            samples.append(_sample(root, class_name, file_name, label_of[class_name],
                                   f'{path}:{line_no}'))
    return samples


def main(argv=None):
    parser = argument_parser(__doc__.split('\n')[0])
    parser.add_argument('--val-ratio', type=float, default=0.2,
                        help='fraction of each class held out for validation')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random split')
    parser.add_argument('--train-list', help='your training list (then --val-list too)')
    parser.add_argument('--val-list', help='your validation list')
    args = parser.parse_args(argv)
    if bool(args.train_list) != bool(args.val_list):
        parser.error('--train-list and --val-list go together')
    classes = scan_classes(args.root)
    if args.train_list:
        label_of = {name: label for label, name in enumerate(classes)}
        subsets = {'train': read_list(args.train_list, args.root, label_of),
                   'val': read_list(args.val_list, args.root, label_of)}
    else:
        subsets = random_split(args.root, classes, args.val_ratio, args.seed)
    build('custom', args.out, {1: subsets}, list(classes), args.mode, args.workers,
          args.short_side, args.root, flow=args.flow, frame_start=args.frame_start,
          **encoding_options(args))


if __name__ == '__main__':
    sys.exit(run_tool(main))
