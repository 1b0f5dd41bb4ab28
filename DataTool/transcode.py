"""Re-encode a metafile's videos for fast training: short side, a keyframe every few frames.

    python -m DataTool.transcode --meta train.txt val.txt --root VIDEOS --out FAST \
        [--short-side 256] [--gop 8] [--crf 23] [--codec h264] [--workers N]

Downloaded videos usually have a keyframe every 2 to 10 seconds: to reach a sampled frame the
loader decodes every frame from the keyframe before it, so a training clip costs hundreds of
decoded frames. After transcoding it costs at most --gop per sampled frame, and frames larger
than the training size are no longer decoded at full size. Each video is decoded as a player
shows it (rotation applied, timestamps kept), re-encoded in parallel, verified by decoding it
whole, and only then given its name; a rerun skips the videos already done. Sound is dropped.

Written under --out: the videos at the metafile's paths (the extension the codec's: .mp4,
.webm for vp9), one metafile per --meta with the same name (frame counts of the new files,
labels as they were), classInd.txt when one lies beside the metafiles, transcode_report.json
(sizes before and after, every video that failed and why) and transcode_failed.txt.
Frame folders need no transcoding: their lines are left out and counted.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
from dataclasses import asdict

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from DataTool.common.jobs import ResultLog, file_key, run_parallel  # noqa: E402
from DataTool.common.metafile import write_metafile  # noqa: E402
from DataTool.common.transcoding import (TranscodeSettings, add_encoding_options,  # noqa: E402
                                         transcode_video)
from datasets.records import NO_LABEL, check_metafile  # noqa: E402

RESULTS = '.transcode_results.jsonl'


def output_name(path, extension):
    """The new file's path under --out for the metafile path `path`: the same folders, the
    codec's extension."""
    stem, _ = osp.splitext(path)
    return stem + extension


def inside(root, path):
    """Whether `path` (relative to `root`) stays inside it: metafiles are data from elsewhere,
    and '../x' or '/x' must not make us write outside --out."""
    if osp.isabs(path):
        return False
    full = osp.normpath(osp.join(root, path))
    return full == osp.normpath(root) or full.startswith(osp.normpath(root) + os.sep)


def transcode_job(job):
    """One video: {'key', 'source', 'output', 'frames', 'source_bytes', 'output_bytes'} or with
    'error' (plain words) instead of the counts."""
    key, source, output, settings, threads = job
    result = {'key': key, 'source': source, 'output': output}
    try:
        frames = transcode_video(source, output, settings, threads=threads)
    except Exception as err:  # noqa: BLE001 - any failure is this video's, reported with it
        result['error'] = ' '.join(str(err).split()) or type(err).__name__
        return result
    result.update(frames=frames, source_bytes=osp.getsize(source),
                  output_bytes=osp.getsize(output))
    return result


def read_metafiles(paths):
    """{metafile: records} of every --meta (labelled or not); the problems of all, as lines."""
    tables, problems = {}, []
    for path in paths:
        records, found = check_metafile(path, labelled=False)
        tables[path] = records
        problems += found
    return tables, problems


def plan(tables, root, out, settings):
    """({source path: output path} of every video to make, {metafile: [(line, reason)]} of
    lines left out before transcoding)."""
    todo, left_out, taken = {}, {}, set()
    for metafile, records in tables.items():
        left_out[metafile] = []
        for record in records:
            source = osp.join(root, record.path)
            if not record.is_video and osp.isdir(source):
                left_out[metafile].append((record.where, 'a frame folder: nothing to transcode'))
            elif not inside(root, record.path):
                left_out[metafile].append((record.where, f'{record.path} leaves --root'))
            elif source not in todo:
                output = osp.join(out, output_name(record.path, settings.extension))
                if output in taken:         # a.avi and a.mp4 both listed: a.avi.mp4
                    output = osp.join(out, record.path + settings.extension)
                taken.add(output)
                todo[source] = output
    return todo, left_out


def write_outputs(tables, root, out, results, left_out):
    """One metafile per input metafile, naming the new files; returns {metafile: lines}."""
    written = {}
    for metafile, records in tables.items():
        rows = []
        for record in records:
            result = results.get(osp.join(root, record.path))
            if result is None or 'error' in result:
                continue
            label = None if record.label == NO_LABEL else record.label
            rows.append((osp.relpath(result['output'], out), result['frames'], label))
        name = osp.join(out, osp.basename(metafile))
        write_metafile(name, rows)
        written[name] = len(rows)
        classes = osp.join(osp.dirname(metafile), 'classInd.txt')
        if osp.isfile(classes) and not osp.exists(osp.join(out, 'classInd.txt')):
            shutil.copyfile(classes, osp.join(out, 'classInd.txt'))
    return written


