"""Script/run_train_slurm.sh without a cluster: the stand-ins in tests/slurm play sbatch, srun,
scontrol and scancel. Two 'nodes' of this machine meet on the first host; SLURM's warning
(USR1) mid-epoch saves last.pth, the job requeues itself once, and the requeued attempt ends
with the weights of an uninterrupted run."""
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import ROOT, free_port, tiny_overrides
from utils.stopping import GracefulStop

STANDIN = osp.join(ROOT, 'tests', 'slurm')
SCRIPT = 'Script/run_train_slurm.sh'
SETTINGS = {'DATASET.SCALE_SIZE': 36, 'DATASET.CROP_SIZE': 32, 'TRAIN.BASE_BATCH_SIZE': 2,
            'TRAIN.EPOCHS': 3, 'TRAIN.LR_STEPS': [2], 'TRAIN.PRINT_FREQ': 1,
            'VAL.NUM_SEGMENTS': 3, 'VAL.BATCH_SIZE': 3, 'DATASET.NUM_WORKERS': 1}


def slurm_env(state, hosts='localhost'):
    """This environment with the stand-ins first on PATH and no SLURM job of its own."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith('SLURM') and name != 'DLAC_FAULT_INJECT'}
    environment.update(PATH=STANDIN + os.pathsep + os.environ['PATH'], SLURM_STANDIN_DIR=str(state),
                       SLURM_STANDIN_PYTHON=sys.executable, SLURM_STANDIN_HOSTS=hosts,
                       DLAC_PYTHON=sys.executable, DLAC_PROGRESS='0')
    return environment


def submit(state, sbatch_options, script_args, output, hosts='localhost'):
    """sbatch (the stand-in) SCRIPT from the repository root; its output goes to `output`."""
    return subprocess.Popen([osp.join(STANDIN, 'sbatch')] + sbatch_options + [SCRIPT] + script_args,
                            cwd=ROOT, env=slurm_env(state, hosts), stdout=output,
                            stderr=subprocess.STDOUT)


def wait_for_text(path, pattern, process, timeout=180):
    """The first match of `pattern` in the growing file `path`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path, encoding='utf-8', errors='replace') as handle:
            found = re.search(pattern, handle.read())
        if found:
            return found
        assert process.poll() is None, f'the job ended before {pattern!r} appeared'
        time.sleep(0.05)
    raise AssertionError(f'{pattern!r} did not appear in {timeout} s')


def last_checkpoint(snapshot):
    return torch.load(osp.join(str(snapshot), 'ar_output', 'tsn', 'synthetic_rgb_resnet18',
                               'checkpoints', 'last.pth'), weights_only=True)


