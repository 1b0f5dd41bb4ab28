"""utils.doctor: the machine checked against the config, and train.py refusing a setting that
would hang the loader. Limits are set by patching doctor.shm_free_bytes / open_file_limit."""
import os
import os.path as osp

import pytest

import config
import train
from conftest import run_main, tiny_overrides
from datasets import build_dataset, build_loader
from utils import doctor

CHECK_NAMES = ['GPUs', 'CUDA', '/dev/shm', 'CPU cores', 'open files', 'disk', 'dataset read',
               'decoders', 'NCCL/gloo env']


def small_shm(monkeypatch, megabytes):
    monkeypatch.setattr(doctor, 'shm_free_bytes', lambda path=doctor.SHM_PATH: megabytes * 2**20)


def test_doctor_prints_every_check_and_passes_here(tiny_root, tmp_path, capsys):
    code = doctor.main(tiny_overrides(tiny_root, tmp_path))
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split(']', 1)[1].split(':', 1)[0].strip() for line in lines[:-1]] == CHECK_NAMES
    assert all(line.startswith(('[ok]', '[warn]')) for line in lines[:-1])
    assert 'could not check' not in '\n'.join(lines)
    assert lines[-1].startswith('nothing blocks the run')
    assert 'MB/s' in lines[CHECK_NAMES.index('dataset read')]


def test_too_small_shm_blocks_the_doctor_and_train(tiny_root, tmp_path, monkeypatch, capsys):
    # SuperLoader, 4 workers x 2 prefetch = 8 slots of 8 clips [3, 3, 64, 64] (288 KiB a batch)
    # for training and validation: 4.5 MiB, x1.25 margin 5.6 MiB; 4 MiB free fits 2 workers.
    overrides = tiny_overrides(tiny_root, tmp_path, **{'DATASET.NUM_WORKERS': 4})
    small_shm(monkeypatch, 4)
    assert doctor.main(overrides) == 1
    out = capsys.readouterr().out
    shm_line = next(line for line in out.splitlines() if line.startswith('[BLOCK] /dev/shm'))
    assert '--shm-size=8g' in shm_line and 'DATASET.NUM_WORKERS 2 which fits' in shm_line
    assert 'BLOCKED by: /dev/shm' in out

    assert run_main(train, overrides) == 2
    err = capsys.readouterr().err
    assert shm_line in err
    assert not osp.exists(osp.join(tmp_path, 'ar_output'))     # refused before anything ran


def test_no_workers_need_no_shared_memory(tiny_root, tmp_path, monkeypatch):
    small_shm(monkeypatch, 0)
    cfg = config.build_config(tiny_overrides(tiny_root, tmp_path))      # NUM_WORKERS 0
    assert doctor.check_shared_memory(cfg).verdict == 'ok'
    doctor.refuse_blocking(cfg)


def test_shm_limit_compares_with_the_margin(tiny_root, tmp_path, monkeypatch):
    cfg = config.build_config(tiny_overrides(tiny_root, tmp_path, **{'DATASET.NUM_WORKERS': 2}))
    needed = doctor.loader_shm_bytes(cfg) * doctor.SHM_MARGIN
    monkeypatch.setattr(doctor, 'shm_free_bytes', lambda path=doctor.SHM_PATH: int(needed) + 1)
    assert doctor.check_shared_memory(cfg).verdict == 'ok'
    monkeypatch.setattr(doctor, 'shm_free_bytes', lambda path=doctor.SHM_PATH: int(needed) - 1)
    assert doctor.check_shared_memory(cfg).verdict == 'block'
    # DDP: every process on the machine has its own loaders
    assert doctor.loader_shm_bytes(cfg, processes=4) == 4 * doctor.loader_shm_bytes(cfg)


def test_low_open_file_limit_blocks(tiny_root, tmp_path, monkeypatch, capsys):
    overrides = tiny_overrides(tiny_root, tmp_path, **{'DATASET.NUM_WORKERS': 2})
    cfg = config.build_config(overrides)
    needed = doctor.open_files_needed(cfg)
    monkeypatch.setattr(doctor, 'open_file_limit', lambda: (needed, needed))
    assert doctor.check_open_files(cfg).verdict == 'ok'
    monkeypatch.setattr(doctor, 'open_file_limit', lambda: (needed - 1, 4096))
    check = doctor.check_open_files(cfg)
    assert check.verdict == 'block' and 'ulimit -n 65536' in check.fix
    assert run_main(train, overrides) == 2
    assert 'open files' in capsys.readouterr().err


@pytest.mark.parametrize('loader', ['SuperLoader', 'DataLoader'])
def test_shm_bytes_match_what_superloader_allocates(tiny_root, tmp_path, loader):
    cfg = config.build_config(tiny_overrides(tiny_root, tmp_path, **{
        'DATASET.NUM_WORKERS': 1, 'DATASET.PREFETCH': 3, 'TRAIN.BASE_BATCH_SIZE': 4,
        'DATASET.LOADER': loader}))
    if loader == 'DataLoader':      # workers x prefetch in flight and the batch in use
        assert doctor.batches_in_shared_memory(cfg) == 1 * 3 + 1
        return
    train_loader = build_loader(cfg, build_dataset(cfg, 'train'), 'train')
    try:
        batch = next(iter(train_loader))
        slots = train_loader._slots             # allocated once, as the loader keeps them
        allocated = sum(buffer.untyped_storage().nbytes() for slot in slots for buffer in slot)
    finally:
        train_loader.close()
    assert len(slots) == doctor.batches_in_shared_memory(cfg) == 3
    assert allocated == len(slots) * sum(field.nbytes for field in batch)
    assert allocated == len(slots) * doctor.batch_bytes(cfg, cfg.TRAIN.BASE_BATCH_SIZE)
    assert list(batch[0].shape[1:]) == list(doctor.clip_shape(cfg))


def test_read_speed_stops_at_its_bound(tmp_path):
    for index in range(3):
        (tmp_path / f'video{index}.bin').write_bytes(os.urandom(2**20))
    total, _, files = doctor.read_files(str(tmp_path), max_bytes=1_500_000, max_seconds=60)
    assert (total, files) == (1_500_000, 2)
    total, _, _ = doctor.read_files(str(tmp_path), max_bytes=10 * 2**20, max_seconds=0)
    assert total == 0
    assert doctor.read_files(str(tmp_path), max_bytes=10 * 2**20)[0] == 3 * 2**20


def test_missing_dataset_folder_warns(tiny_root, tmp_path):
    cfg = config.build_config(tiny_overrides(tiny_root, tmp_path, **{
        'DATASET.VIDEO_SEQ_PATH': str(tmp_path / 'nowhere')}))
    check = doctor.check_read_speed(cfg)
    assert check.verdict == 'warn' and 'nowhere' in check.found


def test_distributed_variables_are_listed(monkeypatch):
    monkeypatch.setenv('NCCL_DEBUG', 'INFO')
    monkeypatch.setenv('MASTER_PORT', '29500')
    found = doctor.check_distributed_environment().found
    assert 'NCCL_DEBUG=INFO' in found and 'MASTER_PORT=29500' in found


def test_bad_config_exits_2():
    with pytest.raises(SystemExit) as stop:
        doctor.main(['NO_SUCH_KEY', '1'])
    assert stop.value.code == 2
