"""Live video on the CPU: the online TSM's cost per new frame against a sliding window that
re-runs a whole clip for every new frame, measured in the same run.

    python -m benchmarks.stream_bench [--size 224] [--segments 8] [--frames 40] [--classes 174]
                                      [--quick]

Both are TSM-MobileNetV2 (random weights at a trained model's scale, eval mode, batch 1): the online one steps one frame
at a time with its shifted channels cached (models/online_tsm.py); the window one is the
published bidirectional TSM on the last `segments` frames, once per new frame (what a
non-online model must do to give a result on every frame). Latency per frame: median and 95th
percentile over `frames` frames after a warm-up. Exactness: the largest difference between the
online runner's per-frame logits and the offline online-shift model's on the same clip.
Last line: `stream: online_ms_per_frame=.. window_ms_per_frame=.. speedup=.. max_abs_diff=..`.
--quick: 64x64 frames, 5 timed frames, 10 classes.
"""
import argparse
import os.path as osp
import sys
import time

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from benchmarks import quick  # noqa: E402
from models.online_tsm import OnlineRunner, TorchOnlineStep  # noqa: E402
from models.tsm import TSM  # noqa: E402


def like_trained(model, seed=0):
    """Random BN statistics and affine parameters and a classifier of a trained scale, so the
    logits are of the size a trained model gives and the exactness figure means something."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.uniform_(-0.2, 0.2, generator=generator)
    torch.nn.init.normal_(model.head.fc.weight, 0, 0.05, generator=generator)
    return model.eval()


def per_frame_ms(process, frames, warm_up=3):
    """Milliseconds of process(frame) for each frame after `warm_up` untimed ones."""
    for frame in frames[:warm_up]:
        process(frame)
    times = []
    for frame in frames[warm_up:]:
        start = time.perf_counter()
        process(frame)
        times.append((time.perf_counter() - start) * 1000)
    return np.asarray(times)


def sliding_window(model, segments):
    """A function of the newest frame that scores the clip of the last `segments` frames."""
    ring = []

    def process(frame):
        ring.append(frame)
        del ring[:-segments]
        clip = np.stack(ring + [ring[-1]] * (segments - len(ring)), axis=2)      # [1, 3, T, H, W]
        with torch.no_grad():
            return model(torch.from_numpy(clip)).numpy()
    return process


def exactness(model, frames):
    """Max |online runner - offline online-shift model| over the per-frame logits of a clip."""
    runner = OnlineRunner(TorchOnlineStep(model))
    online = np.stack([runner(frame)[0] for frame in frames])
    clip = torch.from_numpy(np.stack(frames, axis=2))
    with torch.no_grad():
        offline = model.head(model.forward_features(clip))[0].numpy()
    return float(np.abs(online - offline).max()), float(np.abs(offline).max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--segments', type=int, default=8)
    parser.add_argument('--frames', type=int, default=40, help='timed frames per model')
    parser.add_argument('--classes', type=int, default=174)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: all cores)')
    args = quick.parse_args(parser, argv, size=64, frames=5, classes=10)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    online_model = like_trained(TSM(args.classes, backbone='mobilenetv2', shift='online', dropout=0))
    window_model = TSM(args.classes, backbone='mobilenetv2', dropout=0).eval()
    window_model.load_state_dict(online_model.state_dict())
    rng = np.random.default_rng(0)
    frames = [rng.standard_normal((1, 3, args.size, args.size)).astype(np.float32)
              for _ in range(args.frames + 3)]
    runner = OnlineRunner(TorchOnlineStep(online_model))
    online = per_frame_ms(runner, frames)
    window = per_frame_ms(sliding_window(window_model, args.segments), frames)
    difference, largest = exactness(online_model, frames[:args.segments])
    print(f'TSM-MobileNetV2 at {args.size}x{args.size}, batch 1, {torch.get_num_threads()} threads, '
          f'torch {torch.__version__}; {args.frames} frames after 3 warm-up frames')
    print('| per new frame | median ms | 95th pct ms | frames/s | vs window |')
    print('|---|---|---|---|---|')
    rows = (('online TSM (1 frame, cached shifts)', online),
            (f'sliding window ({args.segments} frames re-run)', window))
    for name, times in rows:
        median = float(np.median(times))
        print(f'| {name} | {median:.1f} | {np.percentile(times, 95):.1f} | {1000 / median:.1f} | '
              f'{np.median(window) / median:.2f}x |')
    print(f'exactness: online runner vs offline online-shift model, {args.segments} frames, '
          f'max |difference| of the per-frame logits {difference:.2e} (logits up to {largest:.1f})')
    online_ms, window_ms = float(np.median(online)), float(np.median(window))
    print(f'stream: online_ms_per_frame={online_ms:.2f} window_ms_per_frame={window_ms:.2f} '
          f'speedup={window_ms / online_ms:.2f} max_abs_diff={difference:.2e}')


if __name__ == '__main__':
    main()
