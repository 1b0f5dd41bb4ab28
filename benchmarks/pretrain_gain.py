"""The learning check of VideoMAE pre-training: does a short masked-autoencoder pre-training on
the training videos (their labels unused) make fine-tuning better than fine-tuning from scratch
with the same fine-tuning budget? Both fine-tunings run in the same invocation with the same
recipe and seed; only MODEL.PRETRAINED differs.

    python -m benchmarks.pretrain_gain [--pretrain-epochs 30] [--finetune-epochs 12]
        [--root data] [--snapshot DIR] [--clip-len 8] [--tiny] [--quick]

1. pre-training (TRAIN.TASK pretrain, ViT-S, mask 0.9, the training metafile without its label
   column), best.pth = the lowest validation reconstruction loss;
2. fine-tuning from it (MODEL.PRETRAINED best.pth: the encoder loaded, the decoder dropped);
3. fine-tuning from scratch.
Prints a table (top1 of the last and the best epoch, the pre-training's loss) and a last line
`pretrain_gain: pretrain_epochs=.. finetune_epochs=.. scratch_top1=.. pretrained_top1=.. gain=..`
(best validation top1 of each fine-tuning; gain in points). `--tiny` runs on the tests' tiny
set for a quick check of the pipeline (its figures mean nothing); `--quick` is --tiny with
one epoch of each training, 4-frame clips, no loader workers and one thread (two made its
steps 5x slower on a busy 2-core machine). Runs resume (TRAIN.RESUME auto): with the same
--snapshot, a finished pre-training or fine-tuning is read back, not run again, so other
fine-tuning settings can be compared on one pre-training.
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import train  # noqa: E402
from benchmarks import quick  # noqa: E402
from DataTool.Synthetic.synthetic import generate, is_complete  # noqa: E402

TINY = {'per_class': (3, 2), 'frames': (12, 16)}
DEFAULT = {'per_class': (40, 12), 'frames': (24, 40)}


def without_labels(metafile, target):
    """A copy of `metafile` without its label column: what pre-training on your own unlabelled
    videos starts from."""
    with open(metafile, encoding='utf-8') as source, open(target, 'w', encoding='utf-8') as out:
        for line in source:
            if line.strip():
                out.write(line.rstrip('\n').rsplit(' ', 1)[0] + '\n')
    return target


def common_overrides(args, data_root, snapshot, sizes):
    return {'MODEL_NAME': 'videomae', 'BACKBONE': 'vit_small', 'DATASET.ROOT_PATH': data_root,
            'SNAPSHOT_ROOT': snapshot, 'DATASET.SYNTHETIC_VIDEOS_PER_CLASS': list(sizes['per_class']),
            'DATASET.SYNTHETIC_FRAMES': list(sizes['frames']), 'DATA.CLIP_LEN': args.clip_len,
            'DATA.FRAME_INTERVAL': 2, 'DATASET.SCALE_SIZE': 72, 'DATASET.CROP_SIZE': 64,
            'TRAIN.OPTIMIZER': 'adamw', 'TRAIN.LR_POLICY': 'cosine', 'TRAIN.BASE_BATCH_SIZE': 8,
            'SEED': args.seed, 'NUM_THREADS': args.threads,
            'DATASET.NUM_WORKERS': args.workers}


def as_argv(values):
    pairs = []
    for key, value in values.items():
        text = str(value).replace(' ', '') if isinstance(value, (list, tuple)) else str(value)
        pairs += [key, text]
    return pairs


def run_training(values):
    """train.main on these overrides; the run's best.pth contents and the wall time."""
    import torch
    from config import build_config, exp_dir
    started = time.time()
    argv = as_argv(values)
    code = train.main(argv)
    if code != 0:
        raise SystemExit(f'training failed (exit {code}): {" ".join(argv)}')
    folder = exp_dir(build_config(argv))
    best = torch.load(osp.join(folder, 'checkpoints', 'best.pth'), map_location='cpu', weights_only=True)
    with open(osp.join(folder, 'training_policy.json'), encoding='utf-8') as handle:
        history = json.load(handle)['per_epoch']
    return best, history, time.time() - started, folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--pretrain-epochs', type=int, default=30)
    parser.add_argument('--finetune-epochs', type=int, default=12)
    parser.add_argument('--clip-len', type=int, default=8)
    parser.add_argument('--layer-decay', type=float, default=1.0,
                        help="fine-tuning's TRAIN.LAYER_DECAY, the same for both runs (VideoMAE's: 0.75)")
    parser.add_argument('--root', default=None, help='data root (default: a temporary folder)')
    parser.add_argument('--snapshot', default=None, help='experiments folder (default: temporary)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--tiny', action='store_true', help="the tests' tiny set (a pipeline check)")
    args = quick.parse_args(parser, argv, tiny=True, pretrain_epochs=1, finetune_epochs=1,
                            clip_len=4, workers=0, threads=1)
    sizes = TINY if args.tiny else DEFAULT
    data_root = args.root or tempfile.mkdtemp(prefix='pretrain_gain_data_')
    snapshot = args.snapshot or tempfile.mkdtemp(prefix='pretrain_gain_runs_')
    dataset = osp.join(data_root, 'synthetic')
    if not is_complete(dataset, args.seed, sizes['per_class'], sizes['frames']):
        generate(dataset, seed=args.seed, videos_per_class=sizes['per_class'],
                 frame_range=sizes['frames'], show_progress=False)
    os.makedirs(snapshot, exist_ok=True)
    meta = osp.join(dataset, 'MetafileSeq')
    common = common_overrides(args, data_root, snapshot, sizes)

    pretrain, pretrain_history, pretrain_s, pretrain_dir = run_training({
        **common, 'EXP_TAG': 'pretrain', 'TRAIN.TASK': 'pretrain', 'TRAIN.EPOCHS': args.pretrain_epochs,
        'TRAIN.BASE_LR': 1e-3, 'TRAIN.WARMUP_EPOCHS': max(1, args.pretrain_epochs // 10),
        'TRAIN.WEIGHT_DECAY': 0.05, 'TRAIN.ADAMW_BETAS': [0.9, 0.95], 'TRAIN.ZERO_WD_1D_PARAM': True,
        'MODEL.MASK_RATIO': 0.9, 'MODEL.DROP_PATH': 0.0,
        'DATASET.TRAIN_META_PATH': without_labels(osp.join(meta, 'train_split1.txt'),
                                                  osp.join(snapshot, 'train_unlabelled.txt')),
        'DATASET.VAL_META_PATH': without_labels(osp.join(meta, 'val_split1.txt'),
                                                osp.join(snapshot, 'val_unlabelled.txt'))})
    finetune = {**common, 'TRAIN.EPOCHS': args.finetune_epochs, 'TRAIN.BASE_LR': 5e-4,
                'TRAIN.WARMUP_EPOCHS': 1.0, 'TRAIN.WEIGHT_DECAY': 0.05, 'TRAIN.LAYER_DECAY': args.layer_decay,
                'MODEL.DROP_PATH': 0.1, 'TRAIN.LABEL_SMOOTHING': 0.1, 'TRAIN.ZERO_WD_1D_PARAM': True,
                'VAL.NUM_CLIPS': 1,
                'VAL.NUM_CROPS': 1}
    best_path = osp.join(pretrain_dir, 'checkpoints', 'best.pth')
    results = {}
    for name, extra in (('from pre-training', {'MODEL.PRETRAINED': best_path}),
                        ('from scratch', {'MODEL.PRETRAINED': ''})):
        tag = (f"finetune_{'pretrained' if extra['MODEL.PRETRAINED'] else 'scratch'}"
               f'_{args.finetune_epochs}ep_ld{args.layer_decay:g}')
        best, history, seconds, _ = run_training({**finetune, **extra, 'EXP_TAG': tag})
        results[name] = (best['top1'], history[-1]['val_top1'], seconds)

    print(f"ViT-S, {args.clip_len}x64x64 clips, synthetic set ({sizes['per_class'][0]} training and "
          f"{sizes['per_class'][1]} validation videos per class), seed {args.seed}")
    print(f'pre-training: {args.pretrain_epochs} epochs in {pretrain_s / 60:.1f} min, validation '
          f"reconstruction loss {pretrain_history[0]['val_loss']:.4f} (epoch 1) -> "
          f"{pretrain['best_val_loss']:.4f} (best, epoch {pretrain['epoch']})")
    print(f'| fine-tuning, {args.finetune_epochs} epochs | best val top1 | last val top1 | minutes |')
    print('|---|---|---|---|')
    for name, (best_top1, last_top1, seconds) in results.items():
        print(f'| {name} | {best_top1:.2f} | {last_top1:.2f} | {seconds / 60:.1f} |')
    scratch, pretrained = results['from scratch'][0], results['from pre-training'][0]
    print(f'pretrain_gain: pretrain_epochs={args.pretrain_epochs} finetune_epochs={args.finetune_epochs} '
          f'scratch_top1={scratch:.2f} pretrained_top1={pretrained:.2f} gain={pretrained - scratch:+.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
