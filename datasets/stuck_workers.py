"""What every loader worker is doing when a batch does not come: one file that says it.

Each worker, as it starts, asks faulthandler to write its Python stack (every thread) to a
file of its own when it receives DUMP_SIGNAL; faulthandler does that from the signal handler
itself, so it works while the worker is stuck inside C code (a decoder waiting on a lock).
When a loader gives up waiting it signals every live worker, gathers those dumps with what
Linux says of each thread (state, the kernel function it sleeps in), and writes one report
into the run's log folder. On Python 3.14 and later the native (C) stack is added too:
faulthandler's fatal-error handler writes it as the worker is ended with SIGABRT (the loader
is closed anyway). Older Pythons say where to get one (gdb, py-spy).
"""
import faulthandler
import os
import os.path as osp
import shutil
import signal
import sys
import tempfile
import time

DUMP_SIGNAL = getattr(signal, 'SIGUSR2', None)
NATIVE_STACKS = sys.version_info >= (3, 14)     # faulthandler's C stack (c_stack=True)
DUMP_WAIT_S = 3.0          # how long the report waits for the workers' dumps
_open_dumps = []           # a worker's dump file stays open for its whole life


def dump_file(dump_dir, worker_id):
    return osp.join(dump_dir, f'worker-{worker_id}.txt')


def watch_worker(dump_dir, worker_id):
    """In a worker process: write this process's stacks to its dump file on DUMP_SIGNAL (and,
    where faulthandler can, the native stack on a fatal signal)."""
    if dump_dir is None or DUMP_SIGNAL is None:
        return
    handle = open(dump_file(dump_dir, worker_id), 'w', encoding='ascii', errors='replace')
    _open_dumps.append(handle)
    faulthandler.register(DUMP_SIGNAL, file=handle, all_threads=True, chain=False)
    if NATIVE_STACKS:
        faulthandler.enable(file=handle, all_threads=True)


class WorkerWatch:
    """A loader's folder for its workers' dumps, and the report written from them."""

    def __init__(self, report_dir=None):
        self.dump_dir = tempfile.mkdtemp(prefix='dlac-loader-workers-')
        self.report_dir = report_dir

    def stuck_message(self, loader, timeout, batch_no, samples, who, workers):
        """The error text of a loader that waited `timeout` s for batch `batch_no`, built by
        `who`, after the report of `workers` [(worker_id, pid)] is written (its path in it)."""
        headline = (f'{loader}: no batch for {timeout:.0f}s while waiting for batch {batch_no} '
                    f'({samples}) from {who}')
        return (f"{headline}; every worker's stack is in {self.report(headline, workers)} "
                '(DATASET.LOADER_TIMEOUT sets the limit)')

    def report(self, headline, workers):
        """Signal every live worker of `workers` [(worker_id, pid)], wait for their dumps and
        write `headline`, then each worker's threads and stacks, to a new file; its path."""
        alive = [(worker_id, pid) for worker_id, pid in workers if _is_running(pid)]
        sizes = {}
        for worker_id, pid in alive:
            sizes[worker_id] = _size(dump_file(self.dump_dir, worker_id))
            _signal(pid, DUMP_SIGNAL)
        _wait_for_dumps(self.dump_dir, sizes)
        threads = {worker_id: _threads(pid) for worker_id, pid in alive}
        if NATIVE_STACKS:
            for worker_id, pid in alive:
                sizes[worker_id] = _size(dump_file(self.dump_dir, worker_id))
                _signal(pid, signal.SIGABRT)
            _wait_for_dumps(self.dump_dir, sizes)
        lines = [headline, '', f'written {time.strftime("%Y-%m-%d %H:%M:%S")} by process '
                 f'{os.getpid()}; Python {sys.version.split()[0]}; {_decoder_versions()}']
        for worker_id, pid in workers:
            lines += ['', f'=== worker {worker_id} (pid {pid}) ===']
            if (worker_id, pid) not in alive:
                lines.append('not running (it exited or was never started)')
                continue
            lines += threads[worker_id]
            dump = _read(dump_file(self.dump_dir, worker_id)).strip()
            lines += ['Python stacks, most recent call first (faulthandler):',
                      dump or '(no dump came: the process did not handle the signal)']
            if not NATIVE_STACKS:
                lines.append(f'native stack: faulthandler gives it from Python 3.14 on; here '
                             f'(Python {sys.version.split()[0]}) run '
                             f'`gdb -p {pid} -batch -ex "thread apply all bt"` or '
                             f'`py-spy dump --native --pid {pid}` during the next hang (the '
                             f'loader ends its workers after this report)')
        folder = self.report_dir or tempfile.gettempdir()     # dump_dir goes with the loader
        os.makedirs(folder, exist_ok=True)
        path = osp.join(folder, f'stuck_loader_{time.strftime("%Y%m%d_%H%M%S")}_{os.getpid()}.txt')
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write('\n'.join(lines) + '\n')
        return path

    def close(self):
        shutil.rmtree(self.dump_dir, ignore_errors=True)


def _state(stat_path):
    """The one-letter state in a /proc .../stat file ('R', 'S', 'Z', ...), '?' if unreadable."""
    stat = _read(stat_path)
    return stat.rsplit(')', 1)[1].split()[0] if ')' in stat else '?'


def _is_running(pid):
    """Alive and not a zombie."""
    return _state(f'/proc/{pid}/stat') not in ('Z', 'X', '?')


def _signal(pid, signum):
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _wait_for_dumps(dump_dir, sizes):
    """Until every dump grew and stopped growing, or DUMP_WAIT_S."""
    deadline = time.monotonic() + DUMP_WAIT_S
    last = None
    while time.monotonic() < deadline:
        now = {worker_id: _size(dump_file(dump_dir, worker_id)) for worker_id in sizes}
        if all(now[w] > sizes[w] for w in sizes) and now == last:
            return
        last = now
        time.sleep(0.1)


def _read(path):
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return handle.read()
    except OSError:
        return ''


def _threads(pid):
    """One line per thread of `pid`: its id, name, state and the kernel function it waits in
    (Linux /proc; nothing elsewhere)."""
    task_dir = f'/proc/{pid}/task'
    try:
        tids = sorted(os.listdir(task_dir), key=int)
    except OSError:
        return []
    lines = [f'{len(tids)} thread(s):']
    for tid in tids:
        name = _read(osp.join(task_dir, tid, 'comm')).strip()
        state = _state(osp.join(task_dir, tid, 'stat'))
        wchan = _read(osp.join(task_dir, tid, 'wchan')).strip()
        lines.append(f'  thread {tid} ({name}): state {state}'
                     + (f', waiting in {wchan}' if wchan and wchan != '0' else ''))
    return lines


def _decoder_versions():
    """The decoder packages' versions, as this process has them (they are what hangs)."""
    found = []
    for name in ('av', 'cv2', 'simplejpeg'):
        module = sys.modules.get(name)
        if module is not None:
            found.append(f'{name} {getattr(module, "__version__", "?")}')
    return ', '.join(found) or 'no decoder imported'
