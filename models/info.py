"""Model information: parameters and FLOPs per clip.

    python -m models.info MODEL_NAME [--backbone resnet50] [--frames 8] [--size 224] [--classes 400]
    python -m models.info --table          # every model next to its published figures

FLOPs are counted with torch.utils.flop_counter and reported as multiply-adds (GFLOPs as the
papers and fvcore count them: one fused multiply-add = one FLOP; flop_counter counts two).
"""
import argparse
import copy
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

# name, MODEL_NAME, BACKBONE, frames, crop size, config overrides, published params (M) and
# GFLOPs, source. All with 400 classes (Kinetics-400). The SlowFast-family figures are per
# 256x256 view, the crop of their 3-crop test.
PUBLISHED = (
    ('TSN-R50 8 seg', 'tsn', 'resnet50', 8, 224, {}, 24.3, 33.0, 'TSM paper, Table 2'),
    ('TSN-BNInception 8 seg', 'tsn', 'bninception', 8, 224, {}, 10.7, 16.0, 'TSM paper, Table 2'),
    ('TSM-R50 8 seg', 'tsm', 'resnet50', 8, 224, {}, 24.3, 33.0, 'TSM paper, Table 2'),
    ('I3D-R50 8x8', 'i3d', 'resnet50', 8, 256, {}, 28.04, 37.53, 'PySlowFast / PyTorchVideo zoo'),
    ('SlowFast-R50 4x16', 'slowfast', 'resnet50', 32, 256,
     {'SLOWFAST_ALPHA': 8, 'SLOWFAST_FUSION_KERNEL': 5}, 34.48, 36.69, 'PyTorchVideo zoo'),
    ('SlowFast-R50 8x8', 'slowfast', 'resnet50', 32, 256,
     {'SLOWFAST_ALPHA': 4, 'SLOWFAST_FUSION_KERNEL': 7}, 34.57, 65.71, 'PyTorchVideo zoo'),
    ('MFNet3D 16x224', 'mfnet3d', 'mfnet3d', 16, 224, {}, 8.0, 11.1, 'MFNet paper (ECCV 2018)'),
    ('X3D-XS 4x160', 'x3d', 'x3d_xs', 4, 160, {}, 3.79, 0.60,
     'PySlowFast zoo; pytorchvideo zoo: 3.79 M, 0.91 GFLOPs'),
    ('X3D-S 13x160', 'x3d', 'x3d_s', 13, 160, {}, 3.79, 1.96,
     'PySlowFast zoo; pytorchvideo zoo: 3.79 M, 2.96 GFLOPs'),
    ('X3D-M 16x224', 'x3d', 'x3d_m', 16, 224, {}, 3.79, 4.73,
     'PySlowFast zoo; pytorchvideo zoo: 3.79 M, 6.72 GFLOPs'),
    ('R3D-18 16x112', 'r3d', 'resnet18', 16, 112, {}, 33.371472, 40.697, 'torchvision weights meta'),
    ('MC3-18 16x112', 'mc3', 'resnet18', 16, 112, {}, 11.69544, 43.343, 'torchvision weights meta'),
    ('R(2+1)D-18 16x112', 'r2plus1d', 'resnet18', 16, 112, {}, 31.505325, 40.519,
     'torchvision weights meta'),
    ('X3D-L 16x312', 'x3d', 'x3d_l', 16, 312, {}, 6.2, 18.37, 'PySlowFast zoo (6.2 M as printed there)'),
    ('VideoMAE ViT-S 16x224', 'videomae', 'vit_small', 16, 224, {}, 22.0, 57.0,
     'VideoMAE paper, Kinetics-400 table (22 M, 57 G)'),
    ('VideoMAE ViT-B 16x224', 'videomae', 'vit_base', 16, 224, {}, 87.0, 180.0,
     'VideoMAE paper, Kinetics-400 table (87 M, 180 G)'),
)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_gflops(model, frames, size, batch=1):
    """Multiply-adds (in G) of one forward pass on a [batch, 3, frames, size, size] clip."""
    model = copy.deepcopy(model).eval().to('meta')     # shapes only: counts without computing
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(batch, 3, frames, size, size, device='meta'))
    return counter.get_total_flops() / 2 / 1e9 / batch


def build(model_name, backbone, classes, overrides=None):
    """A model built through build_model from a fresh default config."""
    import config
    from models import build_model
    cfg = config.default_config()
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = model_name, backbone, classes
    for key, value in (overrides or {}).items():
        cfg.MODEL[key] = value
    return build_model(cfg)


def describe(model_name, backbone, frames, size, classes, overrides=None):
    model = build(model_name, backbone, classes, overrides)
    return count_parameters(model), count_gflops(model, frames, size)


def published_table(classes=400):
    """Markdown rows: ours next to the published figures, with the ratios."""
    lines = ['| model | input | params (M) | published | ratio | GFLOPs | published | ratio | source |',
             '|---|---|---|---|---|---|---|---|---|']
    for name, model_name, backbone, frames, size, overrides, pub_params, pub_flops, source in PUBLISHED:
        params, gflops = describe(model_name, backbone, frames, size, classes, overrides)
        lines.append(f'| {name} | {frames}x{size}x{size} | {params / 1e6:.2f} | {pub_params} '
                     f'| {params / 1e6 / pub_params:.3f} | {gflops:.2f} | {pub_flops} '
                     f'| {gflops / pub_flops:.3f} | {source} |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('model_name', nargs='?', default='tsn')
    parser.add_argument('--backbone', default='resnet50')
    parser.add_argument('--frames', type=int, default=8, help='T of the [N, 3, T, H, W] input')
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--classes', type=int, default=400)
    parser.add_argument('--table', action='store_true', help='all models vs published figures')
    args = parser.parse_args(argv)
    if args.table:
        print(published_table(args.classes))
        return 0
    params, gflops = describe(args.model_name, args.backbone, args.frames, args.size, args.classes)
    print(f'{args.model_name} ({args.backbone}), input 1x3x{args.frames}x{args.size}x{args.size}, '
          f'{args.classes} classes: {params:,} parameters ({params / 1e6:.2f} M), '
          f'{gflops:.2f} GFLOPs (multiply-adds) per clip')
    return 0


if __name__ == '__main__':
    sys.exit(main())
