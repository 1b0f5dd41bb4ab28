"""Training-step throughput: one process against DistributedDataParallel over N processes.

    python -m benchmarks.ddp_throughput [--procs 2] [--model tsn --backbone resnet18]
                                        [--frames 8] [--size 112] [--batch 8] [--steps 20]
                                        [--quick]

Each setting runs forward, backward and an SGD step on random clips of the given shape (the
data pipeline is left out: this measures the model and gradient synchronisation only). The
baseline, measured in the same run, is one process using all the CPU threads (or one GPU).
With GPUs, each process takes one GPU and the backend is NCCL; on CPU the processes share the
cores (threads = cores / processes) and the backend is gloo. Prints a markdown table.
--quick: 2 processes (1 with one GPU), 2 clips of 3x4x64x64 per process and step, 2 steps
after 1 warm-up.
"""
import argparse
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import quick  # noqa: E402


def build(args):
    import config
    from models import build_model
    cfg = config.default_config()
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = args.model, args.backbone, 400
    return build_model(cfg)


def run_steps(model, optimizer, device, args):
    """Seconds per step over args.steps steps, after args.warmup steps."""
    clips = torch.randn(args.batch, 3, args.frames, args.size, args.size, device=device)
    labels = torch.randint(0, 400, (args.batch,), device=device)
    criterion = nn.CrossEntropyLoss()
    timings = []
    for step in range(args.warmup + args.steps):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        loss = criterion(model(clips), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        if step >= args.warmup:
            timings.append(time.perf_counter() - started)
    return sum(timings) / len(timings)


def worker(rank, world_size, threads, port, args, results):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    use_cuda = torch.cuda.is_available()
    device = torch.device('cuda', rank) if use_cuda else torch.device('cpu')
    if use_cuda:
        torch.cuda.set_device(device)
    torch.manual_seed(0)
    model = build(args).to(device)
    if world_size > 1 or args.force_ddp:
        dist.init_process_group('nccl' if use_cuda else 'gloo', rank=rank, world_size=world_size)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[rank] if use_cuda else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    seconds = run_steps(model, optimizer, device, args)
    results[rank] = seconds
    if dist.is_initialized():
        dist.destroy_process_group()


def measure(world_size, threads, args, port):
    """Clips per second over all processes."""
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(worker, args=(world_size, threads, port, args, results), nprocs=world_size, join=True)
    seconds = max(results.values())       # the group moves at its slowest process
    return world_size * args.batch / seconds, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--procs', type=int, default=2)
    parser.add_argument('--model', default='tsn')
    parser.add_argument('--backbone', default='resnet18')
    parser.add_argument('--frames', type=int, default=8)
    parser.add_argument('--size', type=int, default=112)
    parser.add_argument('--batch', type=int, default=8, help='clips per process and step')
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    args = quick.parse_args(parser, argv, procs=min(2, torch.cuda.device_count() or 2), frames=4,
                            size=64, batch=2, steps=2, warmup=1)
    cores = os.cpu_count() or 1
    gpus = torch.cuda.device_count()
    if gpus and args.procs > gpus:
        parser.error(f'--procs {args.procs} but only {gpus} GPUs')
    settings = [('1 process (baseline)', 1, cores, False), ('DDP, 1 process', 1, cores, True)]
    if args.procs > 1:
        settings.append((f'DDP, {args.procs} processes', args.procs, max(cores // args.procs, 1), True))
    device = torch.cuda.get_device_name(0) if gpus else f'CPU, {cores} cores'
    print(f'{args.model}/{args.backbone}, clips {args.batch}x3x{args.frames}x{args.size}x{args.size} '
          f'per process and step, {args.steps} steps after {args.warmup} warm-up, on {device}\n')
    print('| setting | processes | threads each | s per step | clips/s | vs baseline |')
    print('|---|---|---|---|---|---|')
    baseline = None
    for index, (name, procs, threads, force_ddp) in enumerate(settings):
        args.force_ddp = force_ddp
        rate, seconds = measure(procs, threads, args, port=29600 + index)
        baseline = baseline or rate
        print(f'| {name} | {procs} | {threads} | {seconds:.3f} | {rate:.1f} | {rate / baseline:.2f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
