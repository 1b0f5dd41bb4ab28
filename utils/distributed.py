"""torch.distributed as DLAC uses it: one process per GPU (or per CPU slot), started by torchrun.

`init_distributed(cfg)` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT) and joins the group: NCCL on GPUs, gloo on CPU. Outside torchrun it returns a
one-process context, unless USE_DISTRIBUTED forces a group of one (the DDP code path on one
process). Only the main process (rank 0) writes logs, TensorBoard events and checkpoints.
"""
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from .device import select_device


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device('cpu')
    backend: str = ''           # '' when no process group is used

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return bool(self.backend)


def launched_by_torchrun():
    return 'RANK' in os.environ and 'WORLD_SIZE' in os.environ and 'LOCAL_RANK' in os.environ


def local_processes(default=1):
    """Processes of this run on this machine: torchrun's LOCAL_WORLD_SIZE, else `default`."""
    return int(os.environ.get('LOCAL_WORLD_SIZE') or default)


def restart_count():
    """How many times torchrun has restarted this worker group (0 on the first attempt)."""
    return int(os.environ.get('TORCHELASTIC_RESTART_COUNT', '0'))


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def init_distributed(cfg):
    """The process's place in the job, joining the process group when there is one."""
    if launched_by_torchrun():
        rank, world_size = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
        local_rank = int(os.environ['LOCAL_RANK'])
        address, port = os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT'])
    elif cfg.USE_DISTRIBUTED:          # outside torchrun: a group of one
        rank, world_size, local_rank, address, port = 0, 1, 0, '127.0.0.1', free_port()
    else:
        return DistContext(device=select_device(cfg))
    if torch.cuda.is_available() and cfg.GPUS:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f'LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs '
                               'on this node: start at most that many processes per node (-g)')
        device, backend = torch.device('cuda', local_rank), 'nccl'
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device('cpu'), 'gloo'
    if not dist.is_initialized():
        store = generation_store(address, port, rank, world_size)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size)
    return DistContext(rank, world_size, local_rank, device, backend)


def generation_store(address, port, rank, world_size):
    """The rendezvous store at address:port, under a prefix of its own for each start of the
    worker group.

    torchrun keeps one store across restarts (--max-restarts), and the keys a dead group left
    there (its processes' addresses) would otherwise be read by the new group, which then
    tries to connect to processes that no longer exist. Every process adds 1 to a counter on
    joining; a group of `world_size` processes thus agrees on its generation number.
    """
    agent_hosts_store = os.environ.get('TORCHELASTIC_USE_AGENT_STORE') == 'True'
    store = dist.TCPStore(address, port, world_size, is_master=rank == 0 and not agent_hosts_store,
                          multi_tenant=True)
    generation = (store.add('dlac/processes_joined', 1) - 1) // world_size
    return dist.PrefixStore(f'dlac/generation_{generation}', store)


def cleanup(ctx):
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx):
    if ctx.distributed:
        dist.barrier()


def gather_to_main(obj, ctx):
    """[obj of rank 0, obj of rank 1, ...] on the main process, None on the others."""
    if not ctx.distributed:
        return [obj]
    gathered = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def sum_across(values, ctx):
    """Element-wise sum of a list of numbers over all processes (float64)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device(ctx))
    if ctx.distributed:
        dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def _collective_device(ctx):
    return ctx.device if ctx.backend == 'nccl' else torch.device('cpu')


def sync_batch_norm(model, ctx, logger=None):
    """`model` with SyncBatchNorm layers (statistics over all processes' batches) on GPUs;
    unchanged on CPU, where gloo has no SyncBatchNorm kernels (the log says so)."""
    if ctx.backend == 'nccl':
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if logger:
        logger.warning('MODEL.SYNC_BN needs GPUs (NCCL); on CPU each process keeps its own '
                       'BatchNorm statistics')
    return model


def wrap_model(model, ctx):
    """DistributedDataParallel around `model` (already on ctx.device)."""
    device_ids = [ctx.device.index] if ctx.device.type == 'cuda' else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def broadcast_buffers(model, ctx):
    """Copy rank 0's buffers (BatchNorm running statistics) to every process. DDP broadcasts
    them before each forward, and each process then updates them with its own batch, so they
    differ after training; validation and the saved model must use one set."""
    if ctx.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


def replica_max_abs_diff(model, ctx):
    """Largest difference between any process's parameters and rank 0's: 0.0 when the
    replicas are in sync, as DDP keeps them; None with fewer than two processes (nothing to
    compare). Call it before broadcast_buffers or anything else that copies rank 0's state;
    buffers (BN statistics) are left out, since each process updates them with its own batch."""
    if not ctx.distributed or ctx.world_size < 2:
        return None
    flat = torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    diff = (flat - reference).abs().max().reshape(1)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff.item())
