"""VideoMAE pre-training: tube masking, pixel targets, the masked autoencoder's use of visible
tokens only, unlabelled metafiles, and pre-training runs end to end (the loss, the picture,
resuming, fine-tuning from the result). Exactness against transformers and the official
checkpoint layouts: tests/test_videomae_pretrain_weights.py."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

import evaluate
import train
from conftest import run_main, tiny_overrides
from datasets.records import NO_LABEL, check_metafile
from models.videomae_pretrain import (VideoMAEPretrain, masked_patch_loss, patchify, pixel_targets,
                                      reconstruct, token_grid, tube_mask, unpatchify)


def small_model(**options):
    torch.manual_seed(0)
    return VideoMAEPretrain('vit_small', decoder_depth=1, **options).double().eval()


# ---------------------------------------------------------------- masking and targets
def test_tube_mask_hides_the_same_positions_in_every_tubelet():
    mask = tube_mask(5, (3, 4, 4), 0.75, torch.Generator().manual_seed(0))
    assert mask.shape == (5, 48) and mask.dtype == torch.bool
    per_frame = mask.reshape(5, 3, 16)
    assert (per_frame.sum(dim=2) == 12).all()                   # int(0.75 * 16) per tubelet
    assert (per_frame == per_frame[:, :1]).all()                # the same spatial positions
    assert len({tuple(row.tolist()) for row in per_frame[:, 0]}) > 1      # clips differ
    again = tube_mask(5, (3, 4, 4), 0.75, torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)


@pytest.mark.parametrize('ratio', [0.01, 1.0])
def test_tube_mask_refuses_a_ratio_that_hides_none_or_all(ratio):
    with pytest.raises(ValueError, match=r'MODEL.MASK_RATIO .* hides \d+ of 16 positions'):
        tube_mask(1, (1, 4, 4), ratio)


def test_clips_must_divide_into_tubelets():
    with pytest.raises(ValueError, match='divide into 2x16x16 tubelets, got 5 frames of 32x32'):
        token_grid((1, 3, 5, 32, 32))


def test_patchify_lays_out_each_tubelet_time_row_column_then_channel():
    pixels = torch.arange(2 * 3 * 4 * 32 * 48, dtype=torch.float64).reshape(2, 3, 4, 32, 48)
    patches = patchify(pixels)
    assert patches.shape == (2, 2 * 2 * 3, 2 * 16 * 16, 3)
    # clip 1, frame 3, row 20, column 37, channel 2: tubelet (1, 1, 2), inside it (0, 4, 5)
    token, inside = (1 * 2 + 1) * 3 + 2, (0 * 16 + 4) * 16 + 5
    assert patches[1, token, inside, 2] == pixels[1, 2, 2, 20, 37]
    assert torch.equal(unpatchify(patches.flatten(2), pixels.shape), pixels)


def test_pixel_targets_are_each_tubelets_pixels_normalised_per_channel():
    pixels = torch.rand(1, 3, 2, 32, 32, dtype=torch.float64)
    targets = pixel_targets(pixels).reshape(1, 4, 512, 3)
    torch.testing.assert_close(targets.mean(dim=2), torch.zeros(1, 4, 3, dtype=torch.float64))
    torch.testing.assert_close(targets.std(dim=2), torch.ones(1, 4, 3, dtype=torch.float64), atol=1e-4, rtol=0)
    assert torch.equal(pixel_targets(pixels, norm_pix=False), patchify(pixels).flatten(2))


def test_reconstruction_keeps_visible_tubelets_and_denormalises_predictions():
    pixels = torch.rand(2, 3, 4, 32, 32, dtype=torch.float64)
    mask = tube_mask(2, (2, 2, 2), 0.5, torch.Generator().manual_seed(3))
    perfect = pixel_targets(pixels)[mask].reshape(2, -1, 1536)
    torch.testing.assert_close(reconstruct(perfect, pixels, mask), pixels)
    wrong = reconstruct(torch.zeros_like(perfect), pixels, mask)       # 0 = each tubelet's mean
    shown = patchify(wrong)
    assert torch.equal(shown[~mask], patchify(pixels)[~mask])
    torch.testing.assert_close(shown[mask], patchify(pixels).mean(dim=2, keepdim=True)[mask].expand_as(shown[mask]))
    plain = reconstruct(perfect * 0 + 0.25, pixels, mask, norm_pix=False)
    assert (patchify(plain)[mask] == 0.25).all()


# ---------------------------------------------------------------- the model
def test_the_prediction_depends_on_visible_tubelets_only():
    model = small_model()
    clips = torch.randn(2, 3, 4, 32, 32, dtype=torch.float64)
    mask = tube_mask(2, (2, 2, 2), 0.5, torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(clips, mask)
        assert before.shape == (2, 4, 1536)
        hidden = unpatchify(mask[..., None].double().expand(2, 8, 1536), clips.shape).bool()
        changed = torch.where(hidden, torch.randn_like(clips), clips)
        torch.testing.assert_close(model(changed, mask), before, rtol=0, atol=1e-12)
        visible = torch.where(hidden, clips, torch.randn_like(clips))
        assert (model(visible, mask) - before).abs().max() > 1e-3


def test_loss_is_the_error_of_the_masked_tubelets():
    predicted = torch.zeros(1, 2, 4)
    targets = torch.tensor([[[1.0] * 4, [2.0] * 4, [3.0] * 4]])
    mask = torch.tensor([[True, False, True]])
    assert masked_patch_loss(predicted, targets, mask).item() == pytest.approx((1 + 9) / 2)
    # per clip (validation): each clip's own mean, whose mean is the loss
    predicted, targets = torch.zeros(2, 1, 2), torch.tensor([[[1.0, -1.0], [5.0, 5.0]], [[0.0, 0.0], [2.0, 4.0]]])
    mask = torch.tensor([[True, False], [False, True]])
    per_clip = masked_patch_loss(predicted, targets, mask, per_clip=True)
    assert per_clip.tolist() == [1.0, 10.0]
    assert per_clip.mean().item() == pytest.approx(masked_patch_loss(predicted, targets, mask).item())


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    clips = torch.randn(2, 3, 4, 32, 32, dtype=torch.float64)
    mask = tube_mask(2, (2, 2, 2), 0.5, torch.Generator().manual_seed(2))
    targets = pixel_targets(clips)
    results = []
    for checkpointing in (False, True):
        model = small_model(grad_checkpoint=checkpointing, drop_path=0.0).train()
        loss = masked_patch_loss(model(clips, mask), targets, mask)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=1e-12)
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, rtol=0, atol=1e-10, msg=name)


# ---------------------------------------------------------------- unlabelled metafiles
@pytest.mark.parametrize('text, expected', [
    ('a.mp4 100\nmy clip.mp4 50\n', [('a.mp4', 100, NO_LABEL), ('my clip.mp4', 50, NO_LABEL)]),
    ('a.mp4,100\nb, c.mp4,50\n', [('a.mp4', 100, NO_LABEL), ('b, c.mp4', 50, NO_LABEL)]),
    ('# comment\na.mp4 100 7\nb.mp4 50 1\n', [('a.mp4', 100, 7), ('b.mp4', 50, 1)]),
], ids=['whitespace', 'csv', 'labels-ignored'])
def test_pretraining_reads_metafiles_without_labels(tmp_path, text, expected):
    path = tmp_path / 'train.txt'
    path.write_text(text, encoding='utf-8')
    records, problems = check_metafile(str(path), num_classes=2, labelled=False)
    assert problems == []
    assert [(r.path, r.num_frames, r.label) for r in records] == expected
    _, labelled_problems = check_metafile(str(path), num_classes=2)
    assert labelled_problems          # classification still needs labels in range


def test_an_unlabelled_metafile_names_its_bad_lines(tmp_path):
    path = tmp_path / 'train.txt'
    path.write_text('a.mp4 100\nno-count\nb.mp4 0\n', encoding='utf-8')
    records, problems = check_metafile(str(path), labelled=False)
    assert len(records) == 1
    assert problems == [f"{path}:2: expected '<path> <num_frames>', got 'no-count'",
                        f'{path}:3: num_frames must be positive, got 0']


def test_classification_says_an_unlabelled_line_is_for_pretraining(tmp_path):
    path = tmp_path / 'train.txt'
    path.write_text('a.mp4 100\n', encoding='utf-8')
    assert check_metafile(str(path))[1] == [
        f"{path}:1: expected '<path> <num_frames> <label>', got 'a.mp4 100' (no label: only "
        f"pre-training, TRAIN.TASK pretrain, reads unlabelled metafiles)"]


# ---------------------------------------------------------------- pre-training runs
def unlabelled_metafiles(root, folder):
    """The tiny set's metafiles without their label column."""
    paths = {}
    for split in ('train', 'val'):
        lines = (root / 'synthetic' / 'MetafileSeq' / f'{split}_split1.txt').read_text().splitlines()
        target = folder / f'{split}_unlabelled.txt'
        target.write_text(''.join(line.rsplit(' ', 1)[0] + '\n' for line in lines if line.strip()))
        paths[split] = str(target)
    return paths


