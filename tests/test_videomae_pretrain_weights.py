"""VideoMAE pre-training weights (kind 'masked_autoencoder'): transformers' VideoMAEForPreTraining
folders, the VideoMAE repository's pre-training checkpoint.pth and our TRAIN.TASK pretrain
runs load into models/videomae_pretrain.VideoMAEPretrain exactly (the decoder's output, the
loss and the reconstruction equal transformers', float64); into a VideoMAE classification
model their encoder alone, the decoder dropped and logged; and a file that is not a
pre-training model is refused by a VideoMAEPretrain, saying what it is."""
import argparse
import copy
import json
import logging
import os
import shutil

import pytest
import torch

import config
from models.convert import SOURCES, detect, read_weights
from models.convert.common import KIND_PRETRAIN
from models.tsn import TSN
from models.videomae import VideoMAE
from models.videomae_pretrain import (VideoMAEPretrain, masked_patch_loss, pixel_targets, reconstruct,
                                      tube_mask)
from models.weights import WeightsError, load_converted, load_pretrained
from test_convert import through_pretrained
from utils.checkpoint import CheckpointError

# ViT-S models built, saved and loaded: ~30 s on 2 cores, beside transformers' VideoMAE tests
# (tests/test_zoo_families.py), which are slow too
pytestmark = pytest.mark.slow

LOG = logging.getLogger('test')
# ImageNet's mean and std as transformers un-normalises clips for its targets: float32 constants
# cast to the clip's dtype (plain pixels differ from float64 constants by ~1e-9)
MEAN = torch.tensor([0.485, 0.456, 0.406]).double().view(1, 3, 1, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).double().view(1, 3, 1, 1, 1)
GRID = (2, 2, 2)            # 4 frames of 32x32: 2x2x2 tubelets


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


def randomised(model, seed=0):
    """Every parameter random (LayerNorm weights around 1, q/v biases and mask_token too), so
    no test can pass on a freshly initialised copy."""
    generator = torch.Generator().manual_seed(seed)
    for name, parameter in model.named_parameters():
        noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype) * 0.05
        is_norm_weight = name.endswith('weight') and parameter.dim() == 1
        parameter.copy_(noise + (1.0 if is_norm_weight else 0.0))
    return model.eval()


def clip_and_mask(seed=0, batch=2):
    generator = torch.Generator().manual_seed(seed)
    clip = torch.randn(batch, 3, 4, 32, 32, dtype=torch.float64, generator=generator)
    return clip, tube_mask(batch, GRID, 0.5, generator)


@pytest.fixture(scope='module')
def transformers_pretraining(tmp_path_factory):
    """A random VideoMAEForPreTraining of ViT-S's size with the published ViT-S decoder (192
    wide, 3 heads, 4 blocks), transformers' own LayerNorm eps (1e-12), saved with
    save_pretrained: (the reference in float64, the folder)."""
    from references import need
    need('transformers')
    import transformers
    hf_config = transformers.VideoMAEConfig(
        image_size=32, num_frames=4, hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
        intermediate_size=1536, decoder_hidden_size=192, decoder_num_hidden_layers=4,
        decoder_num_attention_heads=3, decoder_intermediate_size=768, use_mean_pooling=False,
        norm_pix_loss=True)
    torch.manual_seed(0)
    with torch.no_grad():
        reference = randomised(transformers.VideoMAEForPreTraining(hf_config))
    folder = tmp_path_factory.mktemp('hf') / 'videomae-small-pretraining'
    reference.save_pretrained(str(folder))
    return reference.double().eval(), folder


def tubelet_denormalised(logits, pixels, mask):
    """The clip with each masked tubelet replaced by the reference's prediction de-normalised
    with that tubelet's own per-channel mean and (unbiased, + 1e-6) std, computed tubelet by
    tubelet as VideoMAE's visualisation does."""
    expected = pixels.clone()
    frames, rows, cols = GRID
    for n in range(pixels.shape[0]):
        masked = 0
        for token in range(frames * rows * cols):
            if not mask[n, token]:
                continue
            t, rest = divmod(token, rows * cols)
            r, c = divmod(rest, cols)
            where = (n, slice(None), slice(2 * t, 2 * t + 2), slice(16 * r, 16 * r + 16), slice(16 * c, 16 * c + 16))
            values = pixels[where].permute(1, 2, 3, 0).reshape(-1, 3)       # (time, row, col) x channel
            guess = logits[n, masked].reshape(-1, 3)
            guess = guess * (values.var(dim=0, unbiased=True).sqrt() + 1e-6) + values.mean(dim=0)
            expected[where] = guess.reshape(2, 16, 16, 3).permute(3, 0, 1, 2)
            masked += 1
    return expected


