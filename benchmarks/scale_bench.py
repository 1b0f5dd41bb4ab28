"""Metafile records at a million lines: parse time, memory, and what forked loader workers do
to it; and a DataTool run over a large folder tree.

    python -m benchmarks.scale_bench [--lines 1000000] [--workers 4] [--datatool-videos 100000]
                                     [--quick]

Records: a Kinetics-like metafile of --lines lines (`<class>/<youtube id>_<start>_<end> <frames>
<label>`, 700 classes) is parsed and checked by today's parser (benchmarks/legacy_records.py:
one frozen dataclass per line) and by ours (datasets.records: a RecordTable), each in a fresh
process. For each:
  parse_s            wall time of check_metafile (parse, frame/label checks, duplicates)
  records_mib        resident memory the records add (RSS after parse and gc.collect(), minus
                     before)
  worker_pss_growth  --workers processes are forked from it (as loader workers were until
                     they started from a clean process, datasets/worker_start.py); after a
                     barrier each reads its PSS (/proc/self/smaps_rollup), looks up every record
                     (path, frames, label), runs gc.collect(), and reads its PSS again after a
                     second barrier. The mean growth, as a fraction of records_mib.
DataTool: --datatool-videos dummy videos in 700 class folders, their frame counts already in
the tool's count cache (a rerun: the figure is the tool's own indexing, not decoding), indexed
by `DataTool/Custom/custom.py --mode video` in a child process: wall time and peak RSS.
Ends with one line:
  scale: lines=N parse_s=.. records_mib=.. worker_pss_growth=.. baseline_parse_s=..
         baseline_records_mib=.. baseline_worker_pss_growth=..
--quick: 3000 lines, 2 workers, 1400 videos (the memory figures are near the noise there).
"""
import argparse
import gc
import json
import multiprocessing
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from benchmarks import quick  # noqa: E402

NUM_CLASSES = 700
MIB = 1024 * 1024


def write_metafile(path, lines, seed=0):
    """Kinetics-like lines: 11-character ids, 6-digit start and end times, 700 class folders."""
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_',
                             dtype=np.uint8)
    ids = alphabet[rng.integers(len(alphabet), size=(lines, 11))].view('S11').ravel()
    labels = rng.integers(NUM_CLASSES, size=lines)
    frames = rng.integers(60, 301, size=lines)
    starts = rng.integers(0, 900, size=lines)
    with open(path, 'w', encoding='utf-8') as handle:
        for i in range(lines):
            handle.write(f'class_{labels[i]:03d}/{ids[i].decode()}_{starts[i]:06d}_'
                         f'{starts[i] + 10:06d}_{i} {frames[i]} {labels[i]}\n')


def memory_kib(field, path='/proc/self/smaps_rollup'):
    with open(path) as handle:
        for line in handle:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in {path}')


def look_up_everything(records):
    """What a loader worker does per sample, for every sample: path, frames and label."""
    total = 0
    for index in range(len(records)):
        record = records[index]
        total += len(record.path) + record.num_frames + record.label
    return total


def worker(records, barrier, results, slot):
    barrier.wait()
    before = memory_kib('Pss')
    barrier.wait()
    look_up_everything(records)
    gc.collect()
    barrier.wait()
    results[slot] = memory_kib('Pss') - before


