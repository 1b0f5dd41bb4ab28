"""Models by MODEL_NAME. Every model maps [N, 3, T, H, W] to logits [N, DATASET.CLASS_NUM]."""
from .backbones import BACKBONES
from .tsn import TSN
from .weights import WeightsError, load_backbone_file


class ModelConfigError(ValueError):
    """MODEL_NAME, BACKBONE or a model option that does not exist."""


def _build_tsn(cfg):
    return TSN(cfg.DATASET.CLASS_NUM, backbone=cfg.BACKBONE, consensus=cfg.MODEL.CONSENSUS,
               dropout=cfg.MODEL.DROPOUT, partial_bn=cfg.MODEL.PARTIAL_BN)


MODELS = {'tsn': _build_tsn}


def build_model(cfg, logger=None):
    """The model MODEL_NAME names, with MODEL.PRETRAINED backbone weights if given."""
    name = cfg.MODEL_NAME.lower()
    if name not in MODELS:
        raise ModelConfigError(f"unknown MODEL_NAME {cfg.MODEL_NAME!r}; choose one of {sorted(MODELS)}")
    if cfg.BACKBONE.lower() not in BACKBONES:
        raise ModelConfigError(f"unknown BACKBONE {cfg.BACKBONE!r}; choose one of {sorted(BACKBONES)}")
    try:
        model = MODELS[name](cfg)
    except KeyError as err:
        raise ModelConfigError(str(err.args[0])) from err
    if cfg.MODEL.PRETRAINED:
        load_backbone_file(model, cfg.MODEL.PRETRAINED, logger)
    return model


__all__ = ['build_model', 'MODELS', 'ModelConfigError', 'TSN', 'WeightsError']
