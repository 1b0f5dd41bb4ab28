"""An advisory lock on a file (fcntl.flock): work that one of several processes must do while
the others wait, such as rendering the synthetic set under DDP, without a collective whose
timeout the work could outlast; and a lock held as a marker that others can test without
waiting (a training run in progress)."""
import contextlib
import fcntl
import os
import os.path as osp


@contextlib.contextmanager
def file_lock(path, on_wait=None):
    """Hold an exclusive lock on `path` (created if needed) for the `with` block. When another
    process holds it, `on_wait()` is called once and this one blocks until it is free."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'a', encoding='utf-8') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def lock_if_free(path):
    """Hold an exclusive lock on `path` (created if needed) for the `with` block if no other
    process holds it: yields True while held, False (without waiting) when another has it.
    The operating system frees the lock when its process ends, however it ends."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'a', encoding='utf-8') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_locked(path):
    """Whether another process holds the lock on `path` now (False when there is no file)."""
    if not osp.isfile(path):
        return False
    with lock_if_free(path) as free:
        return not free
