"""Loading weight files into our models by parameter name.

models.convert reads a file of any known source into our names; then (`load_converted`):
- a checkpoint of this very model: loaded whole; a classifier for another number of classes is
  re-initialised (and the log says so);
- the backbone of a 2D model (an ImageNet ResNet, BN-Inception or MFNet2D as a TSN): loaded by
  name into the model's backbone, its classifier left out; for 3D models each 2D kernel is
  inflated (repeated over time and divided by the temporal size), so a clip of identical
  frames gives the 2D network's response wherever the zero temporal padding at the clip's
  ends is out of the kernels' reach;
- anything else: WeightsError listing the missing, unexpected and mismatched keys.
Files are read with `weights_only=True`: a file that would execute code on load is refused.
"""
import torch


from .modality import cross_modality_weight, first_conv_key

CLASSIFIER_PREFIXES = ('fc.', 'classifier.', 'last_linear.')


class WeightsError(RuntimeError):
    """A weight file that does not fit the model; the message lists the keys."""


def _describe(keys, limit=8):
    keys = sorted(keys)
    more = f' ... and {len(keys) - limit} more' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def refuse_nonfinite(state_dict, source='state dict'):
    """WeightsError naming the tensors that hold NaN or Inf: such weights would turn every
    output into NaN (a diverged run's file, or a damaged one), so they are refused before use."""
    bad = [key for key, value in state_dict.items()
           if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise WeightsError(f'{source} holds NaN or Inf values in {len(bad)} tensor'
                           f'{"s" * (len(bad) != 1)}: {_describe(bad)}. The file is damaged or '
                           f'comes from a run that diverged; refused')


def _raise_if_problems(target, source, missing, unexpected, mismatched):
    problems = []
    if missing:
        problems.append(f'missing keys: {_describe(missing)}')
    if unexpected:
        problems.append(f'unexpected keys: {_describe(unexpected)}')
    if mismatched:
        problems.append(f'shape mismatch (file vs model): {_describe(mismatched)}')
    if problems:
        raise WeightsError(f'{source} does not fit {target}: ' + '; '.join(problems))


def load_into(module, state_dict, ignore_prefixes=(), source='state dict', target=None):
    """Copy every tensor of `state_dict` into `module` by name, shapes equal.

    Keys starting with one of `ignore_prefixes` are skipped in the file and may be absent from
    it. Missing keys, unexpected keys and shape mismatches raise WeightsError naming them
    (`target` says what they do not fit; default the module's class name); BN
    `num_batches_tracked` counters absent from older files are tolerated.
    Tensors holding NaN or Inf are refused by name. Returns the list of ignored file keys.
    """
    refuse_nonfinite(state_dict, source)
    own = module.state_dict()
    prefixes = tuple(ignore_prefixes)
    ignored = [k for k in state_dict if k.startswith(prefixes)]
    incoming = {k: v for k, v in state_dict.items() if k not in ignored}
    missing = [k for k in own if k not in incoming and not k.endswith('num_batches_tracked')
               and not (prefixes and k.startswith(prefixes))]
    unexpected = [k for k in incoming if k not in own]
    mismatched = [f'{k} {_shape(v)} vs {tuple(own[k].shape)}' for k, v in incoming.items()
                  if k in own and (not torch.is_tensor(v) or own[k].shape != v.shape)]
    _raise_if_problems(target or type(module).__name__, source, missing, unexpected, mismatched)
    module.load_state_dict(incoming, strict=False)
    return ignored


def _shape(value):
    return tuple(value.shape) if torch.is_tensor(value) else f'({type(value).__name__}, not a tensor)'



def inflate_tensor(weight, target_shape):
    """A 2D tensor shaped for `target_shape`: a conv kernel [O, I, h, w] becomes
    [O, I, t, h, w], repeated over t and divided by t (the I3D inflation). Input channels the
    target has beyond the file's (SlowFast's Slow pathway also receives the lateral Fast
    features) get zero weights, so the inflated pathway starts as the 2D network.
    Returns None when no such mapping exists."""
    if weight.dim() + 1 == len(target_shape) and weight.dim() == 4:
        depth = target_shape[2]
        weight = weight.unsqueeze(2).repeat(1, 1, depth, 1, 1) / depth
    if tuple(weight.shape) == tuple(target_shape):
        return weight
    if (weight.dim() == len(target_shape) >= 4 and weight.shape[0] == target_shape[0]
            and weight.shape[2:] == tuple(target_shape[2:]) and weight.shape[1] < target_shape[1]):
        padded = weight.new_zeros(target_shape)
        padded[:, :weight.shape[1]] = weight
        return padded
    return None


def identity_shortcut(module, prefix):
    """State of a shortcut projection `prefix` (conv, BN) that passes the first C_out input
    channels through unchanged. A SlowFast ResNet-18/34 Slow pathway needs one where the 2D
    network had a plain identity shortcut (the lateral channels widen the block's input)."""
    conv, norm = module.get_submodule(prefix + '0'), module.get_submodule(prefix + '1')
    out_channels = conv.weight.shape[0]
    weight = torch.zeros_like(conv.weight)
    centre = tuple(size // 2 for size in weight.shape[2:])
    weight[(torch.arange(out_channels), torch.arange(out_channels)) + centre] = 1.0
    return {prefix + '0.weight': weight, prefix + '1.weight': torch.ones(out_channels),
            prefix + '1.bias': torch.zeros(out_channels),
            prefix + '1.running_mean': torch.zeros(out_channels),
            prefix + '1.running_var': torch.full((out_channels,), 1.0 - norm.eps)}


def load_backbone_state(module, state_dict, source='state dict'):
    """Load a 2D backbone file into `module` (2D or an inflated 3D network) by name, leaving out
    the file's classifier. Returns the list of left-out keys."""
    refuse_nonfinite(state_dict, source)
    own = module.state_dict()
    ignored = [k for k in state_dict if k.startswith(CLASSIFIER_PREFIXES) and k not in own]
    state_dict = dict(state_dict)
    first = first_conv_key(module)
    if (first in state_dict and first in own and state_dict[first].shape[1] == 3
            and own[first].shape[1] != 3 and state_dict[first].dim() == own[first].dim()):
        # a Flow or RGBDiff network from RGB weights: cross-modality initialisation
        state_dict[first] = cross_modality_weight(state_dict[first], own[first].shape[1])
    for key in own:
        prefix = key[:key.find('downsample.') + len('downsample.')] if 'downsample.' in key else None
        block = prefix and prefix[:-len('downsample.')]
        if (prefix and block + 'conv1.weight' in state_dict
                and not any(k.startswith(prefix) for k in state_dict)
                and own[prefix + '0.weight'].shape[1] >= own[prefix + '0.weight'].shape[0]):
            state_dict.update(identity_shortcut(module, prefix))
    incoming, missing, mismatched = {}, [], []
    for key, target in own.items():
        if key not in state_dict:
            if not key.endswith('num_batches_tracked'):
                missing.append(key)
            continue
        weight = inflate_tensor(state_dict[key], target.shape)
        if weight is None:
            mismatched.append(f'{key} {tuple(state_dict[key].shape)} vs {tuple(target.shape)}')
        else:
            incoming[key] = weight
    unexpected = [k for k in state_dict if k not in own and k not in ignored]
    _raise_if_problems(type(module).__name__, source, missing, unexpected, mismatched)
    module.load_state_dict(incoming, strict=False)
    return ignored


def backbone_targets(model):
    """The submodules a 2D backbone file goes into: the model's `backbone`, or its own choice
    (`inflation_targets`, e.g. SlowFast's Slow pathway)."""
    if hasattr(model, 'inflation_targets'):
        return list(model.inflation_targets())
    return [model.backbone]


def load_backbone_file(model, path, logger=None):
    """Load the backbone of a 2D weight file (an ImageNet network of any known source) into
    the model's backbone, inflated for 3D models. Returns the left-out classifier keys."""
    from .convert import read_weights
    return _load_backbone(model, read_weights(path), path, logger)


def _load_backbone(model, converted, path, logger=None):
    if converted.model_name not in TWO_D_MODELS:
        raise WeightsError(f'{path} holds a {converted.model_name} model ({converted.source}), whose '
                           f'weights do not fit {type(model).__name__}: use it with MODEL_NAME '
                           f'{converted.model_name}')
    backbone = {('fc.' + k[len('head.fc.'):] if k.startswith('head.fc.') else k[len('backbone.'):]): v
                for k, v in converted.state_dict.items() if k.startswith(('backbone.', 'head.fc.'))}
    ignored = []
    for target in backbone_targets(model):
        ignored = load_backbone_state(target, backbone, source=path)
    if logger:
        logger.info('loaded the backbone of %s into %s (left out the classifier: %s)',
                    path, type(model).__name__, ', '.join(ignored) or 'none')
    return ignored


def load_model_checkpoint(model, state, source='state dict', logger=None):
    """Load a whole-model state dict. A classifier head trained for another number of classes
    (e.g. Kinetics-400 weights fine-tuned on UCF101) is re-initialised. Returns the list of
    head keys that were re-initialised."""
    own = model.state_dict()
    head_keys = [k for k in state if k.startswith('head.') and k in own and state[k].shape != own[k].shape]
    if head_keys:
        model.head.reset_parameters()
        if logger:
            shapes = ', '.join(f'{k} {tuple(state[k].shape)} -> {tuple(own[k].shape)}' for k in head_keys)
            logger.info('classifier of %s has another number of classes: re-initialised (%s)',
                        source, shapes)
    load_into(model, state, ignore_prefixes=('head.',) if head_keys else (), source=source)
    return head_keys


def is_model_checkpoint(model, state):
    """True when the file is a whole checkpoint of this model: most of its keys are the
    model's names, with the model's shapes outside the classifier (a Flow TSN takes an RGB
    TSN's backbone, not the whole model)."""
    own = model.state_dict()
    shared = [k for k in state if k in own]
    return (len(shared) >= 0.5 * len(state)
            and all(state[k].shape == own[k].shape for k in shared if not k.startswith('head.')))


TWO_D_MODELS = ('tsn', 'tsm')


def load_converted(model, converted, path, logger=None):
    """Load a converted weight file (models.convert.Converted) into `model`: whole when its
    names are the model's (the classifier re-initialised for another class count), else the
    backbone of a 2D model (TSN/TSM: an ImageNet network) into the model's backbone, inflated
    for 3D models, its classifier left out."""
    if is_model_checkpoint(model, converted.state_dict):
        load_model_checkpoint(model, converted.state_dict, source=path, logger=logger)
        if logger:
            logger.info('loaded model weights from %s', path)
        return
    _load_backbone(model, converted, path, logger)


def load_pretrained(model, path, logger=None, source='auto'):
    """A weight file of any known source (models.convert) into `model`, without a config:
    see load_converted. Returns the Converted file."""
    from .convert import read_weights
    converted = read_weights(path, source)
    load_converted(model, converted, path, logger)
    return converted

