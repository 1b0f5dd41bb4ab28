"""From a dataset's samples to ready metafiles: the part every dataset tool shares.

A tool reads its official annotations into `Sample`s (one list per split and subset) and
calls `build`. In frames mode every sample's frames are extracted to `out/frames/<name>/`; in
video mode the metafile points at the video files (or at clips cut from them, for samples
that are time segments). The work runs in parallel with a progress bar, a rerun skips what is
finished, and samples that are missing, unreadable or empty are left out of the metafiles and
listed in `out/skipped.txt`, with a summary printed at the end.

Written under `out`:
    meta/train_split{N}.txt, meta/val_split{N}.txt    `<path> <num_frames> <label>`
    meta/classInd.txt                                  `<index> <class name>`, 0-based
    dataset_split{N}.yaml                              the config keys that point train.py here
    skipped.txt                                        `<reason>\t<sample>\t<video>\t<detail>`
    frames/<name>/img_00001.jpg ...                    frames mode
    frames/<name>/flow_x_00001.jpg, flow_y_...         --flow; listed in meta/*_flow.txt and
                                                       described by dataset_split{N}_flow.yaml
    clips/<name>.mp4                                   video mode, time segments only
    videos/<name>.mp4                                  video mode with --transcode

--transcode (video mode) re-encodes every video to the short side and a keyframe every
--gop frames (DataTool.common.transcoding), so the loader reaches a sampled frame by decoding
at most that many; the clips cut from time segments are always encoded that way.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

import yaml

from DataTool.common.archives import DEFAULT_MAX_RATIO, DEFAULT_MAX_TOTAL_BYTES, ArchiveError
from DataTool.common.flow import extract_flow, finished_flow_count, flow_algorithm_note
from DataTool.common.frames import extract_frames, finished_frame_count
from DataTool.common.jobs import run_parallel
from DataTool.common.metafile import write_class_index, write_metafile
from DataTool.common.transcoding import (NothingToWrite, TranscodeSettings, add_encoding_options,
                                         transcode_video)
from DataTool.pack import parse_size
from datasets.records import VIDEO_EXTENSIONS
from datasets.video_reader import count_video_frames

SUBSETS = ('train', 'val')
COUNT_CACHE = '.video_frame_counts.tsv'


class AnnotationError(ValueError):
    """An official annotation file that cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)     # slots: 650 k of them for Kinetics-700
class Sample:
    name: str                     # output name: frames/<name>/ and clips/<name>.mp4
    label: int
    video: Optional[str]          # the source video file; None when it could not be found
    origin: str = field(default='', compare=False)   # 'annotation file:line', for the report
    start: Optional[float] = None  # seconds: only this part of the video (ActivityNet)
    end: Optional[float] = None

    @property
    def is_segment(self):
        return self.start is not None


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str
    path: str = ''                # metafile path (relative to the dataset's VIDEO_SEQ_PATH)
    num_frames: int = 0
    skip_reason: str = ''         # 'missing', 'unreadable' or 'empty'
    detail: str = ''
    flow_frames: int = 0          # flow fields extracted (--flow), 0 = none


# ---------------------------------------------------------------- one sample
def _prepare_frames(sample, out, short_side, flow=False, frame_start=1):
    """(frame folder name, frames, flow fields): extracted now or by an earlier run."""
    frame_dir = osp.join(out, 'frames', sample.name)
    count = finished_frame_count(frame_dir)
    if count is None:
        count = extract_frames(sample.video, frame_dir, short_side=short_side,
                               start=sample.start, end=sample.end, frame_start=frame_start)
    if count == 0:
        shutil.rmtree(frame_dir, ignore_errors=True)
        return sample.name, 0, 0
    flow_count = 0
    if flow:
        flow_count = finished_flow_count(frame_dir)
        if flow_count is None:
            flow_count = extract_flow(sample.video, frame_dir, short_side=short_side,
                                      start=sample.start, end=sample.end, frame_start=frame_start)
    return sample.name, count, flow_count


