"""Today's families. X3D: exact against pytorchvideo 0.1.5's create_x3d and hub builders
(random weights, every BN statistic randomised, float64), through MODEL.PRETRAINED and
models.convert; PySlowFast's X3D names; sizes against the published figures. R3D/MC3/R(2+1)D:
torchvision's names, shapes and parameter counts, and its files loading by name."""
import pytest
import torch

from models.convert import read_weights
from models.info import count_gflops, count_parameters
from models.video_resnet import VideoResNet
from models.x3d import X3D
from references import pytorchvideo_module, randomize
from test_convert import assert_same_logits, save, through_convert, through_pretrained

pytestmark = pytest.mark.slow      # reference models built and run at full size: seconds each


@pytest.mark.parametrize('variant, builder, frames, size', [
    ('x3d_xs', 'x3d_xs', 4, 160), ('x3d_s', 'x3d_s', 13, 160), ('x3d_m', 'x3d_m', 16, 224),
    ('x3d_l', None, 4, 64)])
def test_x3d_equals_pytorchvideo(cfg, tmp_path, variant, builder, frames, size):
    """The hub builders at their own clip sizes (their head pools over exactly that); L, the
    largest, through create_x3d at a small clip."""
    classes = 10
    options = dict(model_num_class=classes, head_activation=None, dropout_rate=0.0)
    if builder:
        hub = pytorchvideo_module('pytorchvideo.models.hub.x3d')
        reference = getattr(hub, builder)(pretrained=False, **options)
    else:
        create_x3d = pytorchvideo_module('pytorchvideo.models.x3d').create_x3d
        reference = create_x3d(depth_factor=5.0, input_clip_length=frames, input_crop_size=size,
                               **options)
    reference = randomize(reference).double()
    path = save(tmp_path / f'{variant.upper()}.pyth', {'model_state': reference.state_dict()})
    clip = torch.randn(1, 3, frames, size, size, dtype=torch.float64)
    with torch.no_grad():
        expected = reference(clip)
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'x3d', variant, classes
    ours = through_pretrained(cfg, path)
    assert cfg.DATASET.MEAN == [0.45, 0.45, 0.45] and cfg.DATASET.STD == [0.225, 0.225, 0.225]
    with torch.no_grad():
        assert_same_logits(ours(clip), expected)
    # ours has a BN (24 weights and 24 biases) on layer1.0's shortcut where pytorchvideo has none
    assert count_parameters(ours) == count_parameters(reference) + 2 * 24
    via_convert, _ = through_convert(tmp_path, path)
    with torch.no_grad():
        assert_same_logits(via_convert(clip), expected)


def pyslowfast_names(pytorchvideo_state):
    """PySlowFast's X3D names (slowfast/models: X3DStem, X3DTransform, SE, X3DHead) for a
    pytorchvideo state dict, read off both projects' code."""
    import re
    stages = {'1': 's2', '2': 's3', '3': 's4', '4': 's5'}
    branch2 = {'conv_a': 'a', 'norm_a': 'a_bn', 'conv_b': 'b', 'norm_b.0': 'b_bn',
               'norm_b.1.block.0': 'se.fc1', 'norm_b.1.block.2': 'se.fc2', 'conv_c': 'c', 'norm_c': 'c_bn'}
    renamed = {}
    for key, value in pytorchvideo_state.items():
        m = re.fullmatch(r'blocks\.([1-4])\.res_blocks\.(\d+)\.(branch2\.(.+)|branch1_(conv|norm))\.(\w+)', key)
        if key.startswith('blocks.0.'):
            new = {'blocks.0.conv.conv_t': 's1.pathway0_stem.conv_xy', 'blocks.0.conv.conv_xy':
                   's1.pathway0_stem.conv', 'blocks.0.norm': 's1.pathway0_stem.bn'}[key.rsplit('.', 1)[0]]
            renamed[f'{new}.{key.rsplit(".", 1)[1]}'] = value
        elif m and m[4]:
            renamed[f'{stages[m[1]]}.pathway0_res{m[2]}.branch2.{branch2[m[4]]}.{m[6]}'] = value
        elif m:
            suffix = 'branch1' if m[5] == 'conv' else 'branch1_bn'
            renamed[f'{stages[m[1]]}.pathway0_res{m[2]}.{suffix}.{m[6]}'] = value
        else:
            head = {'blocks.5.pool.pre_conv': 'head.conv_5', 'blocks.5.pool.pre_norm': 'head.conv_5_bn',
                    'blocks.5.pool.post_conv': 'head.lin_5', 'blocks.5.proj': 'head.projection'}
            renamed[f'{head[key.rsplit(".", 1)[0]]}.{key.rsplit(".", 1)[1]}'] = value
    return renamed


