import pytest
import torch

from models import ModelConfigError, build_model
from models.backbones import build_backbone
from models.tsm import TSM
from models.tsn import TSN
from models.weights import WeightsError, load_backbone_file, load_into


@pytest.mark.parametrize('backbone, features', [('resnet18', 512), ('resnet34', 512),
                                                ('resnet50', 2048), ('bninception', 1024)])
def test_tsn_output_shapes(backbone, features):
    model = TSN(num_classes=7, backbone=backbone).eval()
    clips = torch.randn(2, 3, 3, 96, 96)
    with torch.no_grad():
        assert model(clips).shape == (2, 7)
        assert model.forward_features(clips).shape == (2, 3, features)


def test_tsn_average_consensus_ignores_frame_order():
    model = TSN(num_classes=5, backbone='resnet18').eval()
    clips = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(clips), model(clips.flip(2)), atol=1e-5)


def test_published_parameter_counts():
    """torchvision's published ImageNet model sizes; BN-Inception as in TSN's weight file."""
    counts = {name: sum(p.numel() for p in build_backbone(name, num_classes=1000).parameters())
              for name in ('resnet18', 'resnet34', 'resnet50', 'bninception')}
    assert counts['resnet18'] == 11_689_512
    assert counts['resnet34'] == 21_797_672
    assert counts['resnet50'] == 25_557_032
    assert abs(counts['bninception'] - 11.3e6) < 0.05e6


def torchvision_resnet50_keys():
    """torchvision.models.resnet50().state_dict() names and shapes, written out from its
    layout (this project does not import torchvision)."""
    shapes = {'conv1.weight': (64, 3, 7, 7)}

    def bn(prefix, channels):
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{prefix}.{name}'] = (channels,)
        shapes[f'{prefix}.num_batches_tracked'] = ()

    bn('bn1', 64)
    inplanes = 64
    for layer, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for block in range(blocks):
            prefix = f'layer{layer}.{block}'
            shapes[f'{prefix}.conv1.weight'] = (planes, inplanes, 1, 1)
            bn(f'{prefix}.bn1', planes)
            shapes[f'{prefix}.conv2.weight'] = (planes, planes, 3, 3)
            bn(f'{prefix}.bn2', planes)
            shapes[f'{prefix}.conv3.weight'] = (planes * 4, planes, 1, 1)
            bn(f'{prefix}.bn3', planes * 4)
            if block == 0:
                shapes[f'{prefix}.downsample.0.weight'] = (planes * 4, inplanes, 1, 1)
                bn(f'{prefix}.downsample.1', planes * 4)
            inplanes = planes * 4
    shapes['fc.weight'] = (1000, 2048)
    shapes['fc.bias'] = (1000,)
    return shapes


def test_torchvision_state_dict_loads_into_resnet50_by_name(tmp_path):
    shapes = torchvision_resnet50_keys()
    generator = torch.Generator().manual_seed(0)
    state = {k: (torch.tensor(7) if not s else torch.randn(s, generator=generator))
             for k, s in shapes.items()}
    backbone = build_backbone('resnet50', num_classes=1000)
    assert set(backbone.state_dict()) == set(shapes)
    result = backbone.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys

    path = tmp_path / 'resnet50-imagenet.pth'
    torch.save(state, path)
    model = TSN(num_classes=4, backbone='resnet50')
    ignored = load_backbone_file(model, str(path))
    assert sorted(ignored) == ['fc.bias', 'fc.weight']
    assert torch.equal(model.backbone.layer3[5].conv2.weight, state['layer3.5.conv2.weight'])
    assert torch.equal(model.backbone.bn1.running_var, state['bn1.running_var'])


def test_weight_file_that_does_not_fit_lists_keys(tmp_path):
    state = TSN(num_classes=4, backbone='resnet18').backbone.state_dict()
    path = tmp_path / 'r18.pth'
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r'missing keys: .*layer1\.0\.conv3\.weight'):
        load_backbone_file(TSN(num_classes=4, backbone='resnet50'), str(path))
    state['extra.weight'] = torch.zeros(1)
    with pytest.raises(WeightsError, match=r'unexpected keys: extra\.weight'):
        load_into(build_backbone('resnet18'), state)


def test_weight_file_that_runs_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ('this must not run',))

    path = tmp_path / 'evil.pth'
    torch.save({'model': Payload()}, path)
    with pytest.raises(RuntimeError, match='weights_only=True'):
        load_backbone_file(TSN(num_classes=4), str(path))


def batch_norms_of(model):
    return [m for m in model.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize('model_class', [TSN, TSM])
def test_partial_bn_freezes_all_but_first_bn_when_built(model_class):
    """Frozen at construction, before an optimizer or DDP sees the parameters (DDP waits for
    the gradients of exactly the parameters that required them when it wrapped the model)."""
    model = model_class(num_classes=4, backbone='resnet18', partial_bn=True)
    batch_norms = batch_norms_of(model)
    assert batch_norms[0].weight.requires_grad and batch_norms[0].bias.requires_grad
    assert not any(p.requires_grad for m in batch_norms[1:] for p in m.parameters())
    model.train()
    assert batch_norms[0].training and not any(m.training for m in batch_norms[1:])
    assert all(m.training for m in batch_norms_of(model_class(4, 'resnet18').train()))


def test_partial_bn_holds_after_conversion_to_sync_batch_norm():
    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(
        TSN(num_classes=4, backbone='resnet18', partial_bn=True)).train()
    batch_norms = batch_norms_of(model)
    assert len(batch_norms) == 20 and all(isinstance(m, torch.nn.SyncBatchNorm) for m in batch_norms)
    assert batch_norms[0].training and batch_norms[0].weight.requires_grad
    assert not any(m.training or m.weight.requires_grad or m.bias.requires_grad
                   for m in batch_norms[1:])


def test_build_model_lists_choices(cfg):
    cfg.MODEL_NAME = 'nope'
    with pytest.raises(ModelConfigError, match=r"unknown MODEL_NAME 'nope'; choose one of \['i3d', 'mc3', 'mfnet3d', 'r2plus1d', 'r3d', 'slowfast', 'tsm', 'tsn', 'videomae', 'x3d'\]"):
        build_model(cfg)
    cfg.MODEL_NAME, cfg.BACKBONE = 'tsn', 'vgg'
    with pytest.raises(ModelConfigError, match=r"BACKBONE 'vgg' does not fit MODEL_NAME 'tsn'.*resnet18"):
        build_model(cfg)
    cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'bninception', 11
    assert build_model(cfg)(torch.randn(1, 3, 2, 64, 64)).shape == (1, 11)