def _encoded_video(sample, out, folder, encoding):
    """(metafile path, frames) of `sample` re-encoded with `encoding` into out/<folder>/ (its
    time segment only, when it has one): made now, or found finished by an earlier run."""
    video = osp.join(out, folder, sample.name + encoding.extension)
    if osp.isfile(video):           # only finished, verified files have the final name
        return osp.relpath(video, osp.join(out, folder)), count_video_frames(video)
    try:
        count = transcode_video(sample.video, video, encoding, sample.start, sample.end, threads=1)
    except NothingToWrite:          # a segment past the video's end: skipped as empty
        count = 0
    return osp.relpath(video, osp.join(out, folder)), count


def prepare_sample(sample, mode, out, short_side, video_root, flow=False, frame_start=1,
                   transcode=False, encoding=TranscodeSettings()):
    """Extract or count one sample; an Outcome either way (exceptions become skips).
    `transcode`: video mode re-encodes the video with `encoding` into out/videos/ (segments
    always go to out/clips/, encoded so)."""
    if not sample.video or not osp.isfile(sample.video):
        return Outcome(sample.name, skip_reason='missing', detail=sample.origin)
    if osp.getsize(sample.video) == 0:
        return Outcome(sample.name, skip_reason='empty', detail='0-byte file')
    if sample.is_segment and sample.end <= sample.start:
        return Outcome(sample.name, skip_reason='empty',
                       detail=f'{sample.origin}: nothing left within the video duration')
    flow_count = 0
    try:
        if mode == 'frames':
            path, count, flow_count = _prepare_frames(sample, out, short_side, flow, frame_start)
        elif sample.is_segment or transcode:
            path, count = _encoded_video(sample, out, 'clips' if sample.is_segment else 'videos',
                                         encoding)
        else:
            path, count = osp.relpath(sample.video, video_root), count_video_frames(sample.video)
    except Exception as err:  # noqa: BLE001 - any decoder failure means an unreadable file
        message = ' '.join(str(err).split()) or type(err).__name__
        return Outcome(sample.name, skip_reason='unreadable', detail=f'{type(err).__name__}: {message}')
    if not count:
        return Outcome(sample.name, skip_reason='empty', detail='no decodable frame')
    return Outcome(sample.name, path, int(count), flow_frames=int(flow_count))


def _prepare_job(job):
    """(Outcome, the count-cache line to append or None): the cache line is made here, where
    the sample is at hand, so the parent keeps no name -> sample table."""
    sample, mode = job[0], job[1]
    outcome = prepare_sample(*job)
    cacheable = (mode == 'video' and not outcome.skip_reason and not sample.is_segment
                 and not job[7])          # transcoded: the count is the new file's
    return outcome, (f'{_file_key(sample.video)}\t{outcome.num_frames}\n' if cacheable else None)


# ---------------------------------------------------------------- video-mode frame counts
def _file_key(path):
    stat = os.stat(path)
    return f'{osp.abspath(path)}\t{stat.st_size}\t{int(stat.st_mtime)}'


def _read_count_cache(out):
    cache = {}
    path = osp.join(out, COUNT_CACHE)
    if osp.isfile(path):
        with open(path, encoding='utf-8') as handle:
            for line in handle:
                key, _, count = line.rstrip('\n').rpartition('\t')
                if key and count.isdigit():
                    cache[key] = int(count)
    return cache


# ---------------------------------------------------------------- the whole dataset
def run_samples(samples, mode, out, short_side, video_root, workers, desc, flow=False, frame_start=1,
                transcode=False, encoding=TranscodeSettings()):
    """Outcome per sample name, in parallel; finished work is reused. Jobs are made one at a
    time as the workers take them, so no second per-video list is held."""
    cache = _read_count_cache(out) if mode == 'video' and not transcode else {}
    outcomes, pending = {}, []           # pending: positions in `samples` still to prepare
    for position, sample in enumerate(samples):
        unsegmented_video = (mode == 'video' and not transcode and not sample.is_segment
                             and sample.video and osp.isfile(sample.video))
        cached = cache.get(_file_key(sample.video)) if unsegmented_video and cache else None
        if cached is None:
            pending.append(position)
        else:
            outcomes[sample.name] = Outcome(sample.name, osp.relpath(sample.video, video_root), cached)
    del cache
    jobs = ((samples[i], mode, out, short_side, video_root, flow, frame_start, transcode, encoding)
            for i in pending)

    with open(osp.join(out, COUNT_CACHE), 'a', encoding='utf-8') as cache_file:
        for outcome, cache_line in run_parallel(_prepare_job, jobs, workers, desc, len(pending),
                                                chunksize=16):
            outcomes[outcome.name] = outcome
            if cache_line:
                cache_file.write(cache_line)
                cache_file.flush()          # a crash loses no count already made
    return outcomes