def pretrain_overrides(root, snapshot, metafiles, **extra):
    values = {'MODEL_NAME': 'videomae', 'BACKBONE': 'vit_small', 'TRAIN.TASK': 'pretrain',
              'EXP_TAG': 'pretrain', 'DATA.CLIP_LEN': 4, 'DATASET.CROP_SIZE': 32,
              'DATASET.SCALE_SIZE': 36, 'MODEL.MASK_RATIO': 0.75, 'MODEL.DECODER_DEPTH': 1,
              'MODEL.DROP_PATH': 0.0, 'TRAIN.OPTIMIZER': 'adamw', 'TRAIN.BASE_LR': 1e-3,
              'TRAIN.WEIGHT_DECAY': 0.05, 'TRAIN.EPOCHS': 2, 'TRAIN.LR_POLICY': 'cosine',
              'DATASET.TRAIN_META_PATH': metafiles['train'], 'DATASET.VAL_META_PATH': metafiles['val']}
    values.update(extra)
    return tiny_overrides(root, snapshot, **values)


def experiment(snapshot, tag='pretrain'):
    return osp.join(str(snapshot), 'ar_output', 'videomae', tag)


@pytest.fixture(scope='module')
def pretrained(tiny_root, tmp_path_factory):
    """Two epochs of pre-training on the tiny set's videos without labels, with an EMA of the
    weights validated beside them."""
    snapshot = tmp_path_factory.mktemp('pretrain')
    metafiles = unlabelled_metafiles(tiny_root, snapshot)
    overrides = pretrain_overrides(tiny_root, snapshot, metafiles, **{'TRAIN.EMA_DECAY': 0.5})
    assert run_main(train, overrides) == 0
    return snapshot, overrides, metafiles


