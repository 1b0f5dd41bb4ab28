"""SuperLoader: worker processes build whole batches straight into shared-memory slots.

Why not torch's DataLoader: its workers allocate a new shared-memory segment for every batch
and stop and restart at every epoch (unless persistent). Here the batch slots are allocated
once and reused, the workers live as long as the loader, and the main process only copies a
finished batch out of its slot. What the original DLAC SuperLoader got wrong is covered too:

- every index the sampler yields is loaded exactly once per epoch, batches come out in sampler
  order, so an epoch is reproducible from the seed whatever the worker timing;
- a worker that raises is reported as a DataLoadingError naming the sample and its metafile
  line; a worker that dies (killed, segfault) is noticed at once through its process sentinel
  and reported with its exit code and the samples of its batch; a batch that takes longer than
  `timeout` seconds raises instead of waiting forever, naming the worker and the samples, with
  every worker's stack written to a file (stuck_workers.py); a stop signal (GracefulStop) ends
  the wait within seconds;
- workers start from a clean process (worker_start.py), so they never inherit decoder state
  of the parent's that they cannot use;
- `close()` (also run when the loader is garbage collected or the interpreter exits) asks the
  workers to stop, joins them, and terminates any that do not; workers also exit by themselves
  when their parent process is gone.
"""
import multiprocessing
import signal
import time
import traceback
import weakref
from multiprocessing.connection import wait

import torch
import torch.multiprocessing as mp

from utils.memory import keep_freed_memory
from utils.stopping import StoppedWhileWaiting, check_stop_while_waiting

from .stuck_workers import WorkerWatch, watch_worker
from .worker_start import worker_context

POLL_S = 1.0              # how often idle workers check that their parent is alive
JOIN_S = 5.0              # how long close() waits for a worker before terminating it
BROKEN_JOIN_S = 0.5       # the same for a loader that failed (its workers may be stuck)


class DataLoadingError(RuntimeError):
    """A sample or batch could not be loaded; the message names it."""


def _as_fields(sample):
    if not isinstance(sample, (tuple, list)):
        sample = (sample,)
    return [torch.as_tensor(value) for value in sample]


def _is_dense(tensor):
    """True when the tensor's elements fill its memory exactly, in some dimension order."""
    expected = 1
    for size, stride in sorted(zip(tensor.shape, tensor.stride()), key=lambda pair: pair[1]):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def _allocate(fields, batch_size, shared):
    """Batch buffers [batch_size, *field.shape] whose rows have each field's own memory
    layout (a channels-last clip stays channels-last), so filling a row is a plain copy."""
    buffers = []
    for field in fields:
        if _is_dense(field):
            row = field.numel()
            buffer = torch.empty_strided((batch_size,) + tuple(field.shape),
                                         (row,) + tuple(field.stride()), dtype=field.dtype)
        else:
            buffer = torch.empty((batch_size,) + tuple(field.shape), dtype=field.dtype)
        buffers.append(buffer.share_memory_() if shared else buffer)
    return buffers


def _describe(dataset, index):
    describe = getattr(dataset, 'describe', None)
    return f'sample {index} ({describe(index)})' if describe else f'sample {index}'


def samples_text(dataset, indices, shown=4):
    """'samples [4, 5]: sample 4 (a.mp4 (meta.txt:5)), ...': a batch's indices with the
    files and metafile lines of the first `shown`."""
    indices = [int(index) for index in indices]
    more = f' and {len(indices) - shown} more' if len(indices) > shown else ''
    return (f'samples {indices}: '
            + ', '.join(_describe(dataset, index) for index in indices[:shown]) + more)


class _SampleFailure(Exception):
    def __init__(self, index, message):
        super().__init__(message)
        self.index = index


def _load(dataset, index):
    try:
        return _as_fields(dataset[index])
    except Exception as err:
        raise _SampleFailure(index, f'{type(err).__name__}: {err}') from err