def _unique_samples(splits):
    seen = {}
    for subsets in splits.values():
        for subset in SUBSETS:
            for sample in subsets[subset]:
                earlier = seen.setdefault(sample.name, sample)
                if earlier != sample:
                    raise AnnotationError(f'two different samples are both named {sample.name!r}: '
                                          f'{earlier.origin} and {sample.origin}')
    return list(seen.values())


def write_skip_report(path, samples, outcomes):
    skipped = [(outcomes[s.name], s) for s in samples if outcomes[s.name].skip_reason]
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('# reason\tsample\tvideo\tdetail\n')
        for outcome, sample in sorted(skipped, key=lambda pair: (pair[0].skip_reason, pair[1].name)):
            handle.write(f'{outcome.skip_reason}\t{sample.name}\t{sample.video or "-"}\t'
                         f'{outcome.detail}\n')
    return Counter(outcome.skip_reason for outcome, _ in skipped)


def write_dataset_config(path, name, out, mode, split, num_classes, video_root, suffix='',
                         frame_start=1):
    """The config overrides that point train.py and evaluate.py at this output (suffix
    '_flow': at the flow metafiles, with MODALITY Flow)."""
    settings = {'DATASET': {
        'NAME': name,
        'INPUT_TYPE': mode,
        'VIDEO_SEQ_PATH': osp.abspath(osp.join(out, 'frames') if mode == 'frames' else video_root),
        'TRAIN_META_PATH': osp.abspath(osp.join(out, 'meta', f'train_split{split}{suffix}.txt')),
        'VAL_META_PATH': osp.abspath(osp.join(out, 'meta', f'val_split{split}{suffix}.txt')),
        'CLASS_NUM': num_classes,
        'FRAME_START': frame_start,
    }}
    if suffix == '_flow':
        settings['MODALITY'] = 'Flow'
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(f'# Written by the {name} DataTool: use with --cfg next to a preset.\n')
        yaml.safe_dump(settings, handle, sort_keys=False)


