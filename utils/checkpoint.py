"""Checkpoints that survive crashes: atomic writes, safe loads."""
import os
import os.path as osp
import tempfile

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded safely; the message names the file."""


def save_atomic(state, path):
    """Write to a temp file in the same folder, fsync, then rename over `path`.

    A crash or a full disk mid-write leaves the previous file untouched.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix='.' + osp.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path, map_location='cpu'):
    """Load with weights_only=True: a file that would run code on load is refused."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError or RuntimeError
        raise CheckpointError(f'cannot load {path} safely (weights_only=True): '
                              f'{str(err).splitlines()[0]}') from err