def test_outside_an_allocation_the_script_says_how_to_submit(tmp_path):
    result = subprocess.run(['bash', SCRIPT, '-g', '2'], cwd=ROOT, env=slurm_env(tmp_path),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert 'not inside a SLURM job' in result.stderr and 'sbatch Script/run_train_slurm.sh' in result.stderr


def test_nodes_and_ranks_are_slurms_and_bad_numbers_are_refused(tmp_path):
    environment = dict(slurm_env(tmp_path), SLURM_JOB_ID='7', SLURM_JOB_NODELIST='localhost')
    for args, message in ((['-n', '2'], '-n: the nodes, their ranks and the rendezvous come from SLURM'),
                          (['-g', 'two'], "whole numbers, got 'two'")):
        result = subprocess.run(['bash', SCRIPT] + args, cwd=ROOT, env=environment,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 2 and message in result.stderr
        assert '[slurm] job' not in result.stderr           # refused before anything starts


def test_two_nodes_meet_on_the_first_host_with_slurms_node_ranks(tmp_path):
    """sbatch -N 2 on two names of this machine, 2 processes each: torchrun on every node with
    SLURM's node rank, all four processes in one gloo group, USR1 ignored by torchrun and so
    inherited as ignored until training installs its handler."""
    state, port = tmp_path / 'slurm', free_port()
    with open(tmp_path / 'job.out', 'w', encoding='utf-8') as output:
        job = submit(state, ['-N', '2', '--cpus-per-task=2'],
                     ['-g', '2', '--port', str(port), '--entry', 'tests/slurm/show_ranks.py'],
                     output, hosts='localhost,127.0.0.1')
        assert job.wait(timeout=120) == 0, (tmp_path / 'job.out').read_text()[-3000:]
    ranks = [json.loads((state / 'ranks' / f'{rank}.json').read_text()) for rank in range(4)]
    assert [(r['RANK'], r['GROUP_RANK'], r['SLURM_NODEID'], r['LOCAL_RANK']) for r in ranks] == [
        ('0', '0', '0', '0'), ('1', '0', '0', '1'), ('2', '1', '1', '0'), ('3', '1', '1', '1')]
    assert {(r['MASTER_ADDR'], r['MASTER_PORT'], r['WORLD_SIZE']) for r in ranks} == {('localhost', str(port), '4')}
    assert all(r['rank_sum'] == 6.0 and r['usr1_ignored'] for r in ranks)
    assert all(r['OMP_NUM_THREADS'] == '1' for r in ranks)          # 2 cores per node / 2 processes
    assert not (state / 'requeue.log').exists()


def test_loader_workers_leave_usr1_to_the_training_process():
    """SLURM signals every process of a step: a loader worker must not die of USR1."""
    child = subprocess.run([sys.executable, '-c', (
        'import os, signal, sys; sys.path.insert(0, sys.argv[1]); '
        'from datasets.super_loader import prepare_worker_process as p; p(0); '
        'os.kill(os.getpid(), signal.SIGUSR1); print("alive")'), ROOT],
        capture_output=True, text=True, timeout=60)
    assert child.returncode == 0 and child.stdout.strip() == 'alive', child.stderr


def test_usr1_is_a_stop_signal_named_in_the_message(capfd):
    previous = signal.getsignal(signal.SIGUSR1)
    with GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)        # SLURM and the node's shell may both pass it on
        assert stop.requested and stop.signum == signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) == previous
    assert capfd.readouterr().err.count('[stop] SIGUSR1: finishing this step, then saving last.pth') == 1


@pytest.mark.slow
def test_usr1_mid_epoch_saves_requeues_once_and_resumes_to_the_uninterrupted_weights(tiny_root, tmp_path):
    straight, interrupted = tmp_path / 'straight', tmp_path / 'interrupted'
    script_args = ['-g', '2', '-c', '1']
    with open(tmp_path / 'straight.out', 'w', encoding='utf-8') as output:
        job = submit(tmp_path / 'slurm_straight', [], script_args + ['--port', str(free_port())] +
                     tiny_overrides(tiny_root, straight, **SETTINGS), output)
        assert job.wait(timeout=300) == 0, (tmp_path / 'straight.out').read_text()[-3000:]
    assert not (tmp_path / 'slurm_straight' / 'requeue.log').exists()

    state, log = tmp_path / 'slurm', tmp_path / 'interrupted.out'
    with open(log, 'w', encoding='utf-8') as output:
        job = submit(state, [], script_args + ['--port', str(free_port())] +
                     tiny_overrides(tiny_root, interrupted, **SETTINGS), output)
        job_id = wait_for_text(log, r'Submitted batch job (\d+)', job).group(1)
        wait_for_text(log, r'epoch 2 \[1/6\]', job)
        # what SLURM does 120 s before the time limit with --signal=B:USR1@120
        subprocess.run([osp.join(STANDIN, 'scancel'), '--batch', '--signal=USR1', job_id],
                       env=slurm_env(state), check=True, timeout=30)
        assert job.wait(timeout=300) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert (state / 'requeue.log').read_text() == f'requeue {job_id}\n'          # once
    stopped = re.search(r'stopped by SIGUSR1 in epoch 2 after step (\d+): saved .*last\.pth', text)
    assert stopped and 1 <= int(stopped.group(1)) < 6, text[-3000:]
    assert text.count('stopped by SIGUSR1') == 1 and f'job {job_id} requeued' in text  # rank 0 saves
    assert f'job {job_id}, attempt 2' in text
    assert f'1 of 3 epochs done and {stopped.group(1)} steps of epoch 2' in text

    ours, theirs = last_checkpoint(interrupted), last_checkpoint(straight)
    assert (ours['epoch'], theirs['epoch']) == (3, 3)
    for key, value in theirs['model'].items():
        torch.testing.assert_close(ours['model'][key], value, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose([row['train_loss'] for row in ours['history']],
                               [row['train_loss'] for row in theirs['history']], atol=1e-6)
