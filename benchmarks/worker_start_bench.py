"""What starting loader workers from a clean process costs: 'forkserver' (ours,
datasets/worker_start.py) against 'fork' (the baseline: what the loaders did before, and what
hangs once the parent has decoded video with some PyAV builds), measured in the same run.

    python -m benchmarks.worker_start_bench [--rounds 5] [--workers 2] [--data DIR] [--quick]

Each measurement runs in a fresh interpreter, as a training run starts: it builds a
VideoDataset over the rendered synthetic set's frame folders (JPEG, so that the 'fork'
baseline cannot hang whatever the PyAV version) and, for SuperLoader and DataLoaderX with
`--workers` workers, times
- first batch, first loader: from iter(loader) to the first batch, the forkserver's own start
  (a fresh interpreter importing torch, cv2, av, ...) included;
- first batch, next loader: the same for a second loader in the same process (the server is
  already running: what every validation loader and, with DataLoaderX, every epoch pays);
- epoch: one more whole epoch (SuperLoader's workers are already running; DataLoaderX starts
  its workers again every epoch, as torch's DataLoader does without persistent_workers).
Medians over --rounds fresh interpreters. Also the bytes of the dataset pickled to each worker
(with 'fork' nothing is copied until written). Last line:
`worker_start: first_batch_s=.. baseline_first_batch_s=.. next_loader_s=.. baseline_next_loader_s=.. ratio=..`
(SuperLoader's figures; ratio = first_batch_s / baseline_first_batch_s).
"""
import argparse
import json
import os.path as osp
import pickle
import subprocess
import sys
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.quick import parse_args  # noqa: E402

METHODS = ('fork', 'forkserver')
LOADERS = ('SuperLoader', 'DataLoaderX')
BATCH = 4


def make_data(folder, quick):
    """The synthetic set (rendered once into `folder`); returns its training metafile."""
    from DataTool.Synthetic.synthetic import generate
    generate(folder, seed=0, videos_per_class=(2, 1) if quick else (4, 1), frame_range=(16, 16),
             show_progress=False)
    return osp.join(folder, 'MetafileSeq', 'train_split1.txt')


def measure(meta, loader_name, method, workers):
    """In a fresh interpreter: {first, next, epoch (s), pickled (bytes)}."""
    from datasets import (DataLoaderX, SuperLoader, VideoDataset, build_transform,
                          parse_metafile)
    from config import default_config
    from datasets.worker_start import worker_context
    if method == 'forkserver':
        method = worker_context()            # what the loaders get from build_loader
    cfg = default_config()
    cfg.DATASET.SCALE_SIZE, cfg.DATASET.CROP_SIZE = 72, 64
    dataset = VideoDataset(parse_metafile(meta), osp.join(osp.dirname(osp.dirname(meta)), 'VideoSeq'),
                           'train', build_transform(cfg, 'train'), num_segments=3, seed=0)

    def loader():
        if loader_name == 'SuperLoader':
            return SuperLoader(dataset, batch_size=BATCH, num_workers=workers,
                               multiprocessing_context=method)
        return DataLoaderX(dataset, batch_size=BATCH, num_workers=workers,
                           multiprocessing_context=method)

    def first_batch(made):
        started = time.perf_counter()
        iterator = iter(made)
        next(iterator)
        elapsed = time.perf_counter() - started
        for _ in iterator:        # finish the epoch, so the workers are idle
            pass
        return elapsed

    first_loader = loader()
    result = {'first': first_batch(first_loader)}
    second = loader()
    result['next'] = first_batch(second)
    started = time.perf_counter()
    for _ in (second if loader_name == 'SuperLoader' else first_loader):
        pass
    result['epoch'] = time.perf_counter() - started
    result['pickled'] = len(pickle.dumps(dataset))
    for made in (first_loader, second):
        getattr(made, 'close', lambda: None)()
    return result


def run_child(meta, loader_name, method, workers):
    output = subprocess.run([sys.executable, '-m', 'benchmarks.worker_start_bench', '--measure',
                             loader_name, method, '--meta', meta, '--workers', str(workers)],
                            cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=5, help='fresh interpreters per case')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--data', default=osp.join('output', 'bench_data', 'worker_start'))
    parser.add_argument('--measure', nargs=2, help=argparse.SUPPRESS)
    parser.add_argument('--meta', help=argparse.SUPPRESS)
    args = parse_args(parser, argv, note='a set of 16 videos', rounds=1)
    if args.measure:
        print(json.dumps(measure(args.meta, *args.measure, args.workers)))
        return 0
    rounds = args.rounds
    meta = make_data(osp.abspath(args.data), args.quick)
    results = {}
    for _ in range(rounds):                 # interleaved, so a busy moment hits every case
        for loader_name in LOADERS:
            for method in METHODS:
                results.setdefault((loader_name, method), []).append(
                    run_child(meta, loader_name, method, args.workers))
    print(f'{args.workers} workers, batch {BATCH}, medians of {rounds} fresh interpreters\n')
    print('| loader | workers start by | first batch, first loader (s) | first batch, next loader (s) '
          '| epoch (s) | dataset pickled to each worker (KiB) |')
    print('|---|---|---|---|---|---|')
    medians = {}
    for (loader_name, method), runs in results.items():
        medians[(loader_name, method)] = {key: float(np.median([run[key] for run in runs]))
                                          for key in ('first', 'next', 'epoch')}
        row = medians[(loader_name, method)]
        copied = runs[0]['pickled'] / 1024 if method != 'fork' else 0
        print(f"| {loader_name} | {method}{' (baseline)' if method == 'fork' else ''} | "
              f"{row['first']:.3f} | {row['next']:.3f} | {row['epoch']:.3f} | {copied:.1f} |")
    for loader_name in LOADERS:
        ours, base = medians[(loader_name, 'forkserver')], medians[(loader_name, 'fork')]
        print(f'\n{loader_name} ratios (forkserver / fork): first batch '
              f"{ours['first'] / base['first']:.2f}, next loader {ours['next'] / base['next']:.2f}, "
              f"epoch {ours['epoch'] / base['epoch']:.2f}", end='')
    ours, base = medians[('SuperLoader', 'forkserver')], medians[('SuperLoader', 'fork')]
    print(f"\n\nworker_start: first_batch_s={ours['first']:.3f} baseline_first_batch_s={base['first']:.3f} "
          f"next_loader_s={ours['next']:.3f} baseline_next_loader_s={base['next']:.3f} "
          f"ratio={ours['first'] / base['first']:.2f}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