def build(name, out, splits, class_names, mode='frames', workers=1, short_side=256,
          video_root=None, flow=False, frame_start=1, transcode=False, gop=8, crf=23,
          codec='h264'):
    """Prepare every sample and write the metafiles; returns {split: {subset: count}}.

    splits: {N: {'train': [Sample], 'val': [Sample]}}. video_root: the folder the video-mode
    metafile paths are relative to (the dataset's video folder); segments go to out/clips.
    flow: also extract optical flow (frames mode), listed in meta/{subset}_split{N}_flow.txt.
    frame_start: the number of each folder's first frame file (1, or 0 as DLAC's folders).
    transcode: video mode re-encodes every video into out/videos (short side `short_side`, a
    keyframe every `gop` frames, `crf`, `codec`); segments are cut with the same settings.
    """
    if mode not in ('frames', 'video'):
        raise ValueError(f"mode must be 'frames' or 'video', got {mode!r}")
    if flow and mode != 'frames':
        raise AnnotationError('--flow extracts flow frames: it needs --mode frames')
    if flow:
        print(flow_algorithm_note())
    os.makedirs(out, exist_ok=True)
    samples = _unique_samples(splits)
    if transcode and mode != 'video':
        raise AnnotationError('--transcode re-encodes the videos the metafiles point at: it '
                              'needs --mode video')
    try:
        encoding = TranscodeSettings(short_side, gop, crf, codec)
    except ValueError as err:
        raise AnnotationError(f'--short-side/--gop/--crf/--codec: {err}') from None
    if mode == 'video' and any(sample.is_segment for sample in samples):
        video_root = osp.join(out, 'clips')
    elif transcode:
        video_root = osp.join(out, 'videos')
    outcomes = run_samples(samples, mode, out, short_side, video_root, workers,
                           desc=f'{name}: {"extracting frames" if mode == "frames" else "reading videos"}',
                           flow=flow, frame_start=frame_start, transcode=transcode,
                           encoding=encoding)
    skipped = write_skip_report(osp.join(out, 'skipped.txt'), samples, outcomes)
    meta = osp.join(out, 'meta')
    write_class_index(osp.join(meta, 'classInd.txt'), class_names)
    counts = {}
    for split, subsets in sorted(splits.items()):
        counts[split] = {}
        for subset in SUBSETS:
            rows = sum(1 for s in subsets[subset] if not outcomes[s.name].skip_reason)
            if not rows:
                raise AnnotationError(f'{name} split {split}: no usable {subset} sample '
                                      f'({len(subsets[subset])} listed); see {out}/skipped.txt')
            write_metafile(osp.join(meta, f'{subset}_split{split}.txt'),
                           ((outcomes[s.name].path, outcomes[s.name].num_frames, s.label)
                            for s in subsets[subset] if not outcomes[s.name].skip_reason))
            counts[split][subset] = rows
            if flow:
                write_metafile(osp.join(meta, f'{subset}_split{split}_flow.txt'),
                               [(outcomes[s.name].path, outcomes[s.name].flow_frames, s.label)
                                for s in subsets[subset] if outcomes[s.name].flow_frames])
        write_dataset_config(osp.join(out, f'dataset_split{split}.yaml'), name, out, mode, split,
                             len(class_names), video_root, frame_start=frame_start)
        if flow:
            write_dataset_config(osp.join(out, f'dataset_split{split}_flow.yaml'), name, out,
                                 mode, split, len(class_names), video_root, suffix='_flow',
                                 frame_start=frame_start)
    _print_summary(name, out, counts, skipped)
    return counts


def _print_summary(name, out, counts, skipped):
    for split, subsets in counts.items():
        print(f'{name} split {split}: ' + ', '.join(f'{n} {s}' for s, n in subsets.items()))
    if skipped:
        print(f'skipped {sum(skipped.values())} samples (' +
              ', '.join(f'{n} {reason}' for reason, n in sorted(skipped.items())) +
              f'); listed in {osp.join(out, "skipped.txt")}')
    else:
        print('skipped no sample')
    presets = _presets_for(name)
    for split in counts:
        preset = presets[0] if len(presets) == 1 else 'experiments/<preset>.yaml'
        print(f'train with: bash Script/run_train_dp_m.sh --cfg {preset} '
              f'--cfg {osp.join(out, f"dataset_split{split}.yaml")}')
    if len(presets) > 1:
        print(f'presets for {name}: ' + ', '.join(presets))


def _presets_for(name):
    """The experiments/*.yaml presets whose DATASET.NAME is this tool's dataset name."""
    folder = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'experiments')
    found = []
    for file_name in sorted(os.listdir(folder)) if osp.isdir(folder) else ():
        if file_name.endswith('.yaml'):
            try:        # a hint after the work is done: a preset it cannot read is left out
                with open(osp.join(folder, file_name), encoding='utf-8') as handle:
                    preset = yaml.safe_load(handle)
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            dataset = preset.get('DATASET') if isinstance(preset, dict) else None
            if isinstance(dataset, dict) and dataset.get('NAME') == name:
                found.append(f'experiments/{file_name}')
    return found


