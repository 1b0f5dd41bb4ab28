"""Faults made for real (corrupt JPEGs, truncated videos, broken metafiles, a full disk, a
code-running pickle, a diverging loss, SIGTERM) and what DLAC does about each."""
import errno
import glob
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

import config
import evaluate
import train
from conftest import ROOT, run_main, tiny_overrides
from datasets import MetafileError, build_dataset, check_data
from utils import checkpoint
from utils.checkpoint import CheckpointError, load_checkpoint, save_atomic, tensor_checksum

EXP = ('ar_output', 'tsn', 'synthetic_rgb_resnet18')


def exp_folder(snapshot):
    return osp.join(str(snapshot), *EXP)


def copy_dataset(tiny_root, tmp_path):
    """A private copy of the tiny synthetic set, to damage."""
    root = tmp_path / 'data'
    shutil.copytree(osp.join(tiny_root, 'synthetic'), root / 'synthetic')
    return root


def frame_folder(root, split, line_no=0, video=False):
    suffix = '_video' if video else ''
    meta = root / 'synthetic' / 'MetafileSeq' / f'{split}_split1{suffix}.txt'
    path = meta.read_text().splitlines()[line_no].rsplit(maxsplit=2)[0]
    return root / 'synthetic' / 'VideoSeq' / path


def damage_three_training_samples(root):
    """Sample 0: every JPEG replaced by garbage; sample 1: every JPEG emptied; sample 2: its
    frames deleted. Returns their folders."""
    folders = [frame_folder(root, 'train', n) for n in (0, 1, 2)]
    for jpeg in folders[0].glob('*.jpg'):
        jpeg.write_bytes(b'\xff\xd8 not really a jpeg')
    for jpeg in folders[1].glob('*.jpg'):
        jpeg.write_bytes(b'')
    for jpeg in folders[2].glob('*.jpg'):
        jpeg.unlink()
    return folders


