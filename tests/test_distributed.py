"""DDP with torchrun on CPU (gloo): sharding, synchronised replicas, exact distributed
evaluation, restarts after a worker dies, and SIGTERM that saves the step reached."""
import json
import os
import os.path as osp
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

import evaluate
import train
from conftest import ROOT, free_port, run_main, tiny_overrides
from datasets.loaders import EpochShuffleSampler
from models.tsn import TSN
from utils.distributed import DistContext, replica_max_abs_diff
from utils.stopping import parse_fault

SMALL = {'DATASET.SCALE_SIZE': 36, 'DATASET.CROP_SIZE': 32, 'TRAIN.BASE_BATCH_SIZE': 4,
         'TRAIN.EPOCHS': 3, 'TRAIN.LR_STEPS': [2], 'VAL.NUM_SEGMENTS': 3, 'VAL.BATCH_SIZE': 3,
         'NUM_THREADS': 1}


def test_training_shards_are_padded_to_equal_size_and_cover_every_video():
    single = list(EpochShuffleSampler(10, seed=3))
    shards = [EpochShuffleSampler(10, seed=3, num_replicas=4, rank=r) for r in range(4)]
    for shard in shards:
        shard.set_epoch(0)
    assert [len(s) for s in shards] == [3, 3, 3, 3]
    drawn = [i for shard in shards for i in shard]
    assert sorted(set(drawn)) == list(range(10)) and len(drawn) == 12
    assert list(shards[1]) == single[1::4]          # the same permutation, every 4th index
    shards[0].set_epoch(1)
    assert list(shards[0]) != single[0::4]          # a new order each epoch


def test_evaluation_shards_hold_each_video_exactly_once():
    shards = [EpochShuffleSampler(11, shuffle=False, num_replicas=3, rank=r, pad=False) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 3]
    assert sorted(i for shard in shards for i in shard) == list(range(11))


def test_skip_leaves_out_the_steps_already_done_this_epoch_only():
    sampler = EpochShuffleSampler(12, seed=1, num_replicas=2, rank=1)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.skip(4)
    assert list(sampler) == full[4:] and len(sampler) == 2
    sampler.set_epoch(3)
    assert len(sampler) == 6


def test_fault_switch_is_checked():
    assert parse_fault('exit:1:2:3') == ('exit', 1, 1, 2)
    with pytest.raises(ValueError, match="DLAC_FAULT_INJECT='boom:1'"):
        parse_fault('boom:1')


def replica_diff_process(rank, port, out_dir):
    """One of two gloo processes: rank 1's Linear bias is off by 0.25, and the BN running means
    (buffers, which each DDP process updates with its own batch) differ by 1."""
    torch.distributed.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                                         world_size=2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    model[1].running_mean.fill_(rank)
    if rank == 1:
        model[0].bias.data[1] += 0.25
    ctx = DistContext(rank, 2, rank, torch.device('cpu'), 'gloo')
    with open(osp.join(out_dir, f'rank{rank}.txt'), 'w', encoding='utf-8') as handle:
        handle.write(repr(replica_max_abs_diff(model, ctx)))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_replica_difference_is_measured_across_processes(tmp_path):
    torch.multiprocessing.spawn(replica_diff_process, args=(free_port(), str(tmp_path)), nprocs=2)
    assert [(tmp_path / f'rank{r}.txt').read_text() for r in (0, 1)] == ['0.25', '0.25']
    assert replica_max_abs_diff(torch.nn.Linear(2, 2), DistContext()) is None


def torchrun(args, overrides, env=None, timeout=240):
    """Script/run_train_ddp_m.sh with this interpreter; returns the CompletedProcess."""
    environment = dict(os.environ)
    environment.pop('DLAC_FAULT_INJECT', None)
    environment.update(DLAC_PYTHON=sys.executable, DLAC_PROGRESS='0', **(env or {}))
    return subprocess.run(['bash', 'Script/run_train_ddp_m.sh'] + args + overrides, cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=timeout)


def experiment(snapshot):
    return osp.join(str(snapshot), 'ar_output', 'tsn', 'synthetic_rgb_resnet18')


def read_policy(snapshot):
    with open(osp.join(experiment(snapshot), 'training_policy.json'), encoding='utf-8') as handle:
        return json.load(handle)


def read_log(snapshot, name='train.log'):
    with open(osp.join(experiment(snapshot), 'log', name), encoding='utf-8') as handle:
        return handle.read()


def odd_validation_list(tiny_root, tmp_path):
    """15 of the 16 validation videos: shards of 8 and 7, so padding would show."""
    source = osp.join(str(tiny_root), 'synthetic', 'MetafileSeq', 'val_split1.txt')
    with open(source, encoding='utf-8') as handle:
        lines = handle.read().splitlines()[:15]
    path = tmp_path / 'val15.txt'
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return str(path)