def assert_close(ours, theirs, tolerance=1e-10):
    assert ours.shape == theirs.shape
    difference = (ours - theirs).abs().max().item()
    assert difference <= tolerance, f'max |difference| {difference:.3g}'


# ---------------------------------------------------------------- transformers, exactly
@pytest.fixture(scope='module')
def ours_from_folder(transformers_pretraining):
    """(our model built by build_model from a TRAIN.TASK pretrain config with MODEL.PRETRAINED
    the folder, in float64; the config as building it resolved)."""
    cfg = config.default_config()
    cfg.MODEL_NAME, cfg.BACKBONE = 'videomae', 'vit_small'
    with torch.no_grad():
        ours = through_pretrained(cfg, transformers_pretraining[1], **{'TRAIN.TASK': 'pretrain'})
    return ours, cfg


def test_a_pretraining_folder_sets_the_decoder_and_both_eps(ours_from_folder):
    ours, cfg = ours_from_folder
    assert isinstance(ours, VideoMAEPretrain)
    assert (cfg.MODEL.DECODER_DEPTH, cfg.MODEL.DECODER_WIDTH) == (4, 192)
    assert (cfg.MODEL.LAYER_NORM_EPS, cfg.MODEL.FC_NORM_EPS) == (1e-12, 1e-5)
    assert cfg.DATASET.MEAN == [0.485, 0.456, 0.406] and cfg.DATASET.STD == [0.229, 0.224, 0.225]


@pytest.mark.parametrize('norm_pix', [True, False])
def test_pretraining_equals_transformers_through_a_save_pretrained_folder(transformers_pretraining, ours_from_folder,
                                                                         norm_pix):
    """The decoder's output, the loss on normalised (or plain) pixels and the reconstruction."""
    reference, ours = transformers_pretraining[0], ours_from_folder[0]
    reference.config.norm_pix_loss = norm_pix
    clip, mask = clip_and_mask()
    expected = reference(pixel_values=clip.transpose(1, 2), bool_masked_pos=mask)    # [N, T, C, H, W]
    predicted = ours(clip, mask)
    assert_close(predicted, expected.logits)
    pixels = clip * STD + MEAN          # transformers un-normalises with ImageNet's mean and std
    loss = masked_patch_loss(predicted, pixel_targets(pixels, norm_pix=norm_pix), mask)
    assert abs(loss.item() - expected.loss.item()) <= 1e-10 and loss.item() > 0
    rebuilt = reconstruct(predicted, pixels, mask, norm_pix=norm_pix)
    if norm_pix:
        assert_close(rebuilt, tubelet_denormalised(expected.logits, pixels, mask))
    visible = ~mask[:, :4].reshape(2, 1, 1, 2, 1, 2, 1).expand(2, 3, 4, 2, 16, 2, 16).reshape(2, 3, 4, 32, 32)
    assert torch.equal(rebuilt[visible], pixels[visible])     # the same positions hidden in every tubelet
    assert not torch.equal(rebuilt[~visible], pixels[~visible])


def test_a_transformers_decoder_with_other_heads_is_refused(transformers_pretraining, tmp_path):
    """Our decoder blocks have heads of 64 channels; 4 heads of 48 would compute another attention."""
    _, folder = transformers_pretraining
    copy = shutil.copytree(folder, tmp_path / 'heads')
    settings = json.loads((copy / 'config.json').read_text())
    settings['decoder_num_attention_heads'] = 4
    (copy / 'config.json').write_text(json.dumps(settings))
    with pytest.raises(WeightsError, match=r'a VideoMAE decoder 192 wide with 4 attention heads: ours has '
                                           r'heads of 64 channels'):
        read_weights(str(copy))