def run(script, overrides, extra=(), timeout=600):
    return subprocess.run([sys.executable, script] + list(extra) + overrides, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def train_log(snapshot):
    with open(osp.join(exp_folder(snapshot), 'log', 'train.log'), encoding='utf-8') as handle:
        return handle.read()


def epochs_of(path):
    return torch.load(path, weights_only=True)['epoch']


# ---------------------------------------------------------------- 1. unreadable samples
def test_a_truncated_video_is_replaced_in_training_and_flagged_in_evaluation(tiny_root, tmp_path, cfg):
    root = copy_dataset(tiny_root, tmp_path)
    video = frame_folder(root, 'train', 0, video=True)
    video.write_bytes(video.read_bytes()[:600])                   # cut off after the header
    cfg = config.build_config(tiny_overrides(root, tmp_path, **{'DATASET.INPUT_TYPE': 'video'}))
    train_set = build_dataset(cfg, 'train')
    clip, label, used, bad = train_set[0]
    assert bad == 0 and used != 0 and label == train_set.records[used].label
    assert clip.shape == train_set[5][0].shape
    val_video = frame_folder(root, 'val', 0, video=True)
    val_video.write_bytes(b'')
    val_set = build_dataset(cfg, 'val')
    _, label, index, bad = val_set[0]
    assert (index, bad, label) == (0, 0, val_set.records[0].label)     # kept in place, flagged


@pytest.mark.slow
def test_unreadable_training_samples_are_replaced_logged_and_counted(tiny_root, tmp_path):
    root = copy_dataset(tiny_root, tmp_path)
    folders = damage_three_training_samples(root)
    overrides = tiny_overrides(root, tmp_path, **{'TRAIN.EPOCHS': 1,
                                                  'DATASET.MAX_BAD_FRACTION': 0.2})
    assert run_main(train, overrides) == 0
    log = train_log(tmp_path)
    for folder in folders:
        assert f'unreadable sample {osp.relpath(folder, root / "synthetic" / "VideoSeq")}' in log
    assert 'epoch 1: 3 unreadable training samples were replaced' in log
    with open(osp.join(exp_folder(tmp_path), 'training_policy.json')) as handle:
        assert json.load(handle)['per_epoch'][0]['replaced_samples'] == 3
    events = glob.glob(osp.join(exp_folder(tmp_path), 'tensorboard', 'events.*'))
    assert any(b'data/replaced_samples' in open(path, 'rb').read() for path in events)


@pytest.mark.slow
def test_too_many_unreadable_samples_stop_with_exit_2_and_the_list(tiny_root, tmp_path):
    root = copy_dataset(tiny_root, tmp_path)
    overrides = tiny_overrides(root, tmp_path, **{'TRAIN.EPOCHS': 1})
    assert run_main(train, overrides) == 0
    last = osp.join(exp_folder(tmp_path), 'checkpoints', 'last.pth')
    before = open(last, 'rb').read()
    folders = damage_three_training_samples(root)
    # 0.1 of 24 allows 2: training stops at the third, after meeting all three
    result = run('train.py', tiny_overrides(root, tmp_path, **{'TRAIN.EPOCHS': 2,
                                                               'DATASET.MAX_BAD_FRACTION': 0.1}))
    assert result.returncode == 2, result.stderr[-2000:]
    assert '3 unreadable training samples in epoch 2: more than DATASET.MAX_BAD_FRACTION=0.1 of 24' \
        in result.stderr
    listed = open(osp.join(exp_folder(tmp_path), 'log', 'bad_samples.txt')).read()
    for folder in folders:
        name = osp.relpath(folder, root / 'synthetic' / 'VideoSeq')
        assert name in result.stderr and f'epoch 2\t{name}' in listed, name
    assert open(last, 'rb').read() == before and epochs_of(last) == 1      # untouched


@pytest.mark.slow
def test_evaluation_leaves_unreadable_videos_out_and_says_so(tiny_root, tmp_path):
    root = copy_dataset(tiny_root, tmp_path)
    overrides = tiny_overrides(root, tmp_path, **{'TRAIN.EPOCHS': 1})
    assert run_main(train, overrides) == 0
    bad = frame_folder(root, 'val', 3)
    for jpeg in bad.glob('*.jpg'):
        jpeg.write_bytes(b'garbage')
    assert run_main(evaluate, overrides) == 0
    with open(osp.join(exp_folder(tmp_path), 'eval', 'report.json')) as handle:
        report = json.load(handle)
    assert report['num_videos'] == 15 and report['num_unreadable'] == 1
    assert osp.basename(bad) in report['unreadable'][0]
    with open(osp.join(exp_folder(tmp_path), 'log', 'eval.log')) as handle:
        assert '1 of 16 videos could not be read and are left out of the metrics' in handle.read()


# ---------------------------------------------------------------- 2. metafile problems up front
@pytest.mark.slow
def test_every_metafile_problem_is_reported_at_once_before_training(tiny_root, tmp_path):
    meta = tmp_path / 'train.txt'
    meta.write_text('move_left/a 12 0\n'
                    'no_numbers_here\n'
                    'move_left/b 12 9\n'
                    'move_left/c -4 1\n'
                    'move_left/a 12 0\n', encoding='utf-8')
    overrides = tiny_overrides(tiny_root, tmp_path, **{
        'DATASET.TRAIN_META_PATH': str(meta), 'DATASET.VIDEO_SEQ_PATH': str(tmp_path / 'nowhere')})
    result = run('train.py', overrides, timeout=300)
    assert result.returncode == 2
    for expected in (f'{meta}:2: expected', f'{meta}:3: label 9 is out of range for '
                     'DATASET.CLASS_NUM=8', f'{meta}:4: num_frames must be positive, got -4',
                     f'{meta}:5: move_left/a is listed again (first at line 1)',
                     f'DATASET.VIDEO_SEQ_PATH {tmp_path / "nowhere"} is not a folder',
                     '5 problems in the dataset settings and metafiles'):
        assert expected in result.stderr
    assert not osp.exists(osp.join(exp_folder(tmp_path), 'checkpoints', 'last.pth'))
    assert 'epoch 1' not in train_log(tmp_path)


def test_a_misspelt_dataset_name_lists_the_datasets_found(tiny_root, cfg):
    cfg = config.build_config(['DATASET.ROOT_PATH', str(tiny_root), 'DATASET.NAME', 'synthetc'])
    with pytest.raises(MetafileError, match=r"DATASET.NAME 'synthetc' is not a dataset folder of "
                                            r".* \(found: synthetic\)"):
        check_data(cfg)


# ---------------------------------------------------------------- 3. checkpoints
def test_a_save_that_fails_mid_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'last.pth')
    save_atomic({'epoch': 1, 'weights': torch.ones(3)}, path, keep_previous=True)

    def full_disk(state, handle):
        handle.write(b'PK\x03\x04 half a checkpoint')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.torch, 'save', full_disk)
    with pytest.raises(CheckpointError, match=r'could not write .*last.pth: No space left on '
                                              r'device; the previous last.pth is kept'):
        save_atomic({'epoch': 2, 'weights': torch.zeros(3)}, path, keep_previous=True)
    assert load_checkpoint(path)['epoch'] == 1
    assert sorted(os.listdir(tmp_path)) == ['last.pth']               # no temp file left