@pytest.mark.slow
def test_two_process_ddp_trains_in_sync_and_evaluates_like_one_process(tiny_root, tmp_path):
    overrides = tiny_overrides(tiny_root, tmp_path, **SMALL, **{
        'DATASET.VAL_META_PATH': odd_validation_list(tiny_root, tmp_path)})
    result = torchrun(['-g', '2', '-c', '1'], overrides)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    policy = read_policy(tmp_path)
    assert policy['processes'] == 2 and policy['global_batch_size'] == 8
    assert (policy['parallel'], policy['nodes'], policy['gpus']) == ('DDP', 1, 0)
    assert policy['lr'] == pytest.approx(0.02)                       # linear scaling
    # 24 training videos: 12 per process, 3 steps of 4 each, on both processes
    assert [row['steps_per_process'] for row in policy['per_epoch']] == [[3, 3]] * 3
    assert policy['replica_max_abs_diff'] == 0.0
    log = read_log(tmp_path)
    assert 'DDP: 2 processes, gloo backend' in log
    assert 'rendering the synthetic dataset' not in log          # the tiny set is reused
    assert 'the 2 replicas end with the same weights: largest difference 0' in log
    assert not osp.exists(osp.join(experiment(tmp_path), 'log', 'rank1'))

    evaluated = torchrun(['-g', '2', '-c', '1', '--entry', 'evaluate.py'], overrides)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    eval_dir = osp.join(experiment(tmp_path), 'eval')
    with open(osp.join(eval_dir, 'report.json'), encoding='utf-8') as handle:
        distributed = json.load(handle)
    distributed_scores = np.load(osp.join(eval_dir, 'scores.npz'))['scores']
    assert distributed['processes'] == 2 and distributed['num_videos'] == 15

    assert run_main(evaluate, overrides) == 0
    with open(osp.join(eval_dir, 'report.json'), encoding='utf-8') as handle:
        single = json.load(handle)
    assert single['processes'] == 1 and single['num_videos'] == 15
    assert distributed['top1'] == single['top1'] and distributed['top5'] == single['top5']
    np.testing.assert_allclose(distributed_scores, np.load(osp.join(eval_dir, 'scores.npz'))['scores'],
                               atol=1e-6)


@pytest.mark.slow
def test_two_process_ddp_with_partial_bn_trains_to_the_end_in_sync(tiny_root, tmp_path):
    """Every TSN preset sets MODEL.PARTIAL_BN; DDP must not wait for the frozen BN parameters."""
    overrides = tiny_overrides(tiny_root, tmp_path, **dict(SMALL, **{
        'TRAIN.EPOCHS': 2, 'MODEL.PARTIAL_BN': True}))
    result = torchrun(['-g', '2', '-c', '1'], overrides)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    policy = read_policy(tmp_path)
    assert [row['epoch'] for row in policy['per_epoch']] == [1, 2]
    assert policy['replica_max_abs_diff'] == 0.0
    weights = torch.load(osp.join(experiment(tmp_path), 'checkpoints', 'last.pth'),
                         weights_only=True)['model']
    assert not torch.equal(weights['backbone.bn1.weight'], torch.ones(64))   # the first BN trains
    assert not torch.equal(weights['backbone.bn1.running_mean'], torch.zeros(64))
    initial = TSN(8, 'resnet18').state_dict()       # BN initialisation draws no random numbers
    frozen = [key[:-len('.running_var')] for key in weights if key.endswith('.running_var')][1:]
    assert len(frozen) == 19
    for name in frozen:               # the others keep their initial affine terms and statistics
        for part in ('weight', 'bias', 'running_mean', 'running_var'):
            assert torch.equal(weights[f'{name}.{part}'], initial[f'{name}.{part}']), name


@pytest.mark.slow
def test_a_dead_worker_is_restarted_and_the_run_resumes_from_last_pth(tiny_root, tmp_path):
    overrides = tiny_overrides(tiny_root, tmp_path, **SMALL)
    fault = {'DLAC_FAULT_INJECT': 'exit:1:2:2'}         # rank 1 dies at step 2 of epoch 2

    no_restarts = torchrun(['-g', '2', '-c', '1'], overrides, env=fault)
    assert no_restarts.returncode != 0
    last = torch.load(osp.join(experiment(tmp_path), 'checkpoints', 'last.pth'), weights_only=True)
    assert (last['epoch'], last['step']) == (1, 0)      # epoch 1's checkpoint is intact

    restarted = torchrun(['-g', '2', '-c', '1', '--max-restarts', '1'], overrides, env=fault)
    assert restarted.returncode == 0, restarted.stdout[-3000:] + restarted.stderr[-3000:]
    assert 'DLAC_FAULT_INJECT: exit in epoch 2 step 2' in restarted.stdout
    log = read_log(tmp_path)
    assert 'torchrun attempt 2' in log
    assert 'resumed from' in log and '1 of 3 epochs done' in log
    policy = read_policy(tmp_path)
    assert [row['epoch'] for row in policy['per_epoch']] == [1, 2, 3]
    assert policy['replica_max_abs_diff'] == 0.0


