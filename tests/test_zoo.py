"""The model zoo: shapes, published sizes, inflation, head re-initialisation, TSM's shift."""
import logging
import os.path as osp

import pytest
import torch

import config
from conftest import ROOT
from models import MODELS, ModelConfigError, build_model
from models.backbones import build_backbone
from models.backbones.mfnet import mfnet2d
from models.i3d import I3D
from models.info import PUBLISHED, count_gflops, count_parameters, describe, published_table
from models.mfnet3d import MFNet3D
from models.slowfast import SlowFast
from models.tsm import TSM, temporal_shift
from models.tsn import TSN
from models.weights import WeightsError, load_pretrained
from utils.checkpoint import save_atomic


def randomize_batch_norms(model, seed=0):
    """Non-trivial BN statistics and affine terms, so a test cannot pass on identity BNs."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(size, generator=generator) * 0.1)
    return model


@pytest.mark.parametrize('model, clip', [
    (lambda: TSM(6, 'resnet18'), (2, 3, 4, 32, 32)),
    (lambda: I3D(6, depth=18), (2, 3, 8, 32, 32)),
    (lambda: I3D(6, depth=50), (1, 3, 4, 32, 32)),
    (lambda: SlowFast(6, depth=18, alpha=4), (2, 3, 8, 32, 32)),
    (lambda: SlowFast(6, depth=50, alpha=8), (1, 3, 16, 32, 32)),
    (lambda: MFNet3D(6), (2, 3, 8, 32, 32)),
], ids=['tsm-r18', 'i3d-r18', 'i3d-r50', 'slowfast-r18', 'slowfast-r50', 'mfnet3d'])
def test_output_shapes(model, clip):
    with torch.no_grad():
        assert model().eval()(torch.randn(*clip)).shape == (clip[0], 6)


def test_mfnet2d_backbone_in_tsn():
    model = TSN(5, backbone='mfnet2d').eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 3, 64, 64)).shape == (2, 5)


def test_published_sizes():
    """Kinetics-400 sizes: I3D-R50 28.04 M and SlowFast-R50 34.48 M (4x16) / 34.57 M (8x8),
    PySlowFast; MFNet3D 8.0 M and 11.1 GFLOPs at 16x224x224 (paper)."""
    assert count_parameters(I3D(400, depth=50)) == pytest.approx(28.04e6, rel=0.001)
    assert count_parameters(SlowFast(400, 50, alpha=8, fusion_kernel=5)) == pytest.approx(34.48e6, rel=0.01)
    assert count_parameters(SlowFast(400, 50, alpha=4, fusion_kernel=7)) == pytest.approx(34.57e6, rel=0.01)
    mfnet = MFNet3D(400)
    assert count_parameters(mfnet) == pytest.approx(8.0e6, rel=0.05)
    assert count_gflops(mfnet, 16, 224) == pytest.approx(11.1, rel=0.05)
    assert count_gflops(SlowFast(400, 50, alpha=8, fusion_kernel=5), 32, 256) == pytest.approx(36.1, rel=0.02)


@pytest.mark.parametrize('row', PUBLISHED, ids=[row[0] for row in PUBLISHED])
def test_every_published_figure_is_met_as_the_docs_claim(row):
    """docs/models.md: every parameter count within 0.2% of the published figure, every FLOP count
    within 2% (or within the figure's rounding, when it is published as 6.2)."""
    name, model_name, backbone, frames, size, overrides, params_m, gflops, source = row
    params, ours = describe(model_name, backbone, frames, size, 400, overrides)
    assert params / 1e6 == pytest.approx(params_m, rel=max(0.002, rounding(params_m)))
    assert ours == pytest.approx(gflops, rel=max(0.02, rounding(gflops)))


def rounding(figure):
    """The relative error a figure carries from being rounded to its printed decimals."""
    decimals = len(repr(float(figure)).partition('.')[2].rstrip('0'))
    return 0.5 * 10 ** -decimals / figure


@pytest.mark.slow
def test_model_zoo_table_is_the_one_models_info_prints():
    """docs/models.md, 'Model zoo': the table is `python -m models.info --table`'s output."""
    with open(osp.join(ROOT, 'docs', 'models.md'), encoding='utf-8') as handle:
        page = handle.read()
    assert published_table() in page


def test_tsm_shift_moves_one_eighth_of_channels_each_way():
    clip = torch.arange(2 * 4 * 16, dtype=torch.float32).view(2 * 4, 16, 1, 1)
    shifted = temporal_shift(clip, num_segments=4).view(2, 4, 16)
    frames = clip.view(2, 4, 16)
    assert torch.equal(shifted[:, :3, :2], frames[:, 1:, :2])      # from the next segment
    assert torch.equal(shifted[:, 3, :2], torch.zeros(2, 2))
    assert torch.equal(shifted[:, 1:, 2:4], frames[:, :3, 2:4])    # from the previous one
    assert torch.equal(shifted[:, 0, 2:4], torch.zeros(2, 2))
    assert torch.equal(shifted[:, :, 4:], frames[:, :, 4:])        # the rest stays


def test_tsm_sees_frame_order_and_tsn_does_not():
    clip = torch.randn(1, 3, 4, 32, 32)
    tsm = randomize_batch_norms(TSM(5, 'resnet18')).eval()
    tsn = randomize_batch_norms(TSN(5, 'resnet18')).eval()
    tsn.load_state_dict(tsm.state_dict())     # same weights: only the shift differs
    with torch.no_grad():
        assert not torch.allclose(tsm(clip), tsm(clip.flip(2)), atol=1e-4)
        assert torch.allclose(tsn(clip), tsn(clip.flip(2)), atol=1e-5)


def constant_clip(frames, size=32, seed=0):
    """An image and a clip of `frames` copies of it, in float64 so that only the inflation,
    not float32 rounding over 50 layers, can make them differ."""
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed),
                        dtype=torch.float64)
    return image, image.unsqueeze(2).repeat(1, 1, frames, 1, 1)


