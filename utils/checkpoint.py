"""Checkpoints that survive crashes: atomic writes, a kept previous copy, checksums, safe loads."""
import argparse
import hashlib
import os
import os.path as osp
import re
import tempfile

import torch

PREVIOUS_SUFFIX = '.prev'


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or loaded safely; the message names the file."""


def tensor_checksum(state_dict):
    """sha256 over the tensors' names and bytes: catches a damaged file that still unpickles."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name]
        digest.update(name.encode('utf-8'))
        if torch.is_tensor(tensor):
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def is_state_dict(value):
    """A dict of tensors by text name: what a model's weights must be, whatever the file says."""
    return (isinstance(value, dict) and all(isinstance(key, str) for key in value)
            and all(torch.is_tensor(tensor) for tensor in value.values()))


def _fsync_folder(folder):
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_atomic(state, path, keep_previous=False):
    """Write to a temp file in the same folder, fsync, then rename over `path`.

    A crash or a full disk mid-write leaves the previous file untouched (the error is raised
    as CheckpointError). keep_previous: the file being replaced stays as `path.prev`, a
    fallback should the new one ever fail to load. `path` itself always exists once written.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix='.' + osp.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        if keep_previous and osp.isfile(path):
            previous_tmp = tmp_path + PREVIOUS_SUFFIX
            os.link(path, previous_tmp)
            os.replace(previous_tmp, path + PREVIOUS_SUFFIX)
        os.replace(tmp_path, path)
    except (OSError, RuntimeError) as err:     # torch's zip writer raises RuntimeError
        reason = getattr(err, 'strerror', None) or str(err).splitlines()[0]
        kept = f'; the previous {osp.basename(path)} is kept' if osp.isfile(path) else ''
        raise CheckpointError(f'could not write {path}: {reason}{kept}. Free disk space (or fix '
                              f'the folder) and run the same command again') from err
    finally:
        for leftover in (tmp_path, tmp_path + PREVIOUS_SUFFIX):
            if osp.exists(leftover):
                os.remove(leftover)
    _fsync_folder(folder)


def _refusal(path, err):
    """A clear message for a pickle that weights_only=True refused to run."""
    text = str(err)
    found = re.search(r'Unsupported global: GLOBAL ([\w.]+)', text) or re.search(r'GLOBAL ([\w.]+)', text)
    if found or 'weights_only' in text:
        what = f' ({found.group(1)})' if found else ''
        return (f'refused to load {path}: it is a pickle that would import and run code{what} '
                f'when loaded. DLAC loads only tensors and plain data (weights_only=True); if you '
                f'trust the file, load it yourself and save its state_dict with torch.save')
    return f'cannot load {path}: {text.splitlines()[0] if text else type(err).__name__}'


# Classes a checkpoint may hold besides tensors and plain data. argparse.Namespace: the VideoMAE
# repository saves its run's arguments as one ('args'). A Namespace is a bag of attributes that
# runs no code of its own when built; what it holds is still unpickled under weights_only rules.
SAFE_CLASSES = (argparse.Namespace,)


def load_checkpoint(path, map_location='cpu'):
    """Load with weights_only=True: a file that would run code on load is refused (plain data
    and tensors only, and SAFE_CLASSES). The file must hold a dict with string keys (every
    weight layout does); a checkpoint that carries a checksum of its model weights is
    verified."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    try:
        with torch.serialization.safe_globals(list(SAFE_CLASSES)):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(_refusal(path, err)) from err
    if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
        what = type(state).__name__ if not isinstance(state, dict) else 'a dict with non-text keys'
        raise CheckpointError(f'{path} is not a weight file: it holds {what}, not a dict of '
                              f'named tensors')
    if 'checksum' in state and 'model' in state:
        if not is_state_dict(state['model']) or tensor_checksum(state['model']) != state['checksum']:
            raise CheckpointError(f'{path} is damaged: its model weights do not match the '
                                  f'checksum saved with them')
    return state


def load_resume_checkpoint(path, logger=None):
    """last.pth, or when it cannot be loaded, the previous copy save_atomic kept beside it;
    CheckpointError naming both when neither loads. Returns (state, path loaded)."""
    failures = []
    for candidate in (path, path + PREVIOUS_SUFFIX):
        if not osp.isfile(candidate):
            continue
        try:
            state = load_checkpoint(candidate)
        except CheckpointError as err:
            failures.append(str(err))
            continue
        if failures and logger:
            logger.warning('%s; resuming from the previous checkpoint %s instead', failures[0],
                           candidate)
        return state, candidate
    raise CheckpointError('no checkpoint to resume from could be loaded: ' + ' | '.join(failures)
                          + ". Start fresh with --resume ''")
