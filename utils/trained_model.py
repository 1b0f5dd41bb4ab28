"""A trained model back from its checkpoint: what evaluation, prediction, export and the demo
start from. Its config (sizes, convention, architecture) was already taken from the
checkpoint when the run's config was built (config_trained); here its weights are loaded."""
from config import default_checkpoint
from models import WeightsError, build_model
from models.weights import load_into

from .checkpoint import CheckpointError, is_state_dict, load_checkpoint


def load_model(cfg, checkpoint_path=None, logger=None):
    """build_model(cfg) with the checkpoint's weights (loaded with weights_only=True);
    returns (model, checkpoint dict). `checkpoint_path` defaults to VAL.CHECKPOINT or the
    experiment's best.pth. A checkpoint of another model or class count is a WeightsError
    that says which (keys and shapes listed)."""
    checkpoint_path = checkpoint_path or default_checkpoint(cfg)
    state = load_checkpoint(checkpoint_path)
    weights = state['model'] if 'model' in state else state
    if not is_state_dict(weights):
        raise CheckpointError(f'{checkpoint_path} is not a model checkpoint: its '
                              f'{"model" if "model" in state else "content"} is not a dict of '
                              f'named tensors')
    if state.get('config') is not None and not isinstance(state['config'], dict):
        raise CheckpointError(f"{checkpoint_path} is damaged or not ours: its config is a "
                              f"{type(state['config']).__name__}, not a dict of settings")
    model = build_model(cfg, logger, pretrained=False)
    head = weights.get('head.fc.weight')
    if head is not None and head.shape[0] != cfg.DATASET.CLASS_NUM:
        raise WeightsError(f'{checkpoint_path} was trained for {head.shape[0]} classes but '
                           f'DATASET.CLASS_NUM is {cfg.DATASET.CLASS_NUM}')
    load_into(model, weights, source=checkpoint_path, target=f'{cfg.MODEL_NAME}/{cfg.BACKBONE}')
    if logger:
        top1 = state.get('top1')
        logger.info('loaded %s (epoch %s, val top1 %s)', checkpoint_path, state.get('epoch', '?'),
                    f'{top1:.2f}' if isinstance(top1, (int, float)) else '?')
    return model, state
