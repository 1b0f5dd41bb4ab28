"""A torchrun entry for the SLURM tests: each process joins the gloo group, sums the ranks,
and writes what it was given (ranks, rendezvous, its SIGUSR1 handling) to
$SLURM_STANDIN_DIR/ranks/<rank>.json."""
import json
import os
import signal

import torch
import torch.distributed as dist

dist.init_process_group('gloo')
total = torch.tensor([float(dist.get_rank())])
dist.all_reduce(total)
facts = {name: os.environ.get(name) for name in (
    'RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'GROUP_RANK', 'MASTER_ADDR', 'MASTER_PORT',
    'SLURM_NODEID', 'SLURM_JOB_ID', 'OMP_NUM_THREADS')}
facts['rank_sum'] = total.item()
facts['usr1_ignored'] = signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
folder = os.path.join(os.environ['SLURM_STANDIN_DIR'], 'ranks')
os.makedirs(folder, exist_ok=True)
with open(os.path.join(folder, f'{dist.get_rank()}.json'), 'w', encoding='utf-8') as handle:
    json.dump(facts, handle)
dist.destroy_process_group()