def test_a_transformers_encoder_without_decoder_or_classifier_is_refused(transformers_pretraining, tmp_path):
    from safetensors.torch import load_file, save_file
    _, folder = transformers_pretraining
    copy = shutil.copytree(folder, tmp_path / 'encoder')
    state = load_file(str(copy / 'model.safetensors'))
    save_file({k: v for k, v in state.items() if k.startswith('videomae.')}, str(copy / 'model.safetensors'))
    with pytest.raises(WeightsError, match=r'without mean pooling and without a decoder .*save the '
                                           r'VideoMAEForPreTraining it belongs to'):
        read_weights(str(copy))


# ---------------------------------------------------------------- the VideoMAE repository's names
def authors_checkpoint(path, model, **args):
    """What run_mae_pretraining.py saves: the model's state beside its optimizer, epoch and
    argparse arguments."""
    arguments = argparse.Namespace(model='pretrain_videomae_small_patch16_224', mask_ratio=0.9,
                                   normlize_target=True, input_size=224, **args)
    torch.save({'model': model.state_dict(), 'optimizer': {}, 'epoch': 3, 'scaler': {}, 'args': arguments},
               path)
    return str(path)


def small_pretraining(seed=0, depth=2, width=128):
    """ViT-S with a small decoder (not the published one, so its shape must be read off the file)."""
    return randomised(VideoMAEPretrain('vit_small', decoder_depth=depth, decoder_width=width,
                                       drop_path=0.0), seed)


@pytest.fixture(scope='module')
def authors_file(tmp_path_factory):
    """(a random ViT-S pre-training model with a 2-block decoder 128 wide, its checkpoint in the
    VideoMAE repository's layout): shared, read-only."""
    with torch.no_grad():
        model = small_pretraining()
    return model, authors_checkpoint(tmp_path_factory.mktemp('authors') / 'checkpoint-799.pth', model)


def test_the_videomae_repository_pretraining_checkpoint_loads_by_its_names(cfg, authors_file):
    source, path = authors_file
    model = copy.deepcopy(source).double()
    converted = read_weights(path)
    assert (converted.source, converted.kind, converted.model_name) == ('videomae-authors', KIND_PRETRAIN,
                                                                        'videomae')
    assert converted.options == {'BACKBONE': 'vit_small', 'MODEL.DECODER_DEPTH': 2, 'MODEL.DECODER_WIDTH': 128,
                                 'MODEL.LAYER_NORM_EPS': 1e-6, 'MODEL.FC_NORM_EPS': 1e-6}
    assert converted.classifier == () and converted.first_conv == 'encoder.patch_embed.proj.weight'
    assert set(converted.state_dict) == set(model.state_dict())
    cfg.MODEL_NAME, cfg.BACKBONE = 'videomae', 'vit_small'
    loaded = through_pretrained(cfg, path, **{'TRAIN.TASK': 'pretrain'})
    assert (cfg.MODEL.DECODER_DEPTH, cfg.MODEL.DECODER_WIDTH) == (2, 128)
    clip, mask = clip_and_mask()
    assert torch.equal(loaded(clip, mask), model(clip, mask))


def test_a_pretraining_checkpoint_with_tensors_our_model_lacks_is_refused_naming_them(authors_file):
    """A learnt position table (use_learnable_pos_emb) has no place in our model: named, not dropped."""
    state = dict(authors_file[0].state_dict(), **{'encoder.pos_embed': torch.zeros(1, 1568, 384)})
    with pytest.raises(WeightsError, match=r'keys this converter has no rule for: encoder\.pos_embed$'):
        SOURCES['videomae-authors'].convert({'model': state})


def test_a_hostile_pickle_beside_the_arguments_is_still_refused(tmp_path):
    """argparse.Namespace is allowed as plain data; what it holds is not."""
    marker = tmp_path / 'ran'

    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {marker}',))

    for name, checkpoint in [('in-args', {'model': {}, 'args': argparse.Namespace(output_dir=Payload())}),
                             ('beside', {'model': {}, 'args': argparse.Namespace(), 'scaler': Payload()})]:
        torch.save(checkpoint, tmp_path / f'{name}.pth')
        with pytest.raises(CheckpointError, match=r'it is a pickle that would import and run code '
                                                  r'\((posix|os)\.system\)'):
            read_weights(str(tmp_path / f'{name}.pth'))
    assert not marker.exists()


