"""VideoMAE pre-training memory: what one step (forward, loss, backward) adds to what training
holds anyway, with and without MODEL.GRAD_CHECKPOINT, in float32 and under bf16 autocast, and
what each step costs in time, all measured in the same run.

    python -m benchmarks.pretrain_memory [--size vit_base] [--frames 16] [--crop 224]
                                         [--batch 2] [--mask-ratio 0.9] [--reps 1] [--threads N]
                                         [--quick]

The model is VideoMAEPretrain as train.py builds it for TRAIN.TASK 'pretrain' (build_model:
the published decoder, 4 blocks; MODEL.DROP_PATH 0, as VideoMAE pre-trains), random weights,
in training mode, on random normalised clips with a tube mask of --mask-ratio; the loss is the
normalised-pixel MSE on the masked tubelets (pixel_targets, masked_patch_loss); bf16 runs the
forward under autocast through utils.acceleration.with_autocast, as TRAIN.AMP does. Each
configuration runs in a fresh subprocess: one warm-up step, --reps timed steps (the median is
reported), then one step whose memory is measured. The gradients exist before the measured
step (the warm-up made them; zero_grad keeps them), as they do in training from the second
step on: parameters, gradients and AdamW's two moments (4x the parameters' float32 size, given
on the first line) are held whatever the batch and are not counted. What is counted is the
peak, during the step, of the memory the step allocated and had not yet freed: activations
kept for the backward pass, recomputed ones, autocast's bf16 weight copies, temporaries.

How the memory is measured:
- On a GPU: torch.cuda.max_memory_allocated() during the step minus memory_allocated() before
  it (after reset_peak_memory_stats()).
- On the CPU there is no allocator statistic. The peak resident set (getrusage ru_maxrss) is
  a high-water mark of the whole process: the warm-up step sets it and the measured step rarely
  raises it, and without a warm-up it mixes in one-time costs (thread pools, oneDNN kernels);
  glibc keeps freed blocks and arenas, so it measures the allocator more than the model (a
  trial at ViT-S 4x64, after a warm-up step: 77 MiB of growth without checkpointing, 15 with,
  for tensor peaks under 2 MiB apart). torch.profiler(profile_memory=True) recorded too few
  of the CPU allocations in torch 2.13 (85 events for a whole step, summing below zero) to
  rebuild a timeline. So a TorchDispatchMode (LiveTensorBytes below) sees every aten op the step runs
  (forward, backward, the recomputation of checkpointed blocks, autocast's casts) and counts
  the bytes of each new storage an op returns (not storages aliasing the op's inputs: views and
  in-place results) until it is freed (a weakref finalizer on the storage; PyTorch keeps one
  Python object per storage while it lives). Its peak is max_memory_allocated's on a GPU less
  the caching allocator's rounding and less the workspace a kernel allocates and frees inside
  itself (which max_memory_allocated counts); it is exact and the same in every run, whatever
  the threads or the machine's load, unlike the RSS.

Time per step: forward + loss + backward (no optimizer), median of --reps steps, without the
memory tracking. Checkpointing re-runs each block's forward in the backward pass (about a
third more compute). On CPUs without AVX512-BF16 or AMX, bf16 is emulated and much slower:
its memory figure holds, its time does not say what a GPU would do.
Last line: `pretrain_memory: size=.. checkpoint_ratio=.. bf16_ratio=..`, the memory of the
step with checkpointing (float32) and under bf16 autocast (no checkpointing), each over the
baseline's (float32, no checkpointing).
--quick: ViT-S at 8x96 (144 tokens, 16 visible), batch 1, one thread (two on a busy 2-core
machine made steps up to 50x slower); checkpointing still saves about 2/3 of the step's memory.
"""
import argparse
import gc
import json
import os.path as osp
import subprocess
import sys
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import config  # noqa: E402
from benchmarks import quick  # noqa: E402
from models import build_model  # noqa: E402
from models.videomae_pretrain import masked_patch_loss, pixel_targets, token_grid, tube_mask  # noqa: E402
from utils.acceleration import with_autocast  # noqa: E402

MIB = 2 ** 20
# label, TRAIN.AMP, MODEL.GRAD_CHECKPOINT; the first is the baseline
CONFIGURATIONS = [
    ('float32', False, False),
    ('float32, grad checkpoint', False, True),
    ('bf16 autocast', True, False),
    ('bf16 autocast, grad checkpoint', True, True),
]