@pytest.mark.slow
def test_training_on_a_full_disk_exits_2_and_keeps_last_pth(tiny_root, tmp_path, monkeypatch):
    overrides = tiny_overrides(tiny_root, tmp_path, **{'TRAIN.EPOCHS': 1})
    assert run_main(train, overrides) == 0
    last = osp.join(exp_folder(tmp_path), 'checkpoints', 'last.pth')
    real_save = torch.save

    def full_disk(state, handle):
        if 'optimizer' in state:
            handle.write(b'half')
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(state, handle)

    monkeypatch.setattr(checkpoint.torch, 'save', full_disk)
    assert run_main(train, tiny_overrides(tiny_root, tmp_path, **{'TRAIN.EPOCHS': 2})) == 2
    assert load_checkpoint(last)['epoch'] == 1


def test_damaged_weights_fail_the_checksum(tmp_path):
    weights = {'w': torch.arange(6.0)}
    state = {'model': weights, 'checksum': tensor_checksum(weights), 'epoch': 3}
    path = str(tmp_path / 'last.pth')
    save_atomic(state, path)
    assert load_checkpoint(path)['epoch'] == 3
    state['model'] = {'w': torch.arange(6.0) + 1e-3}                  # same file shape, bytes off
    torch.save(state, path)
    with pytest.raises(CheckpointError, match='last.pth is damaged: its model weights do not match'):
        load_checkpoint(path)