@pytest.mark.slow
def test_sigterm_on_rank_0_saves_the_step_reached_and_all_processes_stop(tiny_root, tmp_path):
    overrides = tiny_overrides(tiny_root, tmp_path, **SMALL)
    stopped = torchrun(['-g', '2', '-c', '1'], overrides, env={'DLAC_FAULT_INJECT': 'sigterm:0:2:2'})
    assert stopped.returncode == 0, stopped.stderr[-3000:]     # a requested stop is not a failure
    assert 'saved' in stopped.stdout and 'at step 2 of epoch 2' in stopped.stdout
    last = torch.load(osp.join(experiment(tmp_path), 'checkpoints', 'last.pth'), weights_only=True)
    assert (last['epoch'], last['step'], last['world_size']) == (1, 2, 2)

    resumed = torchrun(['-g', '2', '-c', '1'], overrides)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert '1 of 3 epochs done and 2 steps of epoch 2' in read_log(tmp_path)
    assert [row['epoch'] for row in read_policy(tmp_path)['per_epoch']] == [1, 2, 3]


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_equals_an_uninterrupted_run(tiny_root, tmp_path, monkeypatch):
    reference = tmp_path / 'straight'
    assert run_main(train, tiny_overrides(tiny_root, reference, **SMALL)) == 0

    interrupted = tmp_path / 'interrupted'
    overrides = tiny_overrides(tiny_root, interrupted, **SMALL)
    monkeypatch.setenv('DLAC_FAULT_INJECT', 'sigterm:0:2:3')
    handler_before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stop:
        run_main(train, overrides)
    assert stop.value.code == 0
    assert signal.getsignal(signal.SIGTERM) == handler_before      # handler restored
    last = torch.load(osp.join(experiment(interrupted), 'checkpoints', 'last.pth'), weights_only=True)
    assert (last['epoch'], last['step']) == (1, 3)

    monkeypatch.delenv('DLAC_FAULT_INJECT')
    assert run_main(train, overrides) == 0
    ours = torch.load(osp.join(experiment(interrupted), 'checkpoints', 'last.pth'), weights_only=True)
    theirs = torch.load(osp.join(experiment(reference), 'checkpoints', 'last.pth'), weights_only=True)
    for key, value in theirs['model'].items():
        torch.testing.assert_close(ours['model'][key], value, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose([row['train_loss'] for row in ours['history']],
                               [row['train_loss'] for row in theirs['history']], atol=1e-6)


@pytest.mark.slow
def test_use_distributed_forces_a_one_process_group_outside_torchrun(tiny_root, tmp_path, monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    overrides = tiny_overrides(tiny_root, tmp_path, **dict(SMALL, **{'TRAIN.EPOCHS': 1, 'USE_DISTRIBUTED': True}))
    assert run_main(train, overrides) == 0
    assert not torch.distributed.is_initialized()             # the group is closed again
    log = read_log(tmp_path)
    assert 'DDP: 1 processes, gloo backend' in log
    assert 'replicas end with the same weights' not in log    # one process: nothing to compare
    assert read_policy(tmp_path)['replica_max_abs_diff'] is None


@pytest.mark.slow
def test_two_nodes_meet_through_the_c10d_rendezvous(tiny_root, tmp_path):
    """Two torchrun agents (two 'nodes' on this machine), one process each, as the README's
    two-node commands start them."""
    overrides = tiny_overrides(tiny_root, tmp_path, **dict(SMALL, **{'TRAIN.EPOCHS': 1}))
    environment = dict(os.environ, DLAC_PYTHON=sys.executable, DLAC_PROGRESS='0')
    environment.pop('DLAC_FAULT_INJECT', None)
    command = ['bash', 'Script/run_train_ddp_m.sh', '-n', '2', '-g', '1', '-c', '1',
               '--master', f'127.0.0.1:{free_port()}'] + overrides
    nodes = [subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [node.communicate(timeout=240)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert all('--rdzv-backend c10d' in output for output in outputs)
    policy = read_policy(tmp_path)
    assert policy['processes'] == 2 and policy['per_epoch'][0]['steps_per_process'] == [3, 3]
    assert (policy['parallel'], policy['nodes']) == ('DDP', 2)      # the table: DDP (2x1)
    assert policy['replica_max_abs_diff'] == 0.0