# ---------------------------------------------------------------- fine-tuning from pre-training
def test_fine_tuning_takes_the_encoder_and_drops_the_decoder(authors_file, caplog):
    source, path = authors_file
    model = VideoMAE(5, 'vit_small')
    built = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(('backbone.fc_norm.', 'head.'))}
    with caplog.at_level(logging.INFO, logger='test'):
        load_pretrained(model, path, LOG, model_name='videomae')
    own, theirs = model.state_dict(), source.state_dict()
    encoder = [k for k in theirs if k.startswith(('encoder.patch_embed.', 'encoder.blocks.'))]
    assert len(encoder) == 2 + 12 * 13
    for key in encoder:
        assert torch.equal(own['backbone.' + key[len('encoder.'):]], theirs[key]), key
    for key, value in built.items():        # fc_norm and the classifier as initialised
        assert torch.equal(own[key], value), key
    assert not torch.equal(own['backbone.fc_norm.weight'], theirs['encoder.norm.weight'])
    decoder = [k for k in theirs if k.startswith(('decoder.', 'encoder_to_decoder.', 'mask_token'))]
    assert (f'dropped the decoder ({len(decoder)} tensors: decoder.*, encoder_to_decoder, mask_token) and the '
            f"encoder's final norm (encoder.norm.weight, encoder.norm.bias, unused with mean pooling)") in caplog.text
    assert f'{len(encoder)} tensors' in caplog.text and 'head.fc start fresh' in caplog.text


def test_fine_tuning_through_the_config_builds_the_classification_model(cfg, transformers_pretraining):
    reference, folder = transformers_pretraining
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'videomae', 'vit_small', 7
    model = through_pretrained(cfg, folder)
    assert isinstance(model, VideoMAE) and cfg.MODEL.LAYER_NORM_EPS == 1e-12
    theirs = reference.state_dict()
    assert torch.equal(model.backbone.blocks[3].attn.qkv.weight, torch.cat(
        [theirs[f'videomae.encoder.layer.3.attention.attention.{part}.weight'] for part in ('query', 'key', 'value')]))
    assert torch.equal(model.backbone.blocks[11].norm2.bias, theirs['videomae.encoder.layer.11.layernorm_after.bias'])


def test_an_encoder_that_does_not_fit_names_its_keys(authors_file, tmp_path):
    state = {k: v for k, v in authors_file[0].state_dict().items() if not k.startswith('encoder.blocks.11.')}
    torch.save({'model': state}, tmp_path / 'short.pth')
    with pytest.raises(WeightsError, match=r'does not fit VideoMAE: missing keys: backbone\.blocks\.11\.'):
        load_pretrained(VideoMAE(5, 'vit_small'), str(tmp_path / 'short.pth'), model_name='videomae')


# ---------------------------------------------------------------- refusals
def test_a_classification_model_cannot_continue_pre_training(cfg, tmp_path):
    classifier = VideoMAE(5, 'vit_small')
    theirs = {(k[len('backbone.'):] if k.startswith('backbone.') else 'head.' + k[len('head.fc.'):]): v
              for k, v in classifier.state_dict().items()}
    torch.save({'model': theirs}, tmp_path / 'finetuned.pth')
    message = (r'finetuned\.pth is a VideoMAE classification model \(fine-tuned, its decoder is gone\) '
               r"\(videomae-authors\): pre-training continues only from a pre-training checkpoint \(encoder "
               r"and decoder: the VideoMAE repository's pre-training checkpoint\.pth, a Hugging Face "
               r'VideoMAEForPreTraining folder, or a TRAIN\.TASK pretrain run of ours\), or starts from '
               r"scratch \(MODEL\.PRETRAINED ''\)")
    target = VideoMAEPretrain('vit_small', decoder_depth=1, decoder_width=64)
    with pytest.raises(WeightsError, match=message):
        load_pretrained(target, str(tmp_path / 'finetuned.pth'), model_name='videomae')
    # the same through the config
    cfg.MODEL_NAME, cfg.BACKBONE = 'videomae', 'vit_small'
    with pytest.raises(WeightsError, match='is a VideoMAE classification model'):
        through_pretrained(cfg, tmp_path / 'finetuned.pth', **{'TRAIN.TASK': 'pretrain'})
    # an encoder without its head, and another model altogether
    torch.save({'model': {k: v for k, v in theirs.items() if not k.startswith('head.')}}, tmp_path / 'enc.pth')
    with pytest.raises(WeightsError, match=r"is a VideoMAE encoder without a decoder \(kind 'encoder'\)"):
        load_pretrained(target, str(tmp_path / 'enc.pth'))
    torch.save({'model': TSN(5, 'resnet18').state_dict(), 'config': {'MODEL_NAME': 'tsn'}}, tmp_path / 'tsn.pth')
    with pytest.raises(WeightsError, match=r"is a tsn model \(kind 'model'\), not a VideoMAE pre-training model "
                                           r'\(dlac\): pre-training continues only'):
        load_pretrained(target, str(tmp_path / 'tsn.pth'))