def summarise(results, settings, written, left_out, problems, out):
    done = [r for r in results.values() if 'error' not in r]
    failed = [r for r in results.values() if 'error' in r]
    before = sum(r['source_bytes'] for r in done)
    after = sum(r['output_bytes'] for r in done)
    report = {
        'settings': asdict(settings),
        'videos': len(done), 'failed': len(failed),
        'source_bytes': before, 'output_bytes': after,
        'size_ratio': after / before if before else None,
        'metafiles': written,
        'failures': [{'source': r['source'], 'reason': r['error']} for r in failed],
        'left_out': {meta: [{'line': where, 'reason': why} for where, why in lines]
                     for meta, lines in left_out.items() if lines},
        'metafile_problems': problems,
    }
    with open(osp.join(out, 'transcode_report.json'), 'w', encoding='utf-8') as handle:
        json.dump(report, handle, indent=1)
    with open(osp.join(out, 'transcode_failed.txt'), 'w', encoding='utf-8') as handle:
        handle.writelines(f"{r['source']}\t{r['error']}\n" for r in failed)
    print(f'transcoded {len(done)} videos to a short side of {settings.short_side or "as stored"} '
          f'and a keyframe every {settings.gop} frames ({settings.codec}, crf {settings.crf})')
    if before:
        print(f'size: {before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB after '
              f'({after / before:.2f}x)')
    if failed:
        print(f'{len(failed)} videos failed and are left out of the new metafiles; listed with '
              f'the reason in {osp.join(out, "transcode_failed.txt")}')
    skipped = sum(len(lines) for lines in left_out.values()) + len(problems)
    if skipped:
        print(f'{skipped} metafile lines left out (frame folders, paths outside --root, bad '
              f'lines); see {osp.join(out, "transcode_report.json")}')
    metas = list(written)
    print(f'train with: DATASET.VIDEO_SEQ_PATH {out} DATASET.TRAIN_META_PATH {metas[0]}'
          + (f' DATASET.VAL_META_PATH {metas[1]}' if len(metas) > 1 else ''))
    return report


def argument_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--meta', nargs='+', required=True, help='metafile(s) to transcode')
    parser.add_argument('--root', required=True, help='the folder the metafile paths are under')
    parser.add_argument('--out', required=True, help='where the new videos and metafiles go')
    parser.add_argument('--short-side', type=int, default=TranscodeSettings.short_side,
                        help='the shorter side of the new videos (0 keeps it; never enlarged)')
    add_encoding_options(parser, 'the new videos')
    parser.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help='videos encoded at once')
    return parser


def main(argv=None):
    parser = argument_parser()
    args = parser.parse_args(argv)
    try:
        settings = TranscodeSettings(args.short_side, args.gop, args.crf, args.codec)
    except ValueError as err:
        parser.error(str(err))
    for path in args.meta:
        if not osp.isfile(path):
            parser.error(f'--meta {path}: no such file')
    if not osp.isdir(args.root):
        parser.error(f'--root {args.root}: no such folder')
    if osp.abspath(args.out) == osp.abspath(args.root):
        parser.error('--out must differ from --root: the new videos would replace the old')
    os.makedirs(args.out, exist_ok=True)
    tables, problems = read_metafiles(args.meta)
    todo, left_out = plan(tables, args.root, args.out, settings)
    log = ResultLog(osp.join(args.out, RESULTS))
    results, jobs = {}, []
    threads = 1 if args.workers > 1 else 0
    for source, output in todo.items():
        key = f'{file_key(source)}|{settings}'
        earlier = log.done.get(key)
        if earlier and 'error' not in earlier and osp.isfile(output) and \
                osp.getsize(output) == earlier['output_bytes']:
            results[source] = earlier
        else:
            jobs.append((key, source, output, settings, threads))
    try:
        for result in run_parallel(transcode_job, jobs, args.workers, 'transcoding'):
            results[result['source']] = result
            log.add(result)
    finally:
        log.close()
    written = write_outputs(tables, args.root, args.out, results, left_out)
    summarise(results, settings, written, left_out, problems, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