@pytest.mark.slow
def test_resume_falls_back_to_the_previous_checkpoint_when_last_is_damaged(tiny_root, tmp_path):
    overrides = tiny_overrides(tiny_root, tmp_path)           # 2 epochs
    assert run_main(train, overrides) == 0
    last = osp.join(exp_folder(tmp_path), 'checkpoints', 'last.pth')
    assert epochs_of(last) == 2 and epochs_of(last + '.prev') == 1
    with open(last, 'r+b') as handle:                          # truncated: a crash mid-copy
        handle.truncate(os.path.getsize(last) // 2)
    assert run_main(train, overrides) == 0
    log = train_log(tmp_path)
    assert 'resuming from the previous checkpoint' in log and '1 of 2 epochs done' in log
    assert epochs_of(last) == 2


def test_a_pickle_that_would_run_code_is_refused(tiny_root, tmp_path):
    marker = tmp_path / 'ran'

    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {marker}',))

    evil = tmp_path / 'evil.pth'
    torch.save({'model': Payload()}, evil)
    with pytest.raises(CheckpointError, match=r'refused to load .*evil.pth: it is a pickle that '
                                              r'would import and run code \((posix|os)\.system\)'):
        load_checkpoint(str(evil))
    result = run('evaluate.py', tiny_overrides(tiny_root, tmp_path), ['--checkpoint', str(evil)],
                 timeout=300)
    assert result.returncode == 2 and 'refused to load' in result.stderr
    assert not marker.exists()


# ---------------------------------------------------------------- 4. NaN / inf loss
@pytest.mark.slow
def test_a_diverging_loss_is_skipped_then_stops_with_exit_2(tiny_root, tmp_path):
    overrides = tiny_overrides(tiny_root, tmp_path, **{'TRAIN.EPOCHS': 1})
    assert run_main(train, overrides) == 0
    last = osp.join(exp_folder(tmp_path), 'checkpoints', 'last.pth')
    diverging = tiny_overrides(tiny_root, tmp_path, **{
        'TRAIN.EPOCHS': 2, 'TRAIN.BASE_LR': 1e38, 'TRAIN.CLIP_GRAD': 0.0,
        'TRAIN.MAX_BAD_STEPS': 2})
    result = run('train.py', diverging)
    assert result.returncode == 2, result.stderr[-2000:]
    assert '2 steps in a row were skipped (TRAIN.MAX_BAD_STEPS), the last for loss' in result.stderr
    log = train_log(tmp_path)
    assert 'step skipped (1 in a row). Samples of this batch: move' in log
    state = load_checkpoint(last)
    assert state['epoch'] == 1
    assert all(torch.isfinite(value).all() for value in state['model'].values()
               if value.is_floating_point())


# ---------------------------------------------------------------- 5. SIGTERM
@pytest.mark.slow
def test_sigterm_saves_exits_0_and_resuming_gives_the_same_losses(tiny_root, tmp_path):
    settings = {'TRAIN.EPOCHS': 2, 'TRAIN.LR_STEPS': [1], 'TRAIN.PRINT_FREQ': 1}
    reference = tmp_path / 'straight'
    assert run_main(train, tiny_overrides(tiny_root, reference, **settings)) == 0

    snapshot = tmp_path / 'killed'
    overrides = tiny_overrides(tiny_root, snapshot, **settings)
    process = subprocess.Popen([sys.executable, 'train.py'] + overrides, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log_path = osp.join(exp_folder(snapshot), 'log', 'train.log')
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if osp.isfile(log_path) and 'epoch 2 [1/3]' in open(log_path).read():
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    state = load_checkpoint(osp.join(exp_folder(snapshot), 'checkpoints', 'last.pth'))
    assert state['epoch'] == 1 and state['step'] >= 1            # mid-epoch 2

    assert run_main(train, overrides) == 0
    policies = []
    for folder in (snapshot, reference):
        with open(osp.join(exp_folder(folder), 'training_policy.json')) as handle:
            policies.append(json.load(handle)['per_epoch'])
    assert [r['lr'] for r in policies[0]] == [r['lr'] for r in policies[1]]
    np.testing.assert_allclose([r['train_loss'] for r in policies[0]],
                               [r['train_loss'] for r in policies[1]], atol=1e-5)


class TrainingProcess:
    """train.py in a subprocess, its stderr read as it comes, its log watched."""

    def __init__(self, overrides, snapshot):
        self.process = subprocess.Popen([sys.executable, 'train.py'] + overrides, cwd=ROOT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.stderr = []
        self.reader = threading.Thread(target=lambda: self.stderr.extend(self.process.stderr))
        self.reader.start()
        self.log_path = osp.join(exp_folder(snapshot), 'log', 'train.log')

    def wait_for(self, text, where='log', timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline and self.process.poll() is None:
            seen = (open(self.log_path).read() if osp.isfile(self.log_path) else '') \
                if where == 'log' else ''.join(self.stderr)
            if text in seen:
                return
            time.sleep(0.01)
        raise AssertionError(f'{text!r} never appeared in the {where}: {"".join(self.stderr)[-2000:]}')

    def finish(self, timeout=300):
        self.process.wait(timeout=timeout)
        self.reader.join()
        return self.process.returncode, ''.join(self.stderr)


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_0_and_a_second_ctrl_c_stops_at_once(tiny_root, tmp_path):
    # steps of a second or more, so that both Ctrl-C land within one step
    overrides = tiny_overrides(tiny_root, tmp_path, **{
        'TRAIN.EPOCHS': 3, 'TRAIN.LR_STEPS': [2], 'TRAIN.PRINT_FREQ': 1, 'DATA.NUM_SEGMENTS': 8,
        'DATASET.SCALE_SIZE': 128, 'DATASET.CROP_SIZE': 112, 'VAL.NUM_SEGMENTS': 2})
    last = osp.join(exp_folder(tmp_path), 'checkpoints', 'last.pth')

    once = TrainingProcess(overrides, tmp_path)
    once.wait_for('epoch 2 [1/3]')
    once.process.send_signal(signal.SIGINT)
    code, stderr = once.finish()
    assert code == 0, stderr[-2000:]
    assert 'Ctrl-C again stops at once' in stderr
    state = load_checkpoint(last)
    assert (state['epoch'], state['step']) == (1, 2)                 # after step 2 of epoch 2

    twice = TrainingProcess(overrides, tmp_path)                      # resumes at step 3
    twice.wait_for('epoch 3 [1/3]')
    twice.process.send_signal(signal.SIGINT)
    twice.wait_for('[stop] SIGINT', where='stderr')
    twice.process.send_signal(signal.SIGINT)
    code, stderr = twice.finish()          # at once: the step is not finished, nothing saved
    assert code == 130, stderr[-2000:]
    assert 'interrupted: stopped at once, nothing saved since the last checkpoint' in stderr
    state = load_checkpoint(last)
    assert (state['epoch'], state['step']) == (2, 0)                 # epoch 2's end, intact


# ---------------------------------------------------------------- 6. arguments
@pytest.mark.slow
def test_a_checkpoint_of_another_class_count_is_explained(tiny_root, tmp_path):
    assert run_main(train, tiny_overrides(tiny_root, tmp_path, **{'TRAIN.EPOCHS': 1})) == 0
    fewer = tiny_overrides(tiny_root, tmp_path, **{'DATASET.CLASS_NUM': 10, 'TRAIN.EPOCHS': 2})
    messages = {'train.py': 'was trained for 8 classes but DATASET.CLASS_NUM is 10',    # resuming
                'evaluate.py': 'was trained with DATASET.CLASS_NUM 8'}     # its config's layer
    for script, message in messages.items():
        result = run(script, fewer, timeout=300)
        assert result.returncode == 2
        assert message in result.stderr