@pytest.mark.slow
def test_pretraining_runs_on_unlabelled_videos_and_keeps_the_lowest_validation_loss(pretrained):
    snapshot, _, _ = pretrained
    folder = experiment(snapshot)
    with open(osp.join(folder, 'training_policy.json'), encoding='utf-8') as handle:
        policy = json.load(handle)
    history = policy['per_epoch']
    assert policy['task'] == 'pretrain'
    assert [row['epoch'] for row in history] == [1, 2]
    assert all(row['train_top1'] is None and 'val_top1' not in row for row in history)
    assert history[-1]['train_loss'] < history[0]['train_loss']       # it learns
    # best.pth: the lowest validation loss over epochs and over the raw and EMA weights
    losses = [(row[key], row['epoch'], weights) for row in history
              for key, weights in (('val_loss', 'raw'), ('val_loss_ema', 'ema'))]
    assert len({loss for loss, _, _ in losses}) == 4
    lowest = min(losses)
    best = torch.load(osp.join(folder, 'checkpoints', 'best.pth'), weights_only=True)
    assert best['best_val_loss'] == pytest.approx(lowest[0]) and best['top1'] is None
    assert (best['epoch'], best['weights']) == lowest[1:]
    assert best['config']['TRAIN']['TASK'] == 'pretrain'
    assert 'decoder.head.weight' in best['model']
    for epoch in (1, 2):
        picture = osp.join(folder, 'reconstruction', f'epoch_{epoch:03d}.png')
        assert osp.getsize(picture) > 10_000, picture
    with open(osp.join(folder, 'log', 'train.log'), encoding='utf-8') as handle:
        log = handle.read()
    assert 'validation: reconstruction loss' in log and 'top1' not in log
    assert 'fine-tune from it with MODEL.PRETRAINED' in log


