"""Check this machine against a config before a long run:
    python -m utils.doctor [--cfg FILE] [--nproc-per-node N] [KEY VALUE ...]

One line per check: [ok], [warn] or [BLOCK], what was found, and the fix. Exit 0 when nothing
blocks the run, 1 when something will (the summary names it), 2 for a bad config.

Why: the failures these catch cost hours and say nothing. A loader whose shared memory does not
fit /dev/shm (Docker's default is 64 MB) hangs or dies with a bus error (mmaction2 #421); too few
CPU cores for the decoding workers make 4 GPUs no faster than one (#949); a low open-file limit
stops the workers' shared tensors ("received 0 items of ancdata"). train.py runs the two checks
that would hang or kill a run (`startup_checks`: shared memory and open files) and refuses them.

What /dev/shm must hold (`loader_shm_bytes`), counted as the loaders allocate it:
- SuperLoader: NUM_WORKERS x PREFETCH batch slots per loader, allocated once and kept while
  the loader lives, so the training and validation loaders' slots add up;
- DataLoader: NUM_WORKERS x PREFETCH batches in flight plus the one in use; DataLoaderX keeps
  2 more in its prefetch thread. Their workers stop after each epoch (not persistent), so the
  larger of training and validation counts;
- NUM_WORKERS 0: nothing (batches are built in the training process);
- per machine: x the training processes on it (DDP: LOCAL_WORLD_SIZE, or --nproc-per-node).
A batch is BATCH x uint8 clip [C, T, CROP, CROP] plus three int64 fields (label, index, bad).
The run must leave SHM_MARGIN of that free on top (torch briefly holds a few more segments).

Tests patch `shm_free_bytes` and `open_file_limit` to set a limit.
"""
import math
import os
import os.path as osp
import resource
import shutil
import sys
import time
from dataclasses import dataclass

import torch

from config import ConfigError, build_parser, parse_config
from datasets.clip_spec import ClipSpec
from utils.distributed import local_processes

SHM_PATH = '/dev/shm'
SHM_MARGIN = 1.25            # /dev/shm must hold the loaders' bytes x this
FIELDS_PER_SAMPLE = 4        # clip, label, index, bad-sample index (VideoDataset.__getitem__)
INT_FIELD_BYTES = 8          # label, index and bad are int64
DATALOADERX_PREFETCH = 2     # DataLoaderX's prefetch thread (datasets/loaders.py max_prefetch)
BASE_OPEN_FILES = 256        # the training process itself: libraries, logs, sockets, checkpoints
FILES_PER_WORKER = 8         # a worker's pipes and the video or frame files it has open
READ_LIMIT_BYTES = 256 * 2**20
READ_LIMIT_S = 3.0
DISTRIBUTED_VARIABLES = ('MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE',
                         'CUDA_VISIBLE_DEVICES')
MB = 2**20


class MachineNotReady(ConfigError):
    """The machine cannot run this config (it would hang); exit 2 with the doctor's message."""


@dataclass(frozen=True)
class Check:
    name: str
    verdict: str        # 'ok', 'warn' or 'block'
    found: str
    fix: str = ''

    def line(self):
        tag = {'ok': '[ok]   ', 'warn': '[warn] ', 'block': '[BLOCK]'}[self.verdict]
        return f'{tag} {self.name}: {self.found}' + (f'; fix: {self.fix}' if self.fix else '')