def test_pyslowfast_x3d_names(cfg, tmp_path):
    create_x3d = pytorchvideo_module('pytorchvideo.models.x3d').create_x3d
    reference = randomize(create_x3d(input_clip_length=4, input_crop_size=64, model_num_class=7,
                                     head_activation=None)).double()
    state = pyslowfast_names(reference.state_dict())
    channels = state['s2.pathway0_res0.branch1.weight'].shape[0]      # PySlowFast has this BN
    state.update({f's2.pathway0_res0.branch1_bn.{name}': value for name, value in {
        'weight': torch.ones(channels), 'bias': torch.zeros(channels), 'running_mean':
        torch.zeros(channels), 'running_var': torch.full((channels,), 1 - 1e-5),
        'num_batches_tracked': torch.tensor(0)}.items()})
    path = save(tmp_path / 'x3d_s.pyth', {'model_state': state, 'cfg': 'MODEL:\n  ARCH: x3d\n'})
    converted = read_weights(str(path))
    assert (converted.source, converted.model_name) == ('pyslowfast', 'x3d')
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'x3d', 'x3d_s', 7
    clip = torch.randn(1, 3, 4, 64, 64, dtype=torch.float64)
    assert_same_logits(through_pretrained(cfg, path)(clip), reference(clip))


@pytest.mark.parametrize('variant, frames, size, params_m, gflops', [
    ('x3d_xs', 4, 160, 3.79, 0.60), ('x3d_s', 13, 160, 3.79, 1.96), ('x3d_m', 16, 224, 3.79, 4.73),
    ('x3d_l', 16, 312, 6.15, 18.37)])
def test_x3d_sizes_are_the_papers(variant, frames, size, params_m, gflops):
    """Parameters as pytorchvideo's builder counts them (its zoo: 3.79 M for XS/S/M), GFLOPs
    as the X3D paper's Table 3 and PySlowFast's zoo give them (0.60, 1.96, 4.73, 18.37)."""
    model = X3D(400, variant)
    assert count_parameters(model) / 1e6 == pytest.approx(params_m, abs=0.005)
    assert count_gflops(model, frames, size) == pytest.approx(gflops, rel=0.01)


# ---------------------------------------------------------------- torchvision video ResNets
TORCHVISION_VIDEO = {    # num_params of torchvision's weights meta; shapes read off its resnet.py
    'r3d': (33371472, {'stem.0.weight': (64, 3, 3, 7, 7), 'layer2.0.conv1.0.weight': (128, 64, 3, 3, 3),
                       'layer2.0.downsample.0.weight': (128, 64, 1, 1, 1), 'fc.weight': (400, 512)}),
    'mc3': (11695440, {'stem.0.weight': (64, 3, 3, 7, 7), 'layer1.0.conv1.0.weight': (64, 64, 3, 3, 3),
                       'layer2.0.conv1.0.weight': (128, 64, 1, 3, 3),
                       'layer4.1.conv2.0.weight': (512, 512, 1, 3, 3)}),
    'r2plus1d': (31505325, {'stem.0.weight': (45, 3, 1, 7, 7), 'stem.3.weight': (64, 45, 3, 1, 1),
                            'layer2.0.conv1.0.0.weight': (230, 64, 1, 3, 3),
                            'layer2.0.conv1.0.1.running_var': (230,),
                            'layer2.0.conv1.0.3.weight': (128, 230, 3, 1, 1),
                            'layer2.0.conv2.0.0.weight': (230, 128, 1, 3, 3),
                            'layer2.1.conv1.0.0.weight': (288, 128, 1, 3, 3)}),
}