def test_a_pretraining_file_is_refused_by_other_models(authors_file):
    with pytest.raises(WeightsError, match=r'is a VideoMAE pre-training model \(encoder and pixel decoder, '
                                           r'videomae-authors\): its encoder fine-tunes a VideoMAE \(MODEL_NAME '
                                           r'videomae, BACKBONE vit_small\), not TSN'):
        load_pretrained(TSN(5, 'resnet18'), authors_file[1], model_name='tsn')


def test_a_decoder_of_another_shape_names_its_keys(authors_file):
    with pytest.raises(WeightsError, match=r'does not fit VideoMAEPretrain: missing keys: decoder\.blocks\.2\.'):
        load_pretrained(VideoMAEPretrain('vit_small', decoder_depth=3, decoder_width=128), authors_file[1])
    with pytest.raises(WeightsError, match=r'shape mismatch \(file vs model\): .*decoder\.blocks\.0\.mlp\.fc1\.weight '
                                           r'\(512, 128\) vs \(768, 192\)'):
        load_pretrained(VideoMAEPretrain('vit_small', decoder_depth=2), authors_file[1])


# ---------------------------------------------------------------- ours
def our_pretraining_checkpoint(path, model, depth, width):
    cfg = config.default_config()
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.TRAIN.TASK = 'videomae', 'vit_small', 'pretrain'
    cfg.MODEL.DECODER_DEPTH, cfg.MODEL.DECODER_WIDTH = depth, width
    torch.save({'model': model.state_dict(), 'config': config.to_plain(cfg), 'epoch': 2}, path)
    return str(path)


def test_our_pretraining_checkpoint_round_trips(authors_file, tmp_path, caplog):
    source = authors_file[0]
    path = our_pretraining_checkpoint(tmp_path / 'last.pth', source, 2, 128)
    converted = read_weights(path)
    assert (converted.source, converted.kind, converted.model_name) == ('dlac', KIND_PRETRAIN, 'videomae')
    assert converted.options['MODEL.DECODER_DEPTH'] == 2 and converted.options['MODEL.DECODER_WIDTH'] == 128
    assert converted.options['BACKBONE'] == 'vit_small' and converted.first_conv == 'encoder.patch_embed.proj.weight'
    again = VideoMAEPretrain('vit_small', decoder_depth=2, decoder_width=128)
    with caplog.at_level(logging.INFO, logger='test'):
        load_converted(again, converted, path, LOG, model_name='videomae')
    assert 'whole: encoder and decoder' in caplog.text
    assert all(torch.equal(value, source.state_dict()[key]) for key, value in again.state_dict().items())
    classifier = VideoMAE(5, 'vit_small')
    load_converted(classifier, converted, path, LOG, model_name='videomae')
    assert torch.equal(classifier.backbone.blocks[7].mlp.fc1.weight, source.encoder.blocks[7].mlp.fc1.weight)
    # the same names without our config are the VideoMAE repository's layout, never both
    state = source.state_dict()
    assert detect({'model': state, 'config': {}}, 'ours') == 'dlac'
    assert detect({'model': state, 'epoch': 3}, 'theirs') == 'videomae-authors'
