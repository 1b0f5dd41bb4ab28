"""How worker processes start: forked from a clean server process ('forkserver'), never from
the process that asks for them.

Why: a forked child inherits its parent's memory but only the calling thread. A parent that
has decoded and converted video (PyAV's swscale, FFmpeg's slice threads, OpenCV's pool) leaves
decoder state in that memory whose threads exist only in the parent; with av 18.1.1 the first
conversion in a forked worker waits for them for ever. Training decodes in the parent before
its loaders start workers (the start-up checks, the first sample that sizes SuperLoader's
slots), so every worker hung. A forkserver is a fresh interpreter started once per process
(exec, not fork) that imports the heavy modules once (PRELOAD) and then forks each worker
from itself: workers get no decoder state, whatever the PyAV, FFmpeg or OpenCV version, and
start almost as fast as forked ones (benchmarks/worker_start_bench.py, docs/data.md).

What this asks of the things a worker runs: they travel by pickling (datasets, collate and
init functions defined at module level), and a worker sees the environment variables of the
moment the server started, not later changes (pass settings as arguments).
"""
import multiprocessing
from multiprocessing import forkserver
import os
import os.path as osp
import signal
import sys
import threading

START_METHOD = 'forkserver'
# imported once by the server, so that a worker starts with them loaded (a module that fails
# to import is skipped); the last one imports the entry script's imports (main_module)
PRELOAD = ('numpy', 'torch', 'cv2', 'av', 'simplejpeg', 'datasets', 'datasets.worker_entry')
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ENTRY_VARIABLE = 'DLAC_WORKER_ENTRY'     # how the server learns the entry module (worker_entry.py)


def main_module():
    """The import name of the running entry script when it is one of this repository's
    (train.py, predict.py, python -m benchmarks.x, ...), else None. A worker runs its entry
    script's top level again (as spawn does: its `if __name__ == '__main__'` part excluded),
    which costs seconds of imports unless the server imported them first (worker_entry.py).
    multiprocessing's own '__main__' preload does nothing before Python 3.13 (it looks for a
    'main_path' key that is never set). A script from elsewhere is not imported by the server:
    its top level may do work that belongs to the main process only."""
    main = sys.modules.get('__main__')
    path = getattr(main, '__file__', None)
    if not path or not osp.abspath(path).startswith(ROOT + os.sep):
        return None
    spec = getattr(main, '__spec__', None)
    if spec is not None and spec.name and not spec.name.endswith('__main__'):
        return spec.name                                   # python -m package.module
    name = osp.splitext(osp.basename(path))[0]
    return name if name.isidentifier() and name != '__main__' else None


def worker_context():
    """The multiprocessing context every loader and tool pool starts its workers from. The
    server is started now (it imports in the background while the caller goes on building its
    model), so the first workers do not wait for its imports as long."""
    context = multiprocessing.get_context(START_METHOD)
    context.set_forkserver_preload(list(PRELOAD))
    _start_server(main_module())
    return context


def _start_server(entry):
    """Start the server (once per process; later calls find it running), told the entry
    module to preload through the environment it starts with, and with SLURM's warning
    (SIGUSR1) ignored, as the workers ignore it: SLURM signals every process of a job, and the
    default action would end the server. A signal ignored when the server is started stays
    ignored in it (exec keeps SIG_IGN) and in the workers it forks."""
    usr1 = getattr(signal, 'SIGUSR1', None)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_entry = os.environ.pop(ENTRY_VARIABLE, None)
    if entry:
        os.environ[ENTRY_VARIABLE] = entry
    previous = signal.signal(usr1, signal.SIG_IGN) if usr1 and in_main_thread else None
    try:
        forkserver.ensure_running()
    finally:
        if previous is not None:
            signal.signal(usr1, previous)
        os.environ.pop(ENTRY_VARIABLE, None)
        if previous_entry is not None:
            os.environ[ENTRY_VARIABLE] = previous_entry