def torchvision_names(model):
    """Our state dict in torchvision's names: backbone.X -> X, head.fc -> fc."""
    return {key[len('backbone.'):] if key.startswith('backbone.') else key[len('head.'):]: value
            for key, value in model.state_dict().items()}


@pytest.mark.parametrize('variant', ['r3d', 'mc3', 'r2plus1d'])
def test_video_resnets_have_torchvisions_names_shapes_and_sizes(cfg, tmp_path, variant):
    params, shapes = TORCHVISION_VIDEO[variant]
    model = randomize(VideoResNet(400, variant, dropout=0.0)).double()
    assert count_parameters(model) == params
    state = torchvision_names(model)
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    path = save(tmp_path / f'{variant}_18.pth', state)
    converted = read_weights(str(path))
    assert (converted.source, converted.model_name) == ('torchvision', variant)
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = variant, 'resnet18', 400
    loaded = through_pretrained(cfg, path, **{'MODEL.DROPOUT': 0.0})
    assert cfg.DATASET.MEAN == [0.43216, 0.394666, 0.37645]
    clip = torch.randn(1, 3, 4, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(loaded(clip), model(clip))


# ---------------------------------------------------------------- VideoMAE
def transformers_videomae(tmp_path, eps=1e-12):
    """A random VideoMAEForVideoClassification of ViT-S's size (every LayerNorm, bias and q/v
    bias randomised too), saved with save_pretrained with its image processor."""
    from references import need
    need('transformers')
    import transformers
    config = transformers.VideoMAEConfig(image_size=32, num_frames=4, hidden_size=384,
                                         num_hidden_layers=12, num_attention_heads=6,
                                         intermediate_size=1536, num_labels=7, layer_norm_eps=eps)
    torch.manual_seed(0)
    model = transformers.VideoMAEForVideoClassification(config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 1:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1
                                + (1.0 if 'layernorm' in name or 'fc_norm.weight' in name else 0.0))
    folder = tmp_path / 'videomae-small-hf'
    model.save_pretrained(str(folder))
    processor = transformers.VideoMAEImageProcessor(image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.25, 0.3])
    processor.save_pretrained(str(folder))
    return model.eval().double(), folder