def save_2d_weights(model_2d, path):
    torch.save(randomize_batch_norms(model_2d, seed=1).state_dict(), path)
    return model_2d.eval().double()


@pytest.mark.parametrize('depth', [18, 50])
def test_inflated_i3d_matches_2d_resnet_on_a_constant_clip(tmp_path, depth):
    resnet = save_2d_weights(build_backbone(f'resnet{depth}', num_classes=1000), tmp_path / 'r.pth')
    i3d = I3D(7, depth=depth)
    load_pretrained(i3d, str(tmp_path / 'r.pth'))
    image, clip = constant_clip(40)
    with torch.no_grad():
        expected = resnet.forward_maps(image)
        maps = i3d.eval().double().backbone(clip)                 # time halved: 20 positions
    assert maps.shape[2] == 20
    # positions 9..10 are out of reach of the zero temporal padding at both ends
    for t in (9, 10):
        torch.testing.assert_close(maps[:, :, t], expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(maps[:, :, 0], expected, atol=1e-4)   # the padding does show


def test_inflated_slowfast_slow_pathway_matches_2d_resnet(tmp_path):
    resnet = save_2d_weights(build_backbone('resnet18', num_classes=1000), tmp_path / 'r.pth')
    model = SlowFast(7, depth=18, alpha=4)
    load_pretrained(model, str(tmp_path / 'r.pth'))
    lateral_slice = model.slow.layer1[0].conv1.weight[:, 64:]
    assert lateral_slice.shape[1] == 16 and not lateral_slice.any()
    image, clip = constant_clip(64)
    with torch.no_grad():
        slow, fast = model.eval().double().forward_pathways(clip)
        expected = resnet.forward_maps(image)
    assert slow.shape[2] == 16 and fast.shape[2] == 64
    for t in (6, 9):
        torch.testing.assert_close(slow[:, :, t], expected, atol=1e-4, rtol=1e-4)


def test_inflated_mfnet3d_matches_mfnet2d(tmp_path):
    net2d = save_2d_weights(mfnet2d(1000), tmp_path / 'mf.pth')
    model = MFNet3D(7)
    load_pretrained(model, str(tmp_path / 'mf.pth'))
    image, clip = constant_clip(72)
    with torch.no_grad():
        maps = model.eval().double().backbone.forward_maps(clip)    # conv2 halves time: 36 positions
        expected = net2d.forward_maps(image)
    assert maps.shape[2] == 36
    torch.testing.assert_close(maps[:, :, 18], expected, atol=1e-4, rtol=1e-4)


def test_checkpoint_with_other_classes_reinitialises_the_head(tmp_path, caplog):
    source = randomize_batch_norms(I3D(400, depth=18))
    save_atomic({'model': source.state_dict(), 'epoch': 3}, str(tmp_path / 'k400.pth'))
    target = I3D(5, depth=18)
    with caplog.at_level(logging.INFO):
        load_pretrained(target, str(tmp_path / 'k400.pth'), logging.getLogger('test'))
    assert 're-initialised' in caplog.text and '(400, 512) -> (5, 512)' in caplog.text
    assert torch.equal(target.backbone.layer4[1].conv2.weight, source.backbone.layer4[1].conv2.weight)
    assert torch.equal(target.backbone.bn1.running_var, source.backbone.bn1.running_var)
    assert target.head.fc.weight.shape == (5, 512) and not target.head.fc.bias.any()
    assert target.head.fc.weight.std() < 0.05          # freshly initialised, small

    same = I3D(400, depth=18)
    load_pretrained(same, str(tmp_path / 'k400.pth'))
    assert torch.equal(same.head.fc.weight, source.head.fc.weight)


def test_weight_files_load_with_weights_only(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ('this must not run',))

    torch.save({'model': Payload()}, tmp_path / 'evil.pth')
    with pytest.raises(RuntimeError, match='weights_only=True'):
        load_pretrained(I3D(5, depth=18), str(tmp_path / 'evil.pth'))


def test_backbone_file_that_does_not_fit_a_3d_model_lists_keys(tmp_path):
    torch.save(build_backbone('resnet18', num_classes=1000).state_dict(), tmp_path / 'r18.pth')
    with pytest.raises(WeightsError, match=r'does not fit ResNet3dPathway: missing keys: .*conv3'):
        load_pretrained(I3D(5, depth=50), str(tmp_path / 'r18.pth'))


def test_pretrained_file_name_is_looked_up_in_the_zoo_folder(tmp_path):
    """A bare MODEL.PRETRAINED name is found in SNAPSHOT_ROOT/ar_output/pretrain_model_zoo."""
    zoo = tmp_path / 'ar_output' / 'pretrain_model_zoo'
    zoo.mkdir(parents=True)
    resnet = build_backbone('resnet18', num_classes=1000)
    torch.save(resnet.state_dict(), zoo / 'resnet18.pth')
    pairs = ['SNAPSHOT_ROOT', str(tmp_path), 'MODEL_NAME', 'i3d', 'BACKBONE', 'resnet18',
             'DATASET.CLASS_NUM', '5']
    cfg = config.build_config(pairs + ['MODEL.PRETRAINED', 'resnet18.pth'])
    assert cfg.MODEL.PRETRAINED == str(zoo / 'resnet18.pth')
    model = build_model(cfg)
    assert torch.allclose(model.backbone.conv1.weight.sum(dim=2), resnet.conv1.weight, atol=1e-6)

    with pytest.raises(config.ConfigError, match="MODEL.PRETRAINED 'absent.pth': no such file, nor .*pretrain_model_zoo/absent.pth"):
        config.build_config(pairs + ['MODEL.PRETRAINED', 'absent.pth'])


def test_slowfast_needs_frames_divisible_by_alpha():
    with pytest.raises(ValueError, match='divisible by alpha=8'):
        SlowFast(4, depth=18, alpha=8)(torch.randn(1, 3, 12, 32, 32))


REGISTRY = [(name, backbone) for name, (backbones, _) in MODELS.items() for backbone in backbones]


@pytest.mark.parametrize('name, backbone', REGISTRY, ids=[f'{n}-{b}' for n, b in REGISTRY])
def test_every_model_and_backbone_of_the_registry_builds_and_gives_logits(cfg, name, backbone):
    """Driven by the registry (MODELS x each one's BACKBONE choices), so a model added to it
    cannot go untested: built from the config on the meta device (shapes without memory or
    compute) and run on a clip of the shape the data pipeline makes."""
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = name, backbone, 5
    cfg.MODEL.SLOWFAST_ALPHA = 4
    with torch.device('meta'):
        model = build_model(cfg).eval()
        assert model(torch.zeros(2, 3, 8, 96, 96)).shape == (2, 5)
    assert count_parameters(model) > 0


@pytest.mark.parametrize('name', list(MODELS))
def test_every_model_computes_logits_from_the_config(cfg, name):
    """The smallest backbone of each model (the first it lists), on real numbers."""
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = name, MODELS[name][0][0], 3
    cfg.MODEL.SLOWFAST_ALPHA = 4
    model = build_model(cfg).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 8, 32, 32))
    assert logits.shape == (1, 3) and torch.isfinite(logits).all()


