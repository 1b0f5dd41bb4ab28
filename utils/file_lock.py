"""An advisory lock on a file (fcntl.flock): work that one of several processes must do while
the others wait, such as rendering the synthetic set under DDP, without a collective whose
timeout the work could outlast."""
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