@pytest.mark.slow
def test_validation_loss_does_not_depend_on_the_batch(pretrained, tmp_path):
    """Each validation video has its own mask (seeded by its index): the loss is a property of
    the weights, not of how the videos were batched."""
    snapshot, overrides, _ = pretrained
    from config import build_config
    from datasets import build_dataset, build_loader
    from engine.pretraining import reconstruction_loss
    from models import build_model
    from utils.distributed import DistContext
    cfg = build_config(overrides)
    model = build_model(cfg)
    model.load_state_dict(torch.load(osp.join(experiment(snapshot), 'checkpoints', 'best.pth'),
                                     weights_only=True)['model'])
    losses = []
    for batch in (8, 3):
        cfg_batch = build_config(overrides + ['VAL.BATCH_SIZE', str(batch)])
        loader = build_loader(cfg_batch, build_dataset(cfg_batch, 'val'), 'val')
        losses.append(reconstruction_loss(model, loader, cfg_batch, DistContext()))
    assert losses[0][1] == losses[1][1] == 16
    assert losses[0][0] == pytest.approx(losses[1][0], rel=1e-6)


@pytest.mark.slow
def test_interrupted_pretraining_resumes_exactly(pretrained, tiny_root, tmp_path, monkeypatch):
    reference, _, metafiles = pretrained
    overrides = pretrain_overrides(tiny_root, tmp_path, metafiles, **{'TRAIN.EMA_DECAY': 0.5})
    real_epoch, calls = train.train_one_epoch, []

    def stop_at_second(run, epoch, *args):
        if epoch == 1 and 'stopped' not in calls:        # after epoch 1 of 2
            calls.append('stopped')
            raise KeyboardInterrupt
        calls.append(epoch)
        return real_epoch(run, epoch, *args)

    monkeypatch.setattr(train, 'train_one_epoch', stop_at_second)
    assert run_main(train, overrides) == 130
    assert run_main(train, overrides) == 0
    assert calls == [0, 'stopped', 1]
    ours = torch.load(osp.join(experiment(tmp_path), 'checkpoints', 'last.pth'), weights_only=True)
    theirs = torch.load(osp.join(experiment(reference), 'checkpoints', 'last.pth'), weights_only=True)
    assert ours['best_val_loss'] == pytest.approx(theirs['best_val_loss'], rel=1e-5)
    for key, value in theirs['model'].items():
        torch.testing.assert_close(ours['model'][key], value, atol=1e-5, rtol=1e-5, msg=key)


@pytest.mark.slow
def test_bf16_checkpointing_and_accumulation_pretrain(tiny_root, tmp_path):
    metafiles = unlabelled_metafiles(tiny_root, tmp_path)
    overrides = pretrain_overrides(tiny_root, tmp_path, metafiles, **{
        'TRAIN.EPOCHS': 1, 'TRAIN.AMP': True, 'TRAIN.AMP_DTYPE': 'bfloat16',
        'MODEL.GRAD_CHECKPOINT': True, 'TRAIN.ACCUM_STEPS': 2, 'TRAIN.BASE_BATCH_SIZE': 4})
    assert run_main(train, overrides) == 0
    with open(osp.join(experiment(tmp_path), 'training_policy.json'), encoding='utf-8') as handle:
        row = json.load(handle)['per_epoch'][0]
    assert np.isfinite(row['train_loss']) and np.isfinite(row['val_loss'])
    assert row['skipped_steps'] == 0


@pytest.mark.slow
def test_fine_tuning_from_pretraining_loads_the_encoder(pretrained, tiny_root, tmp_path, capsys):
    snapshot, _, _ = pretrained
    best = osp.join(experiment(snapshot), 'checkpoints', 'best.pth')
    overrides = tiny_overrides(tiny_root, tmp_path, **{
        'MODEL_NAME': 'videomae', 'BACKBONE': 'vit_small', 'EXP_TAG': 'finetune',
        'DATA.CLIP_LEN': 4, 'DATASET.CROP_SIZE': 32, 'DATASET.SCALE_SIZE': 36,
        'TRAIN.EPOCHS': 1, 'TRAIN.OPTIMIZER': 'adamw', 'TRAIN.BASE_LR': 1e-3,
        'VAL.NUM_CLIPS': 1, 'VAL.NUM_CROPS': 1, 'MODEL.PRETRAINED': best})
    assert run_main(train, overrides) == 0
    folder = experiment(tmp_path, 'finetune')
    with open(osp.join(folder, 'log', 'train.log'), encoding='utf-8') as handle:
        log = handle.read()
    assert 'decoder' in log and 'encoder' in log and best in log
    tuned = torch.load(osp.join(folder, 'checkpoints', 'best.pth'), weights_only=True)
    assert 'head.fc.weight' in tuned['model'] and tuned['top1'] is not None
    # the pre-training checkpoint itself cannot be evaluated: it has no classifier
    with pytest.raises(SystemExit) as stopped:
        run_main(evaluate, ['--checkpoint', best])
    assert stopped.value.code == 2
    assert 'is a pre-training checkpoint' in capsys.readouterr().err


