"""Something-Something V2 -> metafiles (and frames) from the official JSON files and .webm videos.

    python -m DataTool.SomethingV2.sthv2 --root ~/datasets/sthv2 --out data/sthv2

--root holds `something-something-v2-labels.json` ({"<class>": "<index>"}),
`something-something-v2-train.json` and `-validation.json` (lists of {"id", "label",
"template", "placeholders"}), directly or in a `labels/` folder, and the videos
`<id>.webm` (in `20bn-something-something-v2/` or anywhere below --root). A sample's class is
its `template` with the brackets removed. The test list has no labels and is not used.
Several classes are left/right mirrors of each other: train with DATASET.FLIP False.
"""
import json
import os.path as osp
import sys

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from DataTool.common.builder import (AnnotationError, Sample, argument_parser, build,  # noqa: E402
                                     encoding_options,
                                     find_folder, find_video, index_videos, run_tool)

PREFIX = 'something-something-v2-'
FILES = {'labels': 'labels.json', 'train': 'train.json', 'val': 'validation.json'}


def _load_json(path):
    try:
        with open(path, encoding='utf-8') as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise AnnotationError(f'{path}:{err.lineno}: not valid JSON ({err.msg})') from err


def find_annotations(root):
    """{'labels' | 'train' | 'val': path} of the official JSON files."""
    folder = find_folder([root], lambda _, names: PREFIX + FILES['labels'] in names)
    if folder is None:
        raise FileNotFoundError(f'SomethingV2: no {PREFIX}{FILES["labels"]} under {root}')
    paths = {key: osp.join(folder, PREFIX + name) for key, name in FILES.items()}
    for path in paths.values():
        if not osp.isfile(path):
            raise FileNotFoundError(f'SomethingV2: annotation file missing: {path}')
    return paths


def read_labels(path):
    """labels.json -> class names in label order."""
    table = _load_json(path)
    if not isinstance(table, dict):
        raise AnnotationError(f'{path}: expected an object {{"<class>": "<index>"}}')
    by_index = {}
    for name, index in table.items():
        if not str(index).isdigit():
            raise AnnotationError(f'{path}: class {name!r} has index {index!r}, not a number')
        by_index[int(index)] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise AnnotationError(f'{path}: class indices must run from 0 to {len(by_index) - 1}')
    return [by_index[index] for index in range(len(by_index))]


def class_of(entry):
    """'Putting [something] on [something]' -> 'Putting something on something'."""
    return entry['template'].replace('[', '').replace(']', '')


def read_subset(path, label_of, videos):
    entries = _load_json(path)
    if not isinstance(entries, list):
        raise AnnotationError(f'{path}: expected a list of {{"id", "template", ...}} objects')
    samples = []
    for number, entry in enumerate(entries, start=1):
        where = f'{path}: entry {number}'
        if not isinstance(entry, dict) or 'id' not in entry or 'template' not in entry:
            raise AnnotationError(f'{where}: needs "id" and "template", got {entry!r:.200}')
        label = label_of.get(class_of(entry))
        if label is None:
            raise AnnotationError(f'{where}: template {entry["template"]!r} is not a class of '
                                  f'{PREFIX}{FILES["labels"]}')
        video_id = str(entry['id'])
        samples.append(Sample(video_id, label, find_video(videos, video_id), where))
    return samples


def main(argv=None):
    parser = argument_parser(__doc__.split('\n')[0])
    args = parser.parse_args(argv)
    paths = find_annotations(args.root)
    classes = read_labels(paths['labels'])
    label_of = {name: label for label, name in enumerate(classes)}
    videos = index_videos(args.root)
    subsets = {subset: read_subset(paths[subset], label_of, videos) for subset in ('train', 'val')}
    build('sthv2', args.out, {1: subsets}, classes, args.mode, args.workers, args.short_side,
          args.root, flow=args.flow, frame_start=args.frame_start,
          **encoding_options(args))


if __name__ == '__main__':
    sys.exit(run_tool(main))
