"""Loading weight files into our models by parameter name.

Files are read with `weights_only=True`: a file that would execute code on load is refused.
"""
import torch

from utils.checkpoint import load_checkpoint


class WeightsError(RuntimeError):
    """A weight file that does not fit the model; the message lists the keys."""


def extract_state_dict(obj):
    """The state dict inside a checkpoint: plain, or under 'model' / 'state_dict'."""
    for key in ('model', 'state_dict', 'model_state'):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError('not a state dict: expected a mapping of parameter names to tensors')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in obj.items()}


def _describe(keys, limit=8):
    keys = sorted(keys)
    more = f' ... and {len(keys) - limit} more' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def load_into(module, state_dict, ignore_prefixes=(), source='state dict'):
    """Copy every tensor of `state_dict` into `module` by name.

    Keys starting with one of `ignore_prefixes` (e.g. the ImageNet classifier 'fc.') are
    skipped. Missing keys, unexpected keys and shape mismatches raise WeightsError naming
    them; BN `num_batches_tracked` counters absent from older files are tolerated.
    Returns the list of ignored keys.
    """
    own = module.state_dict()
    ignored = [k for k in state_dict if k.startswith(tuple(ignore_prefixes))]
    incoming = {k: v for k, v in state_dict.items() if k not in ignored}
    missing = [k for k in own if k not in incoming and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in incoming if k not in own]
    mismatched = [f'{k} {tuple(v.shape)} vs {tuple(own[k].shape)}' for k, v in incoming.items()
                  if k in own and own[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f'missing keys: {_describe(missing)}')
    if unexpected:
        problems.append(f'unexpected keys: {_describe(unexpected)}')
    if mismatched:
        problems.append(f'shape mismatch (file vs model): {_describe(mismatched)}')
    if problems:
        raise WeightsError(f'{source} does not fit {type(module).__name__}: ' + '; '.join(problems))
    module.load_state_dict(incoming, strict=False)
    return ignored


def load_backbone_file(model, path, logger=None):
    """Load an ImageNet backbone file (torchvision ResNet or TSN BN-Inception layout) into
    `model.backbone`, leaving out the file's ImageNet classifier."""
    state = extract_state_dict(load_checkpoint(path))
    state = {('fc.' + k[len('last_linear.'):] if k.startswith('last_linear.') else k): v
             for k, v in state.items()}
    ignored = load_into(model.backbone, state, ignore_prefixes=('fc.',), source=path)
    if logger:
        logger.info('loaded backbone weights from %s (left out the classifier: %s)',
                    path, ', '.join(ignored) or 'none')
    return ignored