# ---------------------------------------------------------------- command line
def argument_parser(description, splits=(1,), unpacks_archives=False):
    """The options every dataset tool shares; unpacks_archives: and the limits on unpacking
    the downloaded archives (read them with `unpack_limits`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--root', required=True, help='folder holding the downloaded files')
    parser.add_argument('--out', required=True, help='where frames, metafiles and reports go')
    parser.add_argument('--mode', choices=('frames', 'video'), default='frames',
                        help='extract JPEG frames, or point the metafiles at the videos')
    if len(splits) > 1:
        parser.add_argument('--split', type=int, nargs='+', default=[1], choices=splits,
                            help='official split(s) to write')
    parser.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help='parallel extraction processes')
    parser.add_argument('--short-side', type=int, default=256,
                        help='resize frames (and cut clips) to this short side; 0 keeps the size')
    parser.add_argument('--flow', action='store_true',
                        help='also extract optical flow (frames mode): flow_x/flow_y_00001.jpg')
    parser.add_argument('--frame-start', type=int, choices=(0, 1), default=1,
                        help="number of each folder's first frame file: 1 (img_00001.jpg) or 0 "
                             "(img_00000.jpg, the original DLAC's folders); DATASET.FRAME_START")
    parser.add_argument('--transcode', action='store_true',
                        help='video mode: re-encode every video to --short-side with a keyframe '
                             'every --gop frames, for fast random access (see DataTool.transcode)')
    add_encoding_options(parser, 're-encoded videos (--transcode, clips cut from time segments)')
    if unpacks_archives:
        parser.add_argument('--max-unpacked-size', type=parse_size, metavar='SIZE',
                            default=DEFAULT_MAX_TOTAL_BYTES,
                            help='refuse to unpack more than this from the downloaded archives, '
                                 'inner archives included (e.g. 2TB; units of 1024; default 1TB)')
        parser.add_argument('--max-ratio', type=_positive_number, metavar='X',
                            default=DEFAULT_MAX_RATIO,
                            help='refuse an archive that unpacks to more than X times its size, '
                                 f'as a zip bomb does (default {DEFAULT_MAX_RATIO:g}; videos and '
                                 'JPEG frames unpack to about their own size)')
    return parser


def encoding_options(args):
    """The `build` keyword arguments that --transcode, --gop, --crf and --codec set."""
    return {'transcode': args.transcode, 'gop': args.gop, 'crf': args.crf, 'codec': args.codec}


def unpack_limits(args):
    """The `unpack` keyword arguments that --max-unpacked-size and --max-ratio set."""
    return {'max_total_bytes': args.max_unpacked_size, 'max_ratio': args.max_ratio}


def _positive_number(text):
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not value > 0:
        raise argparse.ArgumentTypeError(f'expected a number above 0, got {text!r}')
    return value


def run_tool(main, argv=None):
    """Run a tool's main(argv): exit 2 with the message for a bad download or annotation."""
    try:
        main(argv)
    except (AnnotationError, ArchiveError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    return 0


def find_folder(bases, accept):
    """The first folder under any of `bases` (themselves included, top-down) for which
    accept(folder, file and folder names in it) is true, else None."""
    for base in bases:
        if osp.isdir(base):
            for folder, dirs, files in os.walk(base):
                dirs.sort()
                if accept(folder, dirs + files):
                    return folder
    return None


def find_class_folders(bases, classes):
    """The folder under `bases` holding one sub-folder per class (checked on the first and last
    class name), else None."""
    return find_folder(bases, lambda folder, names: all(
        osp.isdir(osp.join(folder, name)) for name in (classes[0], classes[-1])))


def find_video(index, *stems):
    """The first of `stems` that names a video in `index` ({lowercase stem: path}), else None."""
    for stem in stems:
        found = index.get(stem.lower())
        if found:
            return found
    return None


def index_videos(root):
    """{lowercase file stem: path} of every video under `root` (one walk, for datasets whose
    videos may sit in per-class folders or flat)."""
    index = {}
    for folder, _, names in os.walk(root):
        for file_name in names:
            stem, extension = osp.splitext(file_name)
            if extension.lower() in VIDEO_EXTENSIONS and not file_name.endswith('.part.mp4'):
                index.setdefault(stem.lower(), osp.join(folder, file_name))
    return index
