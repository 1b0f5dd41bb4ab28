"""Models by MODEL_NAME. Every model maps [N, 3, T, H, W] to logits [N, DATASET.CLASS_NUM].

Each registry entry says which BACKBONE values it accepts and how to build it from the config.
"""
from config import pretrain_zoo_dir

from .backbones import BACKBONES
from .i3d import I3D
from .mfnet3d import MFNet3D
from .slowfast import SlowFast
from .tsm import TSM
from .tsn import TSN
from .video_resnet import VideoResNet
from .videomae import SIZES as VIT_SIZES, VideoMAE
from .videomae_pretrain import VideoMAEPretrain
from .x3d import VARIANTS as X3D_VARIANTS, X3D
from .convert import read_weights
from .errors import ModelOptionError
from .named_weights import imagenet_file
from .weights import WeightsError, load_converted

RESNETS = ('resnet18', 'resnet34', 'resnet50', 'resnet101')


class ModelConfigError(ValueError):
    """MODEL_NAME, BACKBONE or a model option that does not exist."""


def _depth(backbone):
    return int(backbone[len('resnet'):])


MODELS = {
    'tsn': (tuple(BACKBONES), lambda cfg: TSN(
        cfg.DATASET.CLASS_NUM, backbone=cfg.BACKBONE, consensus=cfg.MODEL.CONSENSUS,
        dropout=cfg.MODEL.DROPOUT, partial_bn=cfg.MODEL.PARTIAL_BN, modality=cfg.MODALITY,
        new_length=cfg.DATA.NEW_LENGTH)),
    'tsm': (RESNETS + ('bninception', 'mobilenetv2'), lambda cfg: TSM(
        cfg.DATASET.CLASS_NUM, backbone=cfg.BACKBONE, consensus=cfg.MODEL.CONSENSUS,
        dropout=cfg.MODEL.DROPOUT, partial_bn=cfg.MODEL.PARTIAL_BN, modality=cfg.MODALITY,
        new_length=cfg.DATA.NEW_LENGTH, shift_div=cfg.MODEL.TSM_SHIFT_DIV,
        shift=cfg.MODEL.TSM_SHIFT)),
    'i3d': (RESNETS, lambda cfg: I3D(
        cfg.DATASET.CLASS_NUM, depth=_depth(cfg.BACKBONE), dropout=cfg.MODEL.DROPOUT,
        stem_temporal_stride=cfg.MODEL.STEM_TEMPORAL_STRIDE,
        inflate_conv2=cfg.MODEL.INFLATE_BASIC_CONV2,
        non_local=({'sub_sample': cfg.MODEL.NON_LOCAL_SUBSAMPLE, 'scaled': cfg.MODEL.NON_LOCAL_SCALED}
                   if cfg.MODEL.NON_LOCAL else None))),
    'slowfast': (RESNETS, lambda cfg: SlowFast(
        cfg.DATASET.CLASS_NUM, depth=_depth(cfg.BACKBONE), alpha=cfg.MODEL.SLOWFAST_ALPHA,
        beta_inv=cfg.MODEL.SLOWFAST_BETA_INV, fusion_kernel=cfg.MODEL.SLOWFAST_FUSION_KERNEL,
        dropout=cfg.MODEL.DROPOUT, lateral=cfg.MODEL.SLOWFAST_LATERAL,
        slow_frames=cfg.MODEL.SLOWFAST_SLOW_FRAMES)),
    'mfnet3d': (('mfnet3d', 'mfnet'), lambda cfg: MFNet3D(
        cfg.DATASET.CLASS_NUM, dropout=cfg.MODEL.DROPOUT)),
    **{name: (('resnet18',), lambda cfg, name=name: VideoResNet(
        cfg.DATASET.CLASS_NUM, variant=name, dropout=cfg.MODEL.DROPOUT))
       for name in ('r2plus1d', 'r3d', 'mc3')},
    'videomae': (tuple(VIT_SIZES), lambda cfg: VideoMAE(
        cfg.DATASET.CLASS_NUM, size=cfg.BACKBONE.lower(), dropout=cfg.MODEL.DROPOUT,
        drop_path=cfg.MODEL.DROP_PATH, eps=cfg.MODEL.LAYER_NORM_EPS,
        fc_norm_eps=cfg.MODEL.FC_NORM_EPS, grad_checkpoint=cfg.MODEL.GRAD_CHECKPOINT)),
    'x3d': (tuple(X3D_VARIANTS), lambda cfg: X3D(
        cfg.DATASET.CLASS_NUM, variant=cfg.BACKBONE.lower(), dropout=cfg.MODEL.DROPOUT)),
}


SEGMENT_MODELS = ('tsn', 'tsm')


def build_pretrain_model(cfg):
    """TRAIN.TASK 'pretrain': VideoMAE's masked autoencoder (models/videomae_pretrain.py)."""
    return VideoMAEPretrain(cfg.BACKBONE.lower(), decoder_depth=cfg.MODEL.DECODER_DEPTH,
                            decoder_width=cfg.MODEL.DECODER_WIDTH, drop_path=cfg.MODEL.DROP_PATH,
                            eps=cfg.MODEL.LAYER_NORM_EPS, head_norm_eps=cfg.MODEL.FC_NORM_EPS,
                            grad_checkpoint=cfg.MODEL.GRAD_CHECKPOINT)


def build_model(cfg, logger=None, pretrained=True):
    """The model MODEL_NAME names, with MODEL.PRETRAINED's weights loaded if given (and
    `pretrained`). Reads `cfg` only: the file's input convention and options were put into
    the config when it was built (config.build_config)."""
    name = cfg.MODEL_NAME.lower()
    if name not in MODELS:
        raise ModelConfigError(f"unknown MODEL_NAME {cfg.MODEL_NAME!r}; choose one of {sorted(MODELS)}")
    backbones, builder = MODELS[name]
    if cfg.MODALITY != 'RGB' and name not in SEGMENT_MODELS:
        raise ModelConfigError(f'MODALITY {cfg.MODALITY} is for the segment models '
                               f'{list(SEGMENT_MODELS)}; {name} takes RGB')
    if cfg.BACKBONE.lower() not in backbones:
        raise ModelConfigError(f"BACKBONE {cfg.BACKBONE!r} does not fit MODEL_NAME {name!r}; "
                               f"choose one of {list(backbones)}")
    if cfg.TRAIN.TASK == 'pretrain' and name != 'videomae':
        raise ModelConfigError(f"TRAIN.TASK 'pretrain' is for MODEL_NAME videomae, not {name!r}")
    try:
        model = build_pretrain_model(cfg) if cfg.TRAIN.TASK == 'pretrain' else builder(cfg)
    except ModelOptionError as err:
        raise ModelConfigError(str(err)) from err
    if pretrained and cfg.MODEL.PRETRAINED:
        path = cfg.MODEL.PRETRAINED
        if path == 'imagenet':          # a config built by hand (build_config resolves it)
            path = imagenet_file(cfg.BACKBONE.lower(), pretrain_zoo_dir(cfg), logger)
        load_converted(model, read_weights(path, cfg.MODEL.PRETRAINED_FROM), path, logger,
                       model_name=name)
    return model


__all__ = ['build_model', 'MODELS', 'ModelConfigError', 'ModelOptionError', 'TSN', 'TSM', 'I3D',
           'SlowFast', 'MFNet3D', 'VideoMAEPretrain', 'WeightsError']
