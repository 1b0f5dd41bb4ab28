"""ActivityNet v1.3, trimmed -> metafiles: one sample per annotated segment, cut by time.

    python -m DataTool.ActivityNet.activitynet --root ~/datasets/activitynet --out data/activitynet

--root holds `activity_net.v1-3.min.json` and the videos `v_<id>.mp4` (or .mkv/.webm) anywhere
below it. Every segment [t0, t1] (seconds) of a training or validation video becomes one
sample `v_<id>_<k>`: its frames in frames mode, a clip `clips/v_<id>_<k>.mp4` in video mode.
Segments are clipped to the video's duration; a segment with nothing left is reported.
Labels are sorted and numbered from 0 (200 classes).

--untrimmed: one sample per whole video `v_<id>`, labelled with its activity (the label that
covers most of its annotated time), for untrimmed classification as in the ActivityNet
challenge: `evaluate.py --untrimmed` (top1, top3, mAP). Use another --out than the trimmed set.
"""
import json
import os.path as osp
import sys

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from DataTool.common.builder import (AnnotationError, Sample, argument_parser, build,  # noqa: E402
                                     encoding_options,
                                     find_folder, find_video, index_videos, run_tool)

ANNOTATION_FILE = 'activity_net.v1-3.min.json'
SUBSETS = {'training': 'train', 'validation': 'val'}


def find_annotations(root):
    folder = find_folder([root], lambda _, names: ANNOTATION_FILE in names)
    if folder is None:
        raise FileNotFoundError(f'ActivityNet: no {ANNOTATION_FILE} under {root}')
    return osp.join(folder, ANNOTATION_FILE)


def read_segments(path):
    """[(subset, video id, segment number, t0, t1, label name, duration)] of the JSON file."""
    try:
        with open(path, encoding='utf-8') as handle:
            database = json.load(handle)['database']
    except json.JSONDecodeError as err:
        raise AnnotationError(f'{path}:{err.lineno}: not valid JSON ({err.msg})') from err
    except (KeyError, TypeError):
        raise AnnotationError(f'{path}: expected an object with a "database" key') from None
    segments = []
    for video_id, entry in sorted(database.items()):
        subset = SUBSETS.get(entry.get('subset'))
        if subset is None:
            continue
        for number, annotation in enumerate(entry.get('annotations', [])):
            try:
                start, end = (float(t) for t in annotation['segment'])
                label = annotation['label']
            except (KeyError, TypeError, ValueError):
                raise AnnotationError(f'{path}: video {video_id} annotation {number}: needs '
                                      f'"segment": [t0, t1] and "label", got {annotation!r:.200}') from None
            duration = float(entry.get('duration') or 0) or None
            segments.append((subset, video_id, number, start, end, label, duration))
    return segments


def untrimmed_samples(segments, label_of, videos, path):
    """{'train': [...], 'val': [...]}: one Sample per video, its activity the label that
    covers the most annotated time."""
    time_per_label = {}
    for subset, video_id, _, start, end, label, duration in segments:
        end = min(end, duration) if duration else end
        key = (subset, video_id)
        time_per_label.setdefault(key, {}).setdefault(label, 0.0)
        time_per_label[key][label] += max(0.0, end - start)
    subsets = {'train': [], 'val': []}
    for (subset, video_id), times in time_per_label.items():
        label = max(sorted(times), key=lambda name: times[name])
        subsets[subset].append(Sample(f'v_{video_id}', label_of[label], find_video(videos, f'v_{video_id}', video_id),
                                      f'{path}: video {video_id}'))
    return subsets


def main(argv=None):
    parser = argument_parser(__doc__.split('\n')[0])
    parser.add_argument('--untrimmed', action='store_true',
                        help='one sample per whole video, labelled with its activity')
    args = parser.parse_args(argv)
    path = find_annotations(args.root)
    segments = read_segments(path)
    classes = sorted({label for _, _, _, _, _, label, _ in segments})
    label_of = {name: index for index, name in enumerate(classes)}
    videos = index_videos(args.root)
    if args.untrimmed:
        build('activitynet', args.out, {1: untrimmed_samples(segments, label_of, videos, path)}, classes,
              args.mode, args.workers, args.short_side, args.root, flow=args.flow,
              frame_start=args.frame_start, **encoding_options(args))
        return
    subsets = {'train': [], 'val': []}
    for subset, video_id, number, start, end, label, duration in segments:
        end = min(end, duration) if duration else end
        where = f'{path}: video {video_id} segment {number} [{start:g}, {end:g}] s'
        video = find_video(videos, f'v_{video_id}', video_id)
        subsets[subset].append(Sample(f'v_{video_id}_{number}', label_of[label], video, where,
                                      start=max(0.0, start), end=end))
    build('activitynet', args.out, {1: subsets}, classes, args.mode, args.workers,
          args.short_side, osp.join(args.out, 'clips'), flow=args.flow, frame_start=args.frame_start,
          **encoding_options(args))


if __name__ == '__main__':
    sys.exit(run_tool(main))