def measure(kind, meta, workers):
    """One implementation in this (fresh) process: a dict of its figures."""
    import datasets  # noqa: F401 - both: a loader worker's parent has the data pipeline loaded
    if kind == 'legacy':
        from benchmarks.legacy_records import check_metafile
    else:
        from datasets.records import check_metafile
    gc.collect()
    rss_before = memory_kib('Rss')
    started = time.perf_counter()
    records, problems = check_metafile(meta, NUM_CLASSES)
    parse_s = time.perf_counter() - started
    gc.collect()
    records_mib = (memory_kib('Rss') - rss_before) / 1024
    if problems:
        raise RuntimeError(problems[0])
    if kind == 'ours':
        gc.collect()             # what each epoch did before forking its workers (loaders
        gc.freeze()              # start them from a clean process since 2026-12-08)
    context = multiprocessing.get_context('fork')
    barrier, results = context.Barrier(workers), context.Array('q', workers)
    processes = [context.Process(target=worker, args=(records, barrier, results, slot))
                 for slot in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    growth_mib = [value / 1024 for value in results]
    return {'kind': kind, 'records': len(records), 'parse_s': parse_s, 'records_mib': records_mib,
            'worker_growth_mib': growth_mib,
            'worker_pss_growth': float(np.mean(growth_mib)) / max(records_mib, 1e-9)}


def run_child(args):
    output = subprocess.run([sys.executable, '-m', 'benchmarks.scale_bench'] + args, check=True,
                            capture_output=True, text=True,
                            cwd=osp.dirname(osp.dirname(osp.abspath(__file__))))
    return json.loads(output.stdout.strip().splitlines()[-1])


DATATOOL_RUN = """
import resource, sys
from DataTool.Custom.custom import main
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
main(['--root', sys.argv[1], '--out', sys.argv[2], '--mode', 'video', '--workers', '1'])
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def datatool_figure(count, work):
    """Seconds, peak RSS and its growth over the imports (MiB) of the Custom DataTool
    indexing `count` videos, their frame counts cached."""
    from DataTool.common.builder import COUNT_CACHE, _file_key
    root, out = osp.join(work, 'videos'), osp.join(work, 'datatool_out')
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, COUNT_CACHE), 'w', encoding='utf-8') as cache:
        for i in range(count):
            folder = osp.join(root, f'class_{i % NUM_CLASSES:03d}')
            os.makedirs(folder, exist_ok=True)
            video = osp.join(folder, f'video_{i:07d}.mp4')
            with open(video, 'wb') as handle:
                handle.write(b'\0')
            cache.write(f'{_file_key(video)}\t{100 + i % 200}\n')
    started = time.perf_counter()
    report = subprocess.run([sys.executable, '-c', DATATOOL_RUN, root, out], check=True,
                            capture_output=True, text=True,
                            cwd=osp.dirname(osp.dirname(osp.abspath(__file__))))
    seconds = time.perf_counter() - started
    imported_kib, peak_kib = map(int, report.stdout.strip().splitlines()[-1].split())
    with open(osp.join(out, 'meta', 'train_split1.txt')) as train, \
            open(osp.join(out, 'meta', 'val_split1.txt')) as val:
        written = sum(1 for _ in train) + sum(1 for _ in val)
    if written != count:
        raise RuntimeError(f'the DataTool wrote {written} metafile lines for {count} videos')
    return seconds, peak_kib / 1024, (peak_kib - imported_kib) / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--lines', type=int, default=1_000_000)
    parser.add_argument('--workers', type=int, default=4)
    parser.add_argument('--datatool-videos', type=int, default=100_000,
                        help='dummy videos for the DataTool figure (0: leave it out)')
    parser.add_argument('--measure', choices=('legacy', 'ours'), help=argparse.SUPPRESS)
    parser.add_argument('--meta', help=argparse.SUPPRESS)
    args = quick.parse_args(parser, argv, lines=3000, workers=2, datatool_videos=1400)
    if args.measure:
        print(json.dumps(measure(args.measure, args.meta, args.workers)))
        return
    with tempfile.TemporaryDirectory(prefix='scale_bench_') as work:
        meta = osp.join(work, 'train.txt')
        write_metafile(meta, args.lines)
        figures = {kind: run_child(['--measure', kind, '--meta', meta, '--workers', str(args.workers)])
                   for kind in ('legacy', 'ours')}
        print(f'{args.lines} metafile lines ({osp.getsize(meta) / MIB:.0f} MiB), {args.workers} '
              f'forked workers, each looking up every record')
        print('| records | parse + check (s) | resident (MiB) | worker PSS growth (MiB, mean) '
              '| growth / records |')
        print('|---|---|---|---|---|')
        for kind, name in (('legacy', 'today: a VideoRecord per line'),
                           ('ours', 'RecordTable (arrays + path buffer)')):
            f = figures[kind]
            print(f"| {name} | {f['parse_s']:.2f} | {f['records_mib']:.0f} | "
                  f"{np.mean(f['worker_growth_mib']):.1f} | {f['worker_pss_growth']:.3f} |")
        ours, old = figures['ours'], figures['legacy']
        print(f"ratios (today / ours): parse {old['parse_s'] / ours['parse_s']:.1f}x, memory "
              f"{old['records_mib'] / max(ours['records_mib'], 1e-9):.1f}x, worker growth "
              f"{np.mean(old['worker_growth_mib']) / max(np.mean(ours['worker_growth_mib']), 1e-3):.0f}x")
        if args.datatool_videos:
            seconds, peak, growth = datatool_figure(args.datatool_videos, work)
            print(f'DataTool (Custom, video mode, counts cached): {args.datatool_videos} videos '
                  f'indexed and metafiles written in {seconds:.1f} s, peak RSS {peak:.0f} MiB '
                  f'({growth:.0f} MiB over the imports, {growth * MIB / args.datatool_videos:.0f} '
                  f'bytes per video)')
    print(f"scale: lines={args.lines} parse_s={ours['parse_s']:.2f} "
          f"records_mib={ours['records_mib']:.1f} worker_pss_growth={ours['worker_pss_growth']:.3f} "
          f"baseline_parse_s={old['parse_s']:.2f} baseline_records_mib={old['records_mib']:.1f} "
          f"baseline_worker_pss_growth={old['worker_pss_growth']:.3f}")


if __name__ == '__main__':
    main()