# ---------------------------------------------------------------- measurements (patchable)
def shm_free_bytes(path=SHM_PATH):
    """Bytes free in the shared-memory filesystem; None when there is none."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def open_file_limit():
    """(soft, hard) limit on open files of this process; soft is what counts."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def cpu_cores():
    """Cores this process may run on (taskset, cgroups' cpusets), not the machine's total."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


# ---------------------------------------------------------------- what the loaders keep
def clip_shape(cfg):
    """The uint8 clip one training or validation sample is: [C, T, CROP, CROP]."""
    return tuple(ClipSpec.from_config(cfg, num_segments=cfg.DATA.NUM_SEGMENTS).input_shape)


def batch_bytes(cfg, batch_size):
    """Bytes of one batch of `batch_size` samples: the clips and the three int64 fields."""
    clip = math.prod(clip_shape(cfg))
    return batch_size * (clip + (FIELDS_PER_SAMPLE - 1) * INT_FIELD_BYTES)


def loader_kind(cfg):
    """The loader build_loader makes: packed shards always use a DataLoaderX."""
    return 'DataLoaderX' if cfg.DATASET.INPUT_TYPE == 'shards' else cfg.DATASET.LOADER


def batches_in_shared_memory(cfg, workers=None):
    """Batches one loader keeps in shared memory at once (see the module docstring)."""
    workers = cfg.DATASET.NUM_WORKERS if workers is None else workers
    if workers == 0:
        return 0
    in_flight = workers * max(cfg.DATASET.PREFETCH, 1)
    kind = loader_kind(cfg)
    if kind == 'SuperLoader':
        return in_flight
    return in_flight + 1 + (DATALOADERX_PREFETCH if kind == 'DataLoaderX' else 0)


def loader_shm_bytes(cfg, processes=1, workers=None):
    """Bytes the training and validation loaders of `processes` training processes keep in
    /dev/shm at once, with DATASET.NUM_WORKERS (or `workers`) workers each."""
    batches = batches_in_shared_memory(cfg, workers)
    train = batches * batch_bytes(cfg, cfg.TRAIN.BASE_BATCH_SIZE)
    val = batches * batch_bytes(cfg, cfg.VAL.BATCH_SIZE)
    both = train + val if loader_kind(cfg) == 'SuperLoader' else max(train, val)
    return processes * both


def open_files_needed(cfg):
    """Our rule for the open-file limit one training process needs (the limit is per process):
    BASE_OPEN_FILES for itself, one descriptor per shared tensor in flight (torch's default
    'file_descriptor' sharing keeps one per tensor), FILES_PER_WORKER per worker; training and
    validation loaders together."""
    workers = cfg.DATASET.NUM_WORKERS
    shared_tensors = 2 * batches_in_shared_memory(cfg) * FIELDS_PER_SAMPLE
    return BASE_OPEN_FILES + shared_tensors + 2 * workers * FILES_PER_WORKER


# ---------------------------------------------------------------- the checks
def check_shared_memory(cfg, processes=1):
    """/dev/shm against what the loaders keep there: block when it does not fit."""
    needed = loader_shm_bytes(cfg, processes)
    free = shm_free_bytes()
    workers = cfg.DATASET.NUM_WORKERS
    if needed == 0:
        return Check('/dev/shm', 'ok', 'NUM_WORKERS 0: the loaders use no shared memory')
    if free is None:
        return Check('/dev/shm', 'block', f'no {SHM_PATH} on this machine, and '
                     f'{workers} loader workers need shared memory',
                     'DATASET.NUM_WORKERS 0, or run where /dev/shm exists')
    found = (f'{free / MB:.0f} MB free in {SHM_PATH}, the {loader_kind(cfg)}s need '
             f'{needed / MB:.1f} MB (x{SHM_MARGIN} margin: {needed * SHM_MARGIN / MB:.1f} MB) for '
             f'{workers} workers x {cfg.DATASET.PREFETCH} prefetch x batch '
             f'{cfg.TRAIN.BASE_BATCH_SIZE}/{cfg.VAL.BATCH_SIZE} of {list(clip_shape(cfg))} uint8'
             + (f' x {processes} processes' if processes > 1 else ''))
    if needed * SHM_MARGIN <= free:
        return Check('/dev/shm', 'ok', found)
    fitting = next((count for count in range(workers - 1, 0, -1)
                    if loader_shm_bytes(cfg, processes, count) * SHM_MARGIN <= free), 0)
    size_gb = max(8, math.ceil(needed * SHM_MARGIN / 2**30))
    return Check('/dev/shm', 'block', found + ': the loader would hang or die with a bus error',
                 f'docker run --shm-size={size_gb}g (or a larger /dev/shm), or '
                 f'DATASET.NUM_WORKERS {fitting} which fits, or a smaller TRAIN.BASE_BATCH_SIZE '
                 'or VAL.BATCH_SIZE')


def check_open_files(cfg):
    """The soft open-file limit against open_files_needed: block below it."""
    soft, hard = open_file_limit()
    needed = open_files_needed(cfg)
    unlimited = soft == resource.RLIM_INFINITY
    found = f'open-file limit {"unlimited" if unlimited else soft} (hard {hard}), the loaders need {needed}'
    if unlimited or soft >= needed:
        return Check('open files', 'ok', found)
    return Check('open files', 'block', found + ': workers would fail with "Too many open files"',
                 'ulimit -n 65536 before starting (Docker: --ulimit nofile=65536:65536), or '
                 'fewer DATASET.NUM_WORKERS')


def check_gpus(cfg):
    """GPUs present and their memory, against GPUS."""
    from utils.device import gpu_ids
    wanted = gpu_ids(cfg.GPUS)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        if len(wanted) > 1:
            return Check('GPUs', 'warn', f'no GPU, GPUS {wanted} asks for {len(wanted)}: '
                         'training runs on the CPU', 'run on a machine with GPUs, or GPUS "[]"')
        return Check('GPUs', 'ok', 'no GPU, training runs on the CPU')
    names = []
    for index in range(count):
        props = torch.cuda.get_device_properties(index)
        names.append(f'{index}: {props.name} {props.total_memory / 2**30:.0f} GiB')
    found = f'{count} GPU{"s" if count > 1 else ""} ({", ".join(names)})'
    missing = [gpu for gpu in wanted if not 0 <= gpu < count]
    if missing:
        return Check('GPUs', 'block', f'{found}; GPUS {wanted} names GPU {missing}, not here',
                     f'GPUS "{list(range(count))}" or fewer ids')
    return Check('GPUs', 'ok', found)


def check_cuda_versions():
    """torch, CUDA, cuDNN and NCCL versions (what a bug report needs first)."""
    parts = [f'torch {torch.__version__}']
    if torch.version.cuda is None:
        return Check('CUDA', 'ok', ', '.join(parts) + ', CPU build (no CUDA)')
    parts.append(f'CUDA {torch.version.cuda}')
    parts.append(f'cuDNN {torch.backends.cudnn.version()}')
    try:
        nccl = torch.cuda.nccl.version()
        parts.append('NCCL ' + ('.'.join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl)))
    except Exception:       # noqa: BLE001 - builds without NCCL raise various errors
        parts.append('no NCCL')
    return Check('CUDA', 'ok', ', '.join(parts))


def check_cpu_cores(cfg, processes=1):
    """Cores against the decoding workers: each training process and each worker wants one."""
    cores = cpu_cores()
    workers = cfg.DATASET.NUM_WORKERS
    needed = processes * (workers + 1)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    per_gpu = f', {cores / gpus:.1f} per GPU' if gpus else ''
    found = (f'{cores} cores{per_gpu}; {processes} process{"es" if processes > 1 else ""} x '
             f'({workers} workers + 1) want {needed}')
    if needed <= cores:
        return Check('CPU cores', 'ok', found)
    fitting = max(cores // processes - 1, 0)
    return Check('CPU cores', 'warn', found + ': decoding will wait for cores',
                 f'DATASET.NUM_WORKERS {fitting}, more cores, or pre-extracted frames / '
                 'short-GOP videos (python -m DataTool.transcode)')


def checkpoint_bytes(cfg):
    """Bytes of one last.pth: float32 weights, the optimizer's state per weight (SGD momentum
    1, AdamW 2) and the EMA copy if any. Counted on the meta device: nothing allocated."""
    from models import build_model
    with torch.device('meta'):
        model = build_model(cfg, pretrained=False)
    params = sum(p.numel() for p in model.parameters())
    copies = 1 + (2 if cfg.TRAIN.OPTIMIZER == 'adamw' else 1) + (1 if cfg.TRAIN.EMA_DECAY else 0)
    return params * 4 * copies


def existing_parent(path):
    while path and not osp.exists(path):
        path = osp.dirname(path)
    return path or '.'


def check_disk(cfg):
    """Free disk where checkpoints go against last.pth, last.pth.prev and best.pth."""
    where = existing_parent(osp.abspath(cfg.SNAPSHOT_ROOT))
    free = shutil.disk_usage(where).free
    one = checkpoint_bytes(cfg)
    found = f'{free / 2**30:.1f} GiB free at {where}, checkpoints need 3 x {one / MB:.0f} MB'
    if free < one:
        return Check('disk', 'block', found + ': not even one checkpoint fits',
                     'free disk space or set SNAPSHOT_ROOT to a larger disk')
    if free < 3 * one + 1024 * MB:
        return Check('disk', 'warn', found + ' plus logs',
                     'free disk space or set SNAPSHOT_ROOT to a larger disk')
    return Check('disk', 'ok', found)


def read_files(root, max_bytes=READ_LIMIT_BYTES, max_seconds=READ_LIMIT_S, chunk=MB):
    """Read files under `root` until `max_bytes` or `max_seconds`, whichever comes first.
    Returns (bytes read, seconds, files opened)."""
    total, files = 0, 0
    started = time.monotonic()
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            files += 1
            with open(osp.join(folder, name), 'rb', buffering=0) as handle:
                while total < max_bytes and time.monotonic() - started < max_seconds:
                    data = handle.read(min(chunk, max_bytes - total))
                    if not data:
                        break
                    total += len(data)
            if total >= max_bytes or time.monotonic() - started >= max_seconds:
                return total, time.monotonic() - started, files
    return total, time.monotonic() - started, files


def check_read_speed(cfg, max_bytes=READ_LIMIT_BYTES, max_seconds=READ_LIMIT_S):
    """MB/s reading the dataset's files (files read recently come from the page cache, so a
    fast figure is an upper bound; a slow one is real)."""
    root = cfg.DATASET.VIDEO_SEQ_PATH
    if not osp.isdir(root):
        return Check('dataset read', 'warn', f'{root} is not a folder',
                     'set DATASET.VIDEO_SEQ_PATH (or DATASET.ROOT_PATH) to the dataset')
    total, seconds, files = read_files(root, max_bytes, max_seconds)
    if total == 0:
        return Check('dataset read', 'warn', f'nothing to read under {root}',
                     'prepare the dataset (docs/data.md)')
    speed = total / MB / max(seconds, 1e-6)
    return Check('dataset read', 'ok', f'{speed:.0f} MB/s ({total / MB:.1f} MB of {files} '
                 f'files in {seconds:.2f} s) from {root}')


def check_decoders():
    """PyAV with its FFmpeg decoders, OpenCV and simplejpeg: what the loaders decode with."""
    found, missing = [], []
    try:
        import av
        from av.codec import Codec
        codecs = []
        for name in ('h264', 'hevc', 'vp9', 'mjpeg'):
            try:
                Codec(name, 'r')
                codecs.append(name)
            except Exception:       # noqa: BLE001 - PyAV raises its own error types here
                missing.append(f'{name} decoder')
        found.append(f'PyAV {av.__version__} ({" ".join(codecs) or "no video decoders"})')
    except ImportError:
        missing.append('PyAV')
    for module, label in (('cv2', 'OpenCV'), ('simplejpeg', 'simplejpeg')):
        try:
            found.append(f'{label} {__import__(module).__version__}')
        except ImportError:
            missing.append(label)
    from datasets import jpeg_region
    if jpeg_region.library() is not None:
        found.append('JPEG region decoder')
    else:
        missing.append('the JPEG region decoder (frames are decoded whole: the same clips, '
                       'about 20% slower with one loader worker)')
    text = ', '.join(found) or 'no decoder'
    if missing:
        return Check('decoders', 'warn', f'{text}; missing: {", ".join(missing)}',
                     'pip install -r requirements.txt (PyAV wheels bring their FFmpeg); the '
                     'region decoder: a C compiler and libjpeg-dev, then bash Script/setup_env.sh')
    return Check('decoders', 'ok', text)


def check_distributed_environment():
    """The NCCL_* / GLOO_* and rendezvous variables that are set, listed as they are."""
    names = sorted(name for name in os.environ
                   if name.startswith(('NCCL_', 'GLOO_', 'TORCH_NCCL_'))
                   or name in DISTRIBUTED_VARIABLES)
    listed = ' '.join(f'{name}={os.environ[name]}' for name in names)
    return Check('NCCL/gloo env', 'ok', listed or 'none set')


def startup_checks(cfg, processes=None):
    """The checks whose failure hangs or kills a run: shared memory and open files."""
    processes = local_processes() if processes is None else processes
    return [check_shared_memory(cfg, processes), check_open_files(cfg)]


def refuse_blocking(cfg, processes=None):
    """train.py's start-up: raise MachineNotReady (exit 2) with the doctor's line for a
    setting that would hang. Every process runs it and gets the same answer on one machine."""
    blocking = [check for check in startup_checks(cfg, processes) if check.verdict == 'block']
    if blocking:
        raise MachineNotReady('; '.join(check.line() for check in blocking)
                              + ' (python -m utils.doctor checks the rest)')


def all_checks(cfg, processes=1):
    """Every check, in the order they are printed; a check that fails to run is a warning."""
    checks = [('GPUs', lambda: check_gpus(cfg)), ('CUDA', check_cuda_versions),
              ('/dev/shm', lambda: check_shared_memory(cfg, processes)),
              ('CPU cores', lambda: check_cpu_cores(cfg, processes)),
              ('open files', lambda: check_open_files(cfg)),
              ('disk', lambda: check_disk(cfg)), ('dataset read', lambda: check_read_speed(cfg)),
              ('decoders', check_decoders), ('NCCL/gloo env', check_distributed_environment)]
    results = []
    for name, check in checks:
        try:
            results.append(check())
        except Exception as err:    # noqa: BLE001 - one broken check must not hide the others
            results.append(Check(name, 'warn', f'could not check ({type(err).__name__}: {err})'))
    return results


def main(argv=None):
    parser = build_parser('Check this machine against a DLAC config')
    parser.add_argument('--nproc-per-node', type=int, default=None,
                        help='training processes per machine (DDP); default LOCAL_WORLD_SIZE or 1')
    cfg, args = parse_config(argv, parser=parser, exp_type='T')
    processes = args.nproc_per_node or local_processes()
    results = all_checks(cfg, processes)
    for result in results:
        print(result.line())
    blocking = [result.name for result in results if result.verdict == 'block']
    warnings = [result.name for result in results if result.verdict == 'warn']
    if blocking:
        print(f'BLOCKED by: {", ".join(blocking)} (fix the lines marked [BLOCK])')
        return 1
    print(f'nothing blocks the run ({len(results)} checks'
          + (f', warnings: {", ".join(warnings)})' if warnings else ')'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