def test_videomae_equals_transformers_through_a_save_pretrained_folder(cfg, tmp_path):
    reference, folder = transformers_videomae(tmp_path)
    clip = torch.randn(2, 3, 4, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = reference(pixel_values=clip.transpose(1, 2)).logits     # [N, T, C, H, W]
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'videomae', 'vit_small', 7
    ours = through_pretrained(cfg, folder)
    assert cfg.MODEL.LAYER_NORM_EPS == 1e-12
    assert cfg.DATASET.MEAN == [0.5, 0.4, 0.3] and cfg.DATASET.STD == [0.2, 0.25, 0.3]
    with torch.no_grad():
        assert_same_logits(ours(clip), expected)
    via_convert, _ = through_convert(tmp_path, folder)
    with torch.no_grad():
        assert_same_logits(via_convert(clip), expected)


def test_videomae_repository_names(cfg, tmp_path):
    """The VideoMAE repository's .pth names, read off its modeling_finetune.py."""
    from models.videomae import VideoMAE
    model = randomize(VideoMAE(5, 'vit_small', dropout=0.0, drop_path=0.0)).double()
    theirs = {(key[len('backbone.'):] if key.startswith('backbone.') else 'head.' + key[len('head.fc.'):]): value
              for key, value in model.state_dict().items()}
    assert {'patch_embed.proj.weight', 'blocks.11.attn.qkv.weight', 'blocks.0.attn.q_bias',
            'blocks.0.attn.v_bias', 'blocks.3.mlp.fc2.bias', 'fc_norm.weight', 'head.weight'} <= set(theirs)
    assert tuple(theirs['blocks.0.attn.qkv.weight'].shape) == (1152, 384)
    path = save(tmp_path / 'checkpoint-best.pth', {'module': theirs})
    converted = read_weights(str(path))
    assert (converted.source, converted.model_name) == ('videomae-authors', 'videomae')
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'videomae', 'vit_small', 5
    loaded = through_pretrained(cfg, path, **{'MODEL.DROPOUT': 0.0})
    clip = torch.randn(1, 3, 4, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(loaded(clip), model(clip))


def test_layer_wise_lr_decay_and_adamw(cfg):
    from models.videomae import VideoMAE
    from engine.optimizer import build_optimizer
    cfg.TRAIN.OPTIMIZER, cfg.TRAIN.LAYER_DECAY, cfg.TRAIN.ZERO_WD_1D_PARAM = 'adamw', 0.75, True
    cfg.TRAIN.WEIGHT_DECAY = 0.05
    model = VideoMAE(5, 'vit_small')
    optimizer = build_optimizer(model, cfg, 1e-3)
    assert isinstance(optimizer, torch.optim.AdamW)
    lr_of = {id(p): group['lr'] for group in optimizer.param_groups for p in group['params']}
    decay_of = {id(p): group['weight_decay'] for group in optimizer.param_groups for p in group['params']}
    named = dict(model.named_parameters())
    assert lr_of[id(named['head.fc.weight'])] == pytest.approx(1e-3)
    assert lr_of[id(named['backbone.blocks.11.mlp.fc1.weight'])] == pytest.approx(1e-3 * 0.75)
    assert lr_of[id(named['backbone.blocks.0.attn.qkv.weight'])] == pytest.approx(1e-3 * 0.75 ** 12)
    assert lr_of[id(named['backbone.patch_embed.proj.weight'])] == pytest.approx(1e-3 * 0.75 ** 13)
    assert decay_of[id(named['backbone.blocks.0.attn.q_bias'])] == 0.0
    assert decay_of[id(named['backbone.blocks.0.attn.qkv.weight'])] == pytest.approx(0.05)


def test_drop_path_drops_whole_samples_in_training_only():
    from models.videomae import DropPath
    layer = DropPath(0.5)
    x = torch.ones(1000, 4, 3)
    torch.manual_seed(0)
    out = layer.train()(x)
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}
    assert (per_sample == per_sample[:, :1]).all() and 0.4 < (per_sample[:, 0] == 0).float().mean() < 0.6
    assert torch.equal(layer.eval()(x), x)


# ---------------------------------------------------------------- MobileNetV2, TSM variants
def tsm_authors_mobilenet_names(model):
    """Our TSM/TSN-MobileNetV2 state dict in the TSM authors' layout (archs/mobilenet_v2.py:
    flat conv Sequentials; ops/models.py: base_model., the shift wrapping conv[0] as .net in the
    expanding residual blocks, new_fc), as DataParallel saved it."""
    import re
    shifted = {name.split('.')[2] for name, module in model.named_modules()
               if type(module).__name__ == 'TemporalShift'}
    expanding = {'conv.0.0': '0', 'conv.0.1': '1', 'conv.1.0': '3', 'conv.1.1': '4', 'conv.2': '6', 'conv.3': '7'}
    first = {'conv.0.0': '0', 'conv.0.1': '1', 'conv.1': '3', 'conv.2': '4'}
    layout = {}
    for key, value in model.state_dict().items():
        if key.startswith('head.fc.'):
            layout['module.new_fc.' + key.rsplit('.', 1)[1]] = value
            continue
        m = re.fullmatch(r'backbone\.features\.(\d+)\.(conv\.\d(?:\.\d)?)\.(\w+)', key)
        if m and m[1] not in ('0', '18'):
            index = (first if m[1] == '1' else expanding)[m[2]]
            wrapper = '.net' if index == '0' and m[1] in shifted else ''
            layout[f'module.base_model.features.{m[1]}.conv.{index}{wrapper}.{m[3]}'] = value
        else:
            layout['module.base_model.' + key[len('backbone.'):]] = value
    return layout


def test_tsm_mobilenetv2_from_the_tsm_authors_layout(cfg, tmp_path):
    from models.tsm import TSM
    source = randomize(TSM(7, 'mobilenetv2', dropout=0.0)).double()
    layout = tsm_authors_mobilenet_names(source)
    assert 'module.base_model.features.3.conv.0.net.weight' in layout        # shifted: residual
    assert 'module.base_model.features.2.conv.0.weight' in layout            # not: stride/width change
    assert tuple(layout['module.base_model.features.1.conv.3.weight'].shape) == (16, 32, 1, 1)
    assert len([k for k in layout if k.endswith('conv.0.net.weight')]) == 10
    path = save(tmp_path / 'TSM_kinetics_RGB_mobilenetv2_shift8_blockres_avg_segment8_e100_dense.pth',
                {'epoch': 100, 'arch': 'mobilenetv2', 'state_dict': layout})
    converted = read_weights(str(path))
    assert (converted.source, converted.model_name) == ('tsm-authors', 'tsm')
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'tsm', 'mobilenetv2', 7
    ours = through_pretrained(cfg, path, **{'MODEL.DROPOUT': 0.0})
    clip = torch.randn(2, 3, 4, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(ours(clip), source(clip))


def test_torchvision_mobilenetv2_imagenet_file_into_tsn(cfg, tmp_path):
    """torchvision's names (3 504 872 parameters, the ImageNet file's count) load by name."""
    from models.backbones import mobilenetv2
    imagenet = randomize(mobilenetv2(1000)).double()
    assert count_parameters(imagenet) == 3504872
    path = save(tmp_path / 'mobilenet_v2-b0353104.pth', imagenet.state_dict())
    converted = read_weights(str(path))
    assert (converted.source, converted.model_name) == ('torchvision', 'tsn')
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'tsn', 'mobilenetv2', 1000
    ours = through_pretrained(cfg, path, **{'MODEL.DROPOUT': 0.0})
    frames = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():       # one segment per frame: the TSN average of the 2D network's logits
        expected = imagenet.eval()(frames).mean(dim=0, keepdim=True)
        assert_same_logits(ours(frames.transpose(0, 1).unsqueeze(0)), expected)


def test_tsm_on_bninception_shifts_each_block_input(cfg):
    """The 'block' place of the TSM authors' BN-Inception: the input of the second stem stage
    (64 channels) and of each of the 10 inception blocks is shifted; with the same weights TSM
    and TSN differ."""
    from models.tsm import TSM, TemporalShift
    from models.tsn import TSN
    tsm = randomize(TSM(5, 'bninception', dropout=0.0)).double()
    calls = []
    shift = next(m for m in tsm.modules() if isinstance(m, TemporalShift))
    shift.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[1]))
    tsn = TSN(5, 'bninception', dropout=0.0).double().eval()
    tsn.load_state_dict(tsm.state_dict())
    clip = torch.randn(1, 3, 4, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        assert (tsm(clip) - tsn(clip)).abs().max() > 1e-6
    assert len(calls) == 11 and calls[:4] == [64, 192, 256, 320]      # stage 2, then 3a, 3b, 3c


def test_torchvision_inception_v3_imagenet_file_into_tsn(cfg, tmp_path):
    """torchvision's names: 27 161 264 parameters with the auxiliary classifier (its weights
    meta), 23 834 568 without it (AuxLogits: 128x768 + 768x128x5x5 convs, their BNs, a
    768x1000 fc: 3 326 696); the file's AuxLogits are left out, its input is [-1, 1]."""
    from models.backbones import inceptionv3
    imagenet = randomize(inceptionv3(1000)).double()
    assert count_parameters(imagenet) == 27161264 - 3326696
    aux = {'AuxLogits.conv0.conv.weight': torch.zeros(128, 768, 1, 1),
           'AuxLogits.fc.weight': torch.zeros(1000, 768), 'AuxLogits.fc.bias': torch.zeros(1000)}
    path = save(tmp_path / 'inception_v3_google-0cc3c7bd.pth', {**imagenet.state_dict(), **aux})
    converted = read_weights(str(path))
    assert (converted.source, converted.model_name) == ('torchvision', 'tsn')
    cfg.MODEL_NAME, cfg.BACKBONE, cfg.DATASET.CLASS_NUM = 'tsn', 'inceptionv3', 1000
    ours = through_pretrained(cfg, path, **{'MODEL.DROPOUT': 0.0})
    assert cfg.DATASET.MEAN == [0.5, 0.5, 0.5] and cfg.DATASET.STD == [0.5, 0.5, 0.5]
    frames = torch.randn(2, 3, 96, 96, dtype=torch.float64)
    with torch.no_grad():
        expected = imagenet.eval()(frames).mean(dim=0, keepdim=True)
        assert_same_logits(ours(frames.transpose(0, 1).unsqueeze(0)), expected)
