"""Forward + backward + SGD step time per clip for each model, under the speed switches
train.py honours: TRAIN.AMP (autocast: bf16 on CPU, bf16/fp16 on GPU), TRAIN.CHANNELS_LAST
and TRAIN.COMPILE.

    python -m benchmarks.model_bench [--models tsn,tsm,i3d,slowfast,mfnet3d,x3d_s,...] [--batch 1]
                                     [--size 224] [--reps 3] [--no-compile] [--amp both|off|on]
                                     [--amp-dtype bfloat16|float16] [--quick]

Each model runs at its own input (the zoo's frames; the crop it was published with, or --size
for the ResNet family: 224) on the
current device (the first GPU if there is one), through the same helpers train.py uses
(utils.acceleration, ClipNormalizer), on uint8 clips. The baseline, measured in the same run,
is fp32, contiguous, eager. Prints a markdown table with the ratio to the baseline.
--quick: TSN at 8x64x64, 1 timed step after 1 warm-up, fp32 and eager only (on most CPUs
bf16 is emulated, 10x slower, and compiling takes minutes).
"""
import argparse
import itertools
import os.path as osp
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import config  # noqa: E402
from benchmarks import quick  # noqa: E402
from datasets.transforms import build_normalizer  # noqa: E402
from models import build_model  # noqa: E402
from utils.acceleration import grad_scaler, maybe_compile, to_channels_last, with_autocast  # noqa: E402

# name, MODEL_NAME, BACKBONE, frames, config.MODEL overrides, crop (None: --size)
MODELS = {
    'tsn': ('TSN-R50 8 seg', 'tsn', 'resnet50', 8, {}, None),
    'tsm': ('TSM-R50 8 seg', 'tsm', 'resnet50', 8, {}, None),
    'i3d': ('I3D-R50 8x8', 'i3d', 'resnet50', 8, {}, None),
    'slowfast': ('SlowFast-R50 4x16', 'slowfast', 'resnet50', 32,
                 {'SLOWFAST_ALPHA': 8, 'SLOWFAST_FUSION_KERNEL': 5}, None),
    'mfnet3d': ('MFNet3D 16x224', 'mfnet3d', 'mfnet3d', 16, {}, None),
    'x3d_s': ('X3D-S 13x160', 'x3d', 'x3d_s', 13, {}, 160),
    'x3d_m': ('X3D-M 16x224', 'x3d', 'x3d_m', 16, {}, 224),
    'r2plus1d': ('R(2+1)D-18 16x112', 'r2plus1d', 'resnet18', 16, {}, 112),
    'videomae_s': ('VideoMAE ViT-S 16x224', 'videomae', 'vit_small', 16, {}, 224),
}


def make_cfg(key, amp, channels_last, compile_model, amp_dtype):
    cfg = config.default_config()
    _, cfg.MODEL_NAME, cfg.BACKBONE, frames, overrides, _ = MODELS[key]
    cfg.DATASET.CLASS_NUM = 400
    cfg.DATA.NUM_SEGMENTS = frames
    for name, value in overrides.items():
        cfg.MODEL[name] = value
    cfg.TRAIN.AMP, cfg.TRAIN.AMP_DTYPE = amp, amp_dtype
    cfg.TRAIN.CHANNELS_LAST, cfg.TRAIN.COMPILE = channels_last, compile_model
    return cfg, frames


def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def seconds_per_clip(cfg, frames, size, args, device):
    """Median step time / batch after warm-up steps (compilation happens there)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    bare = build_model(cfg).to(device)
    if cfg.TRAIN.CHANNELS_LAST:
        to_channels_last(bare)
    model = maybe_compile(with_autocast(bare, cfg, device), cfg)
    model.train()
    optimizer = torch.optim.SGD(bare.parameters(), lr=0.01, momentum=0.9)
    scaler = grad_scaler(cfg, device)
    normalize = build_normalizer(cfg, device)
    clips = torch.randint(0, 256, (args.batch, 3, frames, size, size), dtype=torch.uint8)
    labels = torch.randint(0, 400, (args.batch,), device=device)
    criterion = nn.CrossEntropyLoss()
    timings = []
    for step in range(args.warmup + args.reps):
        synchronize(device)
        started = time.perf_counter()
        loss = criterion(model(normalize(clips)), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        synchronize(device)
        if step >= args.warmup:
            timings.append(time.perf_counter() - started)
    timings.sort()
    return timings[len(timings) // 2] / args.batch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', default=','.join(MODELS))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--no-compile', action='store_true')
    parser.add_argument('--amp', choices=('both', 'off', 'on'), default='both',
                        help="'off' skips autocast (bf16 is emulated, ~10x slower, on CPUs "
                             'without AVX512-BF16/AMX)')
    parser.add_argument('--amp-dtype', default=None,
                        help="'bfloat16' or 'float16' (default: bfloat16)")
    args = quick.parse_args(parser, argv, models='tsn', size=64, reps=1, warmup=1, amp='off',
                            no_compile=True)
    device = torch.device('cuda', 0) if torch.cuda.is_available() else torch.device('cpu')
    amp_dtype = args.amp_dtype or 'bfloat16'
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        name = f'CPU, {torch.get_num_threads()} threads'
    print(f'{name}; torch {torch.__version__}; batch {args.batch}; median of {args.reps} steps '
          f'after {args.warmup} warm-up steps\n')
    print('| model | input | AMP | channels_last | compile | ms per clip | vs fp32 eager |')
    print('|---|---|---|---|---|---|---|')
    compile_options = (False,) if args.no_compile else (False, True)
    amp_options = {'both': (False, True), 'off': (False,), 'on': (True,)}[args.amp]
    for key in args.models.split(','):
        baseline = None
        for compile_model, amp, channels_last in itertools.product(
                compile_options, amp_options, (False, True)):
            cfg, frames = make_cfg(key, amp, channels_last, compile_model, amp_dtype)
            size = MODELS[key][5] or args.size
            try:
                seconds = seconds_per_clip(cfg, frames, size, args, device)
            except Exception as err:          # report and go on: one setting failing is a finding
                print(f'| {MODELS[key][0]} | {frames}x{size}² | {amp and amp_dtype or "fp32"} '
                      f'| {channels_last} | {compile_model} | failed: {type(err).__name__}: '
                      f'{str(err).splitlines()[0][:80]} | |', flush=True)
                continue
            baseline = baseline or seconds
            print(f'| {MODELS[key][0]} | {frames}x{size}² | {amp and amp_dtype or "fp32"} '
                  f'| {channels_last} | {compile_model} | {seconds * 1000:.1f} '
                  f'| {baseline / seconds:.2f}x |', flush=True)


if __name__ == '__main__':
    main()
