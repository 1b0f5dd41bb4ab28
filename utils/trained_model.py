"""A trained model back from its checkpoint, with its class names: what evaluation, export and
the demo all start from."""
import os.path as osp

from datasets import read_class_names
from models import WeightsError, build_model
from models.convert import apply_settings, ours
from models.weights import load_into

from .checkpoint import CheckpointError, is_state_dict, load_checkpoint


def class_names_for(cfg):
    """Names from classInd.txt beside the validation metafile, else class_<i>."""
    path = osp.join(osp.dirname(cfg.DATASET.VAL_META_PATH), 'classInd.txt')
    if osp.isfile(path):
        names = read_class_names(path)
        if len(names) == cfg.DATASET.CLASS_NUM:
            return names
    return [f'class_{index}' for index in range(cfg.DATASET.CLASS_NUM)]


def default_checkpoint(cfg, exp_folder):
    """VAL.CHECKPOINT if set, else the experiment's best.pth."""
    return cfg.VAL.CHECKPOINT or osp.join(exp_folder, 'checkpoints', 'best.pth')


def load_model(cfg, checkpoint_path, logger):
    """build_model(cfg) with the checkpoint's weights (loaded with weights_only=True);
    returns (model, checkpoint dict). The architecture options and input convention saved in
    the checkpoint's config go into `cfg` first, except keys given on the command line, so a
    model is evaluated, exported and shown as it was trained (MODEL.PRETRAINED is not read
    again). A checkpoint of another model or class count is a WeightsError that says which."""
    state = load_checkpoint(checkpoint_path)
    weights = state['model'] if 'model' in state else state
    if not is_state_dict(weights):
        raise CheckpointError(f'{checkpoint_path} is not a model checkpoint: its '
                              f'{"model" if "model" in state else "content"} is not a dict of '
                              f'named tensors')
    if state.get('config') is not None and not isinstance(state['config'], dict):
        raise CheckpointError(f"{checkpoint_path} is damaged or not ours: its config is a "
                              f"{type(state['config']).__name__}, not a dict of settings")
    if state.get('config') and ours.recognises(state):
        apply_settings(cfg, ours.convert(state), logger, path=checkpoint_path)
    model = build_model(cfg, logger, pretrained=False)
    head = weights.get('head.fc.weight')
    if head is not None and head.shape[0] != cfg.DATASET.CLASS_NUM:
        raise WeightsError(f'{checkpoint_path} was trained for {head.shape[0]} classes but '
                           f'DATASET.CLASS_NUM is {cfg.DATASET.CLASS_NUM}')
    load_into(model, weights, source=checkpoint_path, target=f'{cfg.MODEL_NAME}/{cfg.BACKBONE}')
    logger.info('loaded %s (epoch %s, val top1 %s)', checkpoint_path, state.get('epoch', '?'),
                state.get('top1', '?'))
    return model, state
