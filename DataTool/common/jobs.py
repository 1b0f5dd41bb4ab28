"""What the dataset-wide tools (check, transcode) share: one job per sample run in parallel
with a progress bar, and a log of finished results so that a rerun continues where the last
one stopped (a crash or Ctrl-C loses only the samples in flight)."""
import json
import os
import os.path as osp

from datasets.worker_start import worker_context
from utils.progress import progress


def file_key(path):
    """Identifies a file's version: its path, size and modification time (a changed file is
    done again)."""
    try:
        stat = os.stat(path)
    except OSError:
        return f'{osp.abspath(path)}|missing'
    return f'{osp.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}'


class ResultLog:
    """Finished results, one JSON object a line, each with its 'key'; appended and flushed as
    they come. A last line cut off by a crash is ignored."""

    def __init__(self, path):
        self.path = path
        self.done = {}
        if osp.isfile(path):
            with open(path, encoding='utf-8') as handle:
                for line in handle:
                    try:
                        result = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(result, dict) and 'key' in result:
                        self.done[result['key']] = result
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        self.handle = open(path, 'a', encoding='utf-8')

    def add(self, result):
        self.done[result['key']] = result
        self.handle.write(json.dumps(result) + '\n')
        self.handle.flush()

    def close(self):
        self.handle.close()


def _init_worker():
    import cv2
    cv2.setNumThreads(1)


def run_parallel(function, jobs, workers, desc, total=None, chunksize=1):
    """Yield function(job) for every job (an iterable, consumed as the workers take them, so a
    million jobs need not be listed), in the order they finish, with a progress bar of `total`
    (default len(jobs)). `workers` > 1 runs them in that many processes, started as the
    loaders' workers are (datasets/worker_start.py: from a clean process, so no decoder state
    of the caller's leaks in); `function` must be importable (a module-level function)."""
    total = len(jobs) if total is None else total
    if workers <= 1 or total <= 1:
        for job in progress(jobs, desc=desc, total=total):
            yield function(job)
        return
    context = worker_context()
    with context.Pool(min(workers, total), initializer=_init_worker) as pool:
        yield from progress(pool.imap_unordered(function, jobs, chunksize=chunksize), desc=desc,
                            total=total)