def test_i3d_non_local_blocks_sit_where_the_papers_put_them(cfg):
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.MODEL.NON_LOCAL = 'i3d', 'resnet50', True
    model = build_model(cfg)
    places = sorted(name.rsplit('.non_local', 1)[0] for name, module in model.named_modules()
                    if type(module).__name__ == 'NonLocal3d')
    assert places == ['backbone.layer2.1', 'backbone.layer2.3', 'backbone.layer3.1',
                      'backbone.layer3.3', 'backbone.layer3.5']
    cfg.MODEL.NON_LOCAL = False
    # theta, phi, g (C -> C/2, with biases), the output conv (C/2 -> C) and its BN, per block
    per_block = {c: 3 * (c * c // 2 + c // 2) + (c // 2 * c + c) + 2 * c for c in (512, 1024)}
    assert count_parameters(model) == (count_parameters(build_model(cfg))
                                       + 2 * per_block[512] + 3 * per_block[1024])


def test_backbone_that_does_not_fit_the_model(cfg):
    cfg.MODEL_NAME, cfg.BACKBONE = 'i3d', 'bninception'
    with pytest.raises(ModelConfigError, match=r"BACKBONE 'bninception' does not fit MODEL_NAME 'i3d'"):
        build_model(cfg)


def test_model_defaults_for_sampling_and_test_views():
    cfg = config.build_config(['MODEL_NAME', 'i3d'])
    assert (cfg.DATASET.SAMPLING, cfg.VAL.NUM_CLIPS, cfg.VAL.NUM_CROPS) == ('dense', 10, 3)
    cfg = config.build_config(['MODEL_NAME', 'tsm', 'DATA.NUM_SEGMENTS', '8'])
    assert (cfg.DATASET.SAMPLING, cfg.VAL.NUM_SEGMENTS, cfg.VAL.NUM_CROPS) == ('segment', 8, 1)
    cfg = config.build_config(['VAL.NUM_CLIPS', '2', 'VAL.NUM_CROPS', '10', 'MODEL_NAME', 'slowfast'])
    assert (cfg.DATASET.SAMPLING, cfg.VAL.NUM_CLIPS, cfg.VAL.NUM_CROPS) == ('dense', 2, 10)
    cfg = config.build_config([])
    assert (cfg.DATASET.SAMPLING, cfg.VAL.NUM_SEGMENTS, cfg.VAL.NUM_CROPS) == ('segment', 25, 1)


def test_model_info_command_prints_parameters_and_flops(capsys):
    from models.info import main
    assert main(['mfnet3d', '--backbone', 'mfnet3d', '--frames', '16', '--size', '224']) == 0
    out = capsys.readouterr().out
    assert f'{count_parameters(MFNet3D(400)):,} parameters' in out
    gflops = float(out.split(' GFLOPs')[0].rsplit(' ', 1)[1])
    assert gflops == pytest.approx(11.1, rel=0.05)