def test_converting_a_pretraining_file_keeps_its_decoder(tmp_path):
    """python -m models.convert of the VideoMAE repository's pre-training checkpoint writes a
    pre-training checkpoint of ours (decoder included), not a classifier around its encoder."""
    from models.convert.__main__ import convert_file
    model = small_model().float()
    source, out = tmp_path / 'checkpoint.pth', tmp_path / 'ours.pth'
    torch.save({'model': model.state_dict(), 'epoch': 799}, source)
    cfg, applied = convert_file(['SNAPSHOT_ROOT', str(tmp_path)], str(source), str(out))
    assert cfg.TRAIN.TASK == 'pretrain' and applied['MODEL.DECODER_DEPTH'] == 1
    written = torch.load(out, weights_only=True)
    assert written['config']['TRAIN']['TASK'] == 'pretrain'
    for name, value in model.state_dict().items():
        assert torch.equal(written['model'][name], value), name


def test_the_pretraining_optimizer_takes_betas_and_spares_the_mask_token(cfg):
    from engine.optimizer import build_optimizer
    cfg.TRAIN.OPTIMIZER, cfg.TRAIN.ADAMW_BETAS, cfg.TRAIN.ZERO_WD_1D_PARAM = 'adamw', [0.9, 0.95], True
    model = VideoMAEPretrain('vit_small', decoder_depth=1)
    optimizer = build_optimizer(model, cfg, 1e-3)
    decay = {name: group['weight_decay'] for group in optimizer.param_groups for name in group['param_names']}
    assert all(group['betas'] == (0.9, 0.95) for group in optimizer.param_groups)
    assert decay['mask_token'] == 0 and decay['encoder.blocks.0.attn.q_bias'] == 0
    assert decay['encoder_to_decoder.weight'] == decay['encoder.blocks.0.attn.qkv.weight'] == cfg.TRAIN.WEIGHT_DECAY


@pytest.mark.parametrize('pairs, message', [
    (['TRAIN.TASK', 'pretrain'], "TRAIN.TASK 'pretrain' is VideoMAE's masked-autoencoder pre-training: set MODEL_NAME videomae"),
    (['TRAIN.TASK', 'finetune'], "TRAIN.TASK must be 'classify' or 'pretrain', got 'finetune'"),
    (['MODEL_NAME', 'videomae', 'BACKBONE', 'vit_small', 'TRAIN.TASK', 'pretrain', 'MIXUP.ENABLE', 'True'],
     "MIXUP.ENABLE mixes labels, and TRAIN.TASK 'pretrain' has none"),
    (['MODEL.MASK_RATIO', '1.0'], 'MODEL.MASK_RATIO must be between 0 and 1, got 1.0'),
    (['TRAIN.ADAMW_BETAS', '[0.9]'], r'TRAIN.ADAMW_BETAS must be two numbers in \[0, 1\), got \[0.9\]'),
])
def test_pretraining_settings_that_cannot_work_are_config_errors(pairs, message):
    from config import ConfigError, build_config
    with pytest.raises(ConfigError, match=message):
        build_config(pairs)


def test_the_reconstruction_picture_greys_out_the_masked_tubelets(tmp_path):
    from utils.plots import masked_view, save_reconstruction_png
    pixels = torch.rand(1, 3, 4, 32, 32)
    mask = torch.tensor([[True, False, False, False] * 2])           # the top-left tubelet
    shown = masked_view(pixels, mask)
    assert (shown[..., :16, :16] == 0.5).all()
    assert torch.equal(shown[..., 16:, :], pixels[..., 16:, :]) and torch.equal(shown[..., 16:], pixels[..., 16:])
    image = save_reconstruction_png(pixels, mask, torch.ones_like(pixels), str(tmp_path / 'r.png'))
    assert (tmp_path / 'r.png').stat().st_size > 1000 and image.dtype == np.uint8 and image.shape[2] == 3
    assert (image == 255).all(axis=2).mean() > 0.2          # the white reconstruction row