class LiveTensorBytes(TorchDispatchMode):
    """Bytes of the CPU storages created by the ops run under this mode and still alive
    (`live`), and their highest value (`peak`). Storages that existed before (parameters,
    gradients, inputs) are never counted: an op's view of one, or its in-place result, aliases
    one of the op's inputs."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._counted = set()

    def _freed(self, key, nbytes):
        self._counted.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(t.untyped_storage()) for t in tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor) and t.device.type == 'cpu'}
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor) or tensor.device.type != 'cpu':
                continue
            storage = tensor.untyped_storage()
            key, nbytes = id(storage), storage.nbytes()
            if nbytes and key not in inputs and key not in self._counted:
                self._counted.add(key)
                self.live += nbytes
                self.peak = max(self.peak, self.live)
                weakref.finalize(storage, self._freed, key, nbytes)
        return out


def make_cfg(args, amp, grad_checkpoint):
    return config.build_config([
        'MODEL_NAME', 'videomae', 'BACKBONE', args.size, 'TRAIN.TASK', 'pretrain',
        'MODEL.MASK_RATIO', str(args.mask_ratio), 'MODEL.DROP_PATH', '0.0',
        'MODEL.GRAD_CHECKPOINT', str(grad_checkpoint), 'TRAIN.AMP', str(amp),
        'TRAIN.AMP_DTYPE', 'bfloat16', 'DATA.CLIP_LEN', str(args.frames),
        'DATASET.CROP_SIZE', str(args.crop), 'DATASET.SCALE_SIZE', str(args.crop)])


def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def measure(args, amp, grad_checkpoint):
    """One configuration, in this process: {'memory': bytes, 'seconds': median step time, ...}."""
    device = torch.device('cuda', 0) if torch.cuda.is_available() else torch.device('cpu')
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = make_cfg(args, amp, grad_checkpoint)
    torch.manual_seed(0)
    bare = build_model(cfg).to(device).train()
    model = with_autocast(bare, cfg, device)
    generator = torch.Generator().manual_seed(0)
    clips = torch.randn(args.batch, 3, args.frames, args.crop, args.crop, generator=generator).to(device)
    mask = tube_mask(args.batch, token_grid(clips.shape), args.mask_ratio, generator, device)
    mean = torch.tensor(cfg.DATASET.MEAN, device=device).view(1, 3, 1, 1, 1)
    std = torch.tensor(cfg.DATASET.STD, device=device).view(1, 3, 1, 1, 1)

    def step():
        with torch.no_grad():
            targets = pixel_targets(clips * std + mean, cfg.MODEL.NORM_PIX_LOSS)
        loss = masked_patch_loss(model(clips, mask).float(), targets, mask)
        loss.backward()
        return loss.item()

    timings = []
    for index in range(1 + args.reps):
        bare.zero_grad(set_to_none=False)
        synchronize(device)
        started = time.perf_counter()
        step()
        synchronize(device)
        if index:
            timings.append(time.perf_counter() - started)
    bare.zero_grad(set_to_none=False)
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        synchronize(device)
        memory = torch.cuda.max_memory_allocated(device) - before
        where = torch.cuda.get_device_name(device)
    else:
        tracker = LiveTensorBytes()
        with tracker:
            step()
        memory = tracker.peak
        where = f'CPU, {torch.get_num_threads()} threads'
    timings.sort()
    return {'memory': memory, 'seconds': timings[len(timings) // 2], 'device': where,
            'parameters': sum(p.numel() for p in bare.parameters()),
            'visible': int((~mask[0]).sum()), 'tokens': mask.shape[1]}


def in_subprocess(args, index):
    """measure() of CONFIGURATIONS[index] in a fresh Python process (nothing shared: no
    allocator state, caches or thread pools left by another configuration)."""
    command = [sys.executable, '-m', 'benchmarks.pretrain_memory', '--worker', str(index),
               '--size', args.size, '--frames', str(args.frames), '--crop', str(args.crop),
               '--batch', str(args.batch), '--mask-ratio', str(args.mask_ratio),
               '--reps', str(args.reps), '--threads', str(args.threads)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f'{CONFIGURATIONS[index][0]}: the worker failed:\n{result.stderr[-3000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', default='vit_base', choices=('vit_small', 'vit_base'))
    parser.add_argument('--frames', type=int, default=16)
    parser.add_argument('--crop', type=int, default=224)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--mask-ratio', type=float, default=0.9)
    parser.add_argument('--reps', type=int, default=1, help='timed steps (after one warm-up step)')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: its default)')
    parser.add_argument('--worker', type=int, default=None, help=argparse.SUPPRESS)
    args = quick.parse_args(parser, argv, size='vit_small', frames=8, crop=96, batch=1, threads=1)
    if args.reps < 1:
        parser.error('--reps must be at least 1')
    if args.worker is not None:
        _, amp, grad_checkpoint = CONFIGURATIONS[args.worker]
        print(json.dumps(measure(args, amp, grad_checkpoint)))
        return
    results = []
    for index, (label, _, _) in enumerate(CONFIGURATIONS):
        results.append(in_subprocess(args, index))
        if index == 0:
            first = results[0]
            parameters = first['parameters'] * 4 / MIB
            print(f'{first["device"]}; torch {torch.__version__}; {args.size} pre-training, '
                  f'{args.frames}x{args.crop}x{args.crop} clips, batch {args.batch}, mask '
                  f'{args.mask_ratio}: {first["visible"]} of {first["tokens"]} tokens visible per '
                  f'clip; step = forward + loss + backward, median of {args.reps} after 1 warm-up')
            print(f'held whatever the batch, not counted: parameters {parameters:.0f} MiB, their '
                  f'gradients {parameters:.0f} MiB, AdamW moments {2 * parameters:.0f} MiB '
                  f'(float32)\n')
            print('| configuration | memory MiB | MiB per clip | memory vs baseline | s per step '
                  '| time vs baseline |')
            print('|---|---|---|---|---|---|')
        result, baseline = results[-1], results[0]
        print(f'| {label} | {result["memory"] / MIB:.1f} | {result["memory"] / MIB / args.batch:.1f} '
              f'| {result["memory"] / baseline["memory"]:.2f} | {result["seconds"]:.2f} '
              f'| {result["seconds"] / baseline["seconds"]:.2f} |', flush=True)
    memory = [result['memory'] for result in results]
    print(f'\npretrain_memory: size={args.size} checkpoint_ratio={memory[1] / memory[0]:.3f} '
          f'bf16_ratio={memory[2] / memory[0]:.3f}')


if __name__ == '__main__':
    main()