def _fill(dataset, indices, buffers, first=None):
    """Load `indices` into rows 0.. of `buffers` (`first`: row 0 already loaded); a failure
    names the sample."""
    for row, index in enumerate(indices):
        fields = first if row == 0 and first is not None else _load(dataset, index)
        shapes = [tuple(field.shape) for field in fields]
        expected = [tuple(buffer.shape[1:]) for buffer in buffers]
        if shapes != expected:
            raise _SampleFailure(index, f'sample shapes {shapes} differ from the first '
                                        f"sample's {expected}; a batch needs equal shapes")
        for buffer, field in zip(buffers, fields):
            buffer[row].copy_(field)


def prepare_worker_process(worker_id=None):
    """One torch thread per loader process (the processes are the parallelism) and freed
    memory kept for reuse. Also DataLoader's worker_init_fn. OpenCV's thread count is left
    alone: cv2.setNumThreads() in a forked child hangs when the parent had used OpenCV's
    thread pool (a test covers it). SLURM's warning (SIGUSR1) reaches every process of a job,
    these too: it is the training process's to handle, and its default action would kill."""
    if hasattr(signal, 'SIGUSR1'):
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    torch.set_num_threads(1)
    keep_freed_memory()


def _worker_loop(worker_id, dataset, conn, slots, dump_dir):
    """Take (generation, batch, slot, epoch, indices) tasks, fill the slot, report back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the main process's to handle
    prepare_worker_process()
    watch_worker(dump_dir, worker_id)
    parent = multiprocessing.parent_process()        # the loader's process, whatever started us
    epoch = None
    while True:
        try:
            if not conn.poll(POLL_S):
                if parent is not None and not parent.is_alive():
                    return
                continue
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        generation, batch_no, slot, task_epoch, indices = task
        if task_epoch is not None and task_epoch != epoch and hasattr(dataset, 'set_epoch'):
            dataset.set_epoch(task_epoch)
            epoch = task_epoch
        try:
            _fill(dataset, indices, slots[slot])
            reply = ('ok', generation, batch_no, slot, len(indices))
        except _SampleFailure as failure:
            reply = ('error', generation, batch_no, slot, failure.index,
                     _describe(dataset, failure.index), str(failure),
                     ''.join(traceback.format_exception(failure.__cause__ or failure)))
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


def _exit_text(code):
    if code is None:
        return 'still running'
    if code < 0:
        try:
            return f'killed by {signal.Signals(-code).name}'
        except ValueError:
            return f'killed by signal {-code}'
    return f'exit code {code}'


def _shutdown(workers, conns, watch, join_s):
    """Stop the workers: a polite request, then join (`join_s[0]` seconds in all), then
    terminate, then kill."""
    for conn in conns:
        try:
            conn.send(None)
        except (BrokenPipeError, OSError):
            pass
    deadline = time.monotonic() + join_s[0]
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in workers:
        if process.is_alive():
            process.terminate()
            process.join(1.0)
        if process.is_alive():
            process.kill()
            process.join()
    for conn in conns:
        conn.close()
    if watch is not None:
        watch.close()


class SuperLoader:
    """Batches of `dataset` in `sampler` order, built by `num_workers` processes.

    Yields tuples of tensors [batch, ...] (one per sample field: clip, label, index).
    `prefetch_factor` batches per worker are built ahead into as many shared-memory slots.
    `num_workers=0` builds the batches in the calling process. One iterator at a time.
    Workers start from `multiprocessing_context`, a context or a start method's name
    (default: worker_start.worker_context()).
    A stuck loader's report goes to `report_dir` (default: a temporary folder).
    """

    def __init__(self, dataset, batch_size=1, sampler=None, num_workers=2, drop_last=False,
                 prefetch_factor=2, pin_memory=False, timeout=300.0,
                 multiprocessing_context=None, report_dir=None):
        if batch_size < 1 or num_workers < 0 or (prefetch_factor or 1) < 1:
            raise ValueError('SuperLoader needs batch_size >= 1, num_workers >= 0 and '
                             'prefetch_factor >= 1')
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler = sampler if sampler is not None else range(len(dataset))
        self.num_workers = num_workers
        self.drop_last = drop_last
        self.num_slots = num_workers * (prefetch_factor or 1)
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self.timeout = timeout
        if not multiprocessing_context:
            multiprocessing_context = worker_context()
        elif isinstance(multiprocessing_context, str):
            multiprocessing_context = mp.get_context(multiprocessing_context)
        self.context = multiprocessing_context
        self.report_dir = report_dir
        self._workers, self._conns, self._slots = [], [], None
        self._watch, self._join_s = None, [JOIN_S]
        self._free_slots, self._outstanding = [], {}
        self._generation = 0
        self._finalizer = None
        self._broken = None

    def __len__(self):
        count = len(self.sampler)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def _batches(self):
        indices = list(self.sampler)
        batches = [indices[i:i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    @property
    def worker_pids(self):
        return [process.pid for process in self._workers]

    def __iter__(self):
        if self._broken:
            raise DataLoadingError(f'SuperLoader is closed: {self._broken}')
        batches = self._batches()
        self._generation += 1
        if self.num_workers == 0:
            return self._iter_here(batches)
        return self._iter_workers(batches, self._generation)

    def _finish(self, buffers, count):
        batch = tuple(buffer[:count].clone() for buffer in buffers)
        if self.pin_memory:
            batch = tuple(tensor.pin_memory() for tensor in batch)
        return batch

    def _iter_here(self, batches):
        for indices in batches:
            try:
                first = _load(self.dataset, indices[0])
                buffers = _allocate(first, len(indices), shared=False)
                _fill(self.dataset, indices, buffers, first)
            except _SampleFailure as failure:
                raise DataLoadingError(f'{_describe(self.dataset, failure.index)}: '
                                       f'{failure}') from failure.__cause__
            yield self._finish(buffers, len(indices))

    def _start_workers(self, first_index):
        try:
            first = _load(self.dataset, first_index)
        except _SampleFailure as failure:
            raise DataLoadingError(f'{_describe(self.dataset, first_index)}: '
                                   f'{failure}') from failure.__cause__
        self._slots = [_allocate(first, self.batch_size, shared=True)
                       for _ in range(self.num_slots)]
        self._free_slots = list(range(self.num_slots))
        self._watch = WorkerWatch(self.report_dir)
        for worker_id in range(self.num_workers):
            parent_conn, child_conn = self.context.Pipe(duplex=True)
            process = self.context.Process(
                target=_worker_loop, name=f'SuperLoader-{worker_id}', daemon=True,
                args=(worker_id, self.dataset, child_conn, self._slots, self._watch.dump_dir))
            process.start()
            child_conn.close()
            self._workers.append(process)
            self._conns.append(parent_conn)
        self._finalizer = weakref.finalize(self, _shutdown, self._workers, self._conns,
                                           self._watch, self._join_s)

    def _dispatch(self, generation, batch_no, indices, epoch):
        loads = [0] * self.num_workers
        for worker, *_ in self._outstanding.values():
            loads[worker] += 1
        worker = loads.index(min(loads))
        slot = self._free_slots.pop()
        self._conns[worker].send((generation, batch_no, slot, epoch, indices))
        self._outstanding[slot] = (worker, generation, batch_no, indices)

    def _fail(self, message, error=None):
        """The loader cannot go on (a dead or stuck worker, a stop signal): stop everything,
        without waiting long for workers that may be stuck, and raise."""
        self._broken = message
        self._join_s[0] = BROKEN_JOIN_S
        self.close()
        raise error or DataLoadingError(message)

    def _stuck(self, batch_no, indices):
        """No batch for `timeout` seconds: name the worker and the samples, write every
        worker's stack, close the loader and raise."""
        builder = [w for w, _, number, _ in self._outstanding.values() if number == batch_no]
        who = (f'worker {builder[0]} (pid {self._workers[builder[0]].pid})' if builder
               else 'a worker')
        self._fail(self._watch.stuck_message(
            'SuperLoader', self.timeout, batch_no, samples_text(self.dataset, indices), who,
            list(enumerate(self.worker_pids))) + '; the loader is closed')

    def _worker_died(self, worker):
        process = self._workers[worker]
        process.join(0.1)
        jobs = [(batch_no, indices) for w, _, batch_no, indices in self._outstanding.values()
                if w == worker]
        doing = (f'while building batch {jobs[0][0]} (samples {jobs[0][1]})' if jobs
                 else 'while idle')
        self._fail(f'SuperLoader worker {worker} (pid {process.pid}) died '
                   f'({_exit_text(process.exitcode)}) {doing}; the loader is closed')

    def _receive(self, generation, ready, waiting_for):
        """Wait for worker messages; file the batches of this generation in `ready`: finished
        ones as (slot, count), failed ones as the DataLoadingError to raise in their turn (the
        batches before a failed one still come out first, whichever finished first)."""
        sentinels = {process.sentinel: worker for worker, process in enumerate(self._workers)}
        started = time.monotonic()
        while True:
            events = wait(self._conns + list(sentinels), timeout=POLL_S)
            messages = [conn for conn in events if conn in self._conns]
            if messages or events:
                break
            try:
                check_stop_while_waiting(f'batch {waiting_for[0]} (samples {waiting_for[1]})')
            except StoppedWhileWaiting as stopped:
                self._fail(str(stopped), stopped)
            if self.timeout and time.monotonic() - started > self.timeout:
                self._stuck(*waiting_for)
        for conn in messages:
            worker = self._conns.index(conn)
            try:
                message = conn.recv()
            except (EOFError, OSError):
                self._worker_died(worker)
            kind, message_generation, batch_no, slot = message[:4]
            self._outstanding.pop(slot, None)
            if message_generation != generation:
                self._free_slots.append(slot)
            elif kind == 'ok':
                ready[batch_no] = (slot, message[4])
            else:
                self._free_slots.append(slot)
                _, _, _, _, index, where, error, trace = message
                ready[batch_no] = DataLoadingError(
                    f'SuperLoader worker {worker} failed on {where}, in batch {batch_no}: '
                    f'{error}\nworker traceback:\n{trace}')
        if not messages:
            for sentinel in events:
                self._worker_died(sentinels[sentinel])

    def _iter_workers(self, batches, generation):
        if not batches:
            return
        if not self._workers:
            self._start_workers(batches[0][0])
        epoch = getattr(self.dataset, 'epoch', None)
        ready = {}
        next_dispatch = 0
        try:
            for next_yield in range(len(batches)):
                if generation != self._generation:
                    raise RuntimeError('this SuperLoader iterator was replaced by a newer one')
                while next_yield not in ready:
                    while self._free_slots and next_dispatch < len(batches):
                        self._dispatch(generation, next_dispatch, batches[next_dispatch], epoch)
                        next_dispatch += 1
                    self._receive(generation, ready, (next_yield, batches[next_yield]))
                filed = ready.pop(next_yield)
                if isinstance(filed, DataLoadingError):
                    raise filed
                slot, count = filed
                batch = self._finish(self._slots[slot], count)
                self._free_slots.append(slot)
                yield batch
        finally:
            # An epoch left early (break, error): finished batches give their slots back now,
            # batches still being built give them back when they arrive.
            self._free_slots.extend(filed[0] for filed in ready.values()
                                    if not isinstance(filed, DataLoadingError))

    def close(self):
        """Stop and join the workers (idempotent)."""
        if self._finalizer is not None:
            self._finalizer()
        self._broken = self._broken or 'closed by close()'

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
