"""Loading weight files into our models by parameter name.

models.convert reads a file of any known source into our names, and its converter says what
the file is (Converted.kind, .classifier, .first_conv, as timm's pretrained_cfg); then
`load_converted` loads each kind its own way:
- 'model', a whole recognition model: loaded whole into the model it is; a classifier for
  another number of classes (its `classifier` names) is left as the model initialised it, and
  the log says so. A TSN/TSM file (a 2D network under a segment model) gives its backbone
  where a whole model cannot go: to a Flow or RGBDiff TSN/TSM (the first convolution by
  cross-modality initialisation) and to a 3D model (inflated, as below). A whole model of
  another MODEL_NAME is a WeightsError that says which model it holds;
- '2d_backbone', an ImageNet 2D network (a ResNet, BN-Inception, MFNet2D, ...): loaded by
  name into the model's backbone, its classifier left out unless the model is that very
  network (a TSN of its classes on its input); for 3D models each 2D kernel is inflated
  (repeated over time and divided by the temporal size), so a clip of identical frames gives
  the 2D network's response wherever the zero temporal padding at the clip's ends is out of
  the kernels' reach;
- '3d_backbone' and 'encoder' (no classifier): a WeightsError saying what the file is;
- 'masked_autoencoder', a VideoMAE pre-training model (encoder and pixel decoder): loaded
  whole into a VideoMAEPretrain (pre-training continues); into a VideoMAE classification model
  its encoder's patch embedding and blocks only, as VideoMAE's fine-tuning does: the decoder
  and the encoder's final norm (unused with mean pooling) are dropped, fc_norm and the
  classifier start fresh, and the log says so. Into any other model: a WeightsError;
- a VideoMAEPretrain takes nothing but a 'masked_autoencoder' file: a fine-tuned VideoMAE has
  lost its decoder, and no other model has one (WeightsError saying what the file is);
- keys that do not fit: a WeightsError listing the missing, unexpected and mismatched keys.
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


def load_backbone_state(module, state_dict, source='state dict', first_conv=None):
    """Load a 2D backbone file into `module` (2D or an inflated 3D network) by name, leaving out
    the file's classifier (`fc.`, `classifier.`, `last_linear.` keys the module lacks).
    `first_conv`: the name of the file's first convolution (default the module's first); an
    RGB one goes into a Flow or RGBDiff network by cross-modality initialisation. Returns the
    list of left-out keys."""
    refuse_nonfinite(state_dict, source)
    own = module.state_dict()
    ignored = [k for k in state_dict if k.startswith(CLASSIFIER_PREFIXES) and k not in own]
    state_dict = dict(state_dict)
    first = first_conv or first_conv_key(module)
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


# TSN and TSM: one family of 2D segment models with the same parameter names (the temporal
# shift has none; the TSN/TSM authors' BN-Inception files cannot say which they are)
SEGMENT_MODELS = ('tsn', 'tsm')
CLASSIFIER = ('head.fc.weight', 'head.fc.bias')       # the classifier of every model of ours


def load_backbone_file(model, path, logger=None):
    """Load the backbone of a 2D weight file (an ImageNet network of any known source, or a
    TSN/TSM) into the model's backbone, inflated for 3D models. Returns the left-out
    classifier keys, in the 2D network's names (`fc.weight`, ...)."""
    from .convert import read_weights
    from .convert.common import KIND_2D_BACKBONE
    converted = read_weights(path)
    if converted.kind != KIND_2D_BACKBONE and converted.model_name not in SEGMENT_MODELS:
        raise WeightsError(_other_model(model, converted, path))
    return _load_backbone(model, converted, path, logger)


def _other_model(model, converted, path):
    return (f'{path} holds a {converted.model_name} model ({converted.source}), whose weights do not '
            f'fit {type(model).__name__}: use it with MODEL_NAME {converted.model_name}')


def _load_backbone(model, converted, path, logger=None, how='by name'):
    """The file's `backbone.` tensors into each of backbone_targets(model), its classifier
    left out; `how` says why, for the log."""
    state, classifier = converted.state_dict, set(converted.classifier)
    refuse_nonfinite(state, path)           # named as the converted file names them
    outside = [k for k in state if not k.startswith('backbone.') and k not in classifier]
    if outside:
        raise WeightsError(f'{path}: a {converted.model_name} file ({converted.source}) with tensors '
                           f'outside its backbone and classifier: {_describe(outside)}; its backbone '
                           f'alone would not be the network it was trained as')
    backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    first = converted.first_conv[len('backbone.'):] if converted.first_conv else None
    for target in backbone_targets(model):
        load_backbone_state(target, backbone, source=path, first_conv=first)
    # the classifier as the 2D network names it (head.fc.weight -> fc.weight)
    left_out = sorted(k[len('head.'):] if k.startswith('head.') else k for k in classifier if k in state)
    if logger:
        logger.info('loaded the backbone of %s (%s, %s) into %s %s (left out the classifier: %s)',
                    path, converted.kind, converted.source, type(model).__name__, how,
                    ', '.join(left_out) or 'none')
    return left_out


def load_model_checkpoint(model, state, source='state dict', logger=None, classifier=CLASSIFIER):
    """Load a whole-model state dict. A classifier (the `classifier` tensors) trained for
    another number of classes (e.g. Kinetics-400 weights fine-tuned on UCF101) is not loaded:
    it stays as the model initialised it (load into a freshly built model), and the log says
    so. Returns the classifier keys that were re-initialised."""
    own = model.state_dict()
    classifier = tuple(classifier)
    other_classes = [k for k in classifier if k in state and k in own and state[k].shape != own[k].shape]
    if other_classes and logger:
        shapes = ', '.join(f'{k} {tuple(state[k].shape)} -> {tuple(own[k].shape)}' for k in other_classes)
        logger.info('classifier of %s has another number of classes: re-initialised (%s)', source, shapes)
    load_into(model, state, ignore_prefixes=classifier if other_classes else (), source=source)
    return list(classifier) if other_classes else []


def _first_convs(model, converted):
    """(the file's first convolution, [the one of each backbone target under that name,
    None where it has none])."""
    theirs = converted.state_dict.get(converted.first_conv) if converted.first_conv else None
    if theirs is None or not converted.first_conv.startswith('backbone.'):
        return theirs, []
    name = converted.first_conv[len('backbone.'):]
    return theirs, [target.state_dict().get(name) for target in backbone_targets(model)]


def _backbone_use(model, converted):
    """How the 2D backbone of a file (an ImageNet network, a TSN/TSM) goes into `model` where
    the whole file cannot: 'inflated' into a 3D model, 'by cross-modality initialisation' into
    a Flow or RGBDiff segment model from an RGB one; None when the first convolutions agree."""
    theirs, owns = _first_convs(model, converted)
    if theirs is None or not owns or any(own is None for own in owns):
        return None
    if all(own.dim() == theirs.dim() + 1 for own in owns):
        return 'inflated'
    if theirs.shape[1] == 3 and all(own.dim() == theirs.dim() and own.shape[1] != 3 for own in owns):
        return 'by cross-modality initialisation'
    return None


def _check_input_channels(model, converted, path):
    """A whole file whose first convolution takes other input channels than the model's (a
    Flow network's file for an RGB model, another NEW_LENGTH): a WeightsError saying so."""
    if not converted.first_conv:
        return
    theirs = converted.state_dict.get(converted.first_conv)
    own = model.state_dict().get(converted.first_conv)
    if (theirs is not None and own is not None and theirs.dim() == own.dim() and theirs.dim() >= 2
            and theirs.shape[1] != own.shape[1]):
        raise WeightsError(f'{path}: its first convolution {converted.first_conv} takes {theirs.shape[1]} '
                           f'input channels, the model\'s {own.shape[1]} (another MODALITY or '
                           f'DATA.NEW_LENGTH): train from RGB weights, whose first convolution goes '
                           f'into any modality by cross-modality initialisation')


def _load_model_file(model, converted, path, logger, model_name):
    segment_file = converted.model_name in SEGMENT_MODELS
    how = _backbone_use(model, converted) if segment_file else None
    if (model_name is not None and converted.model_name != model_name and how != 'inflated'
            and not (segment_file and model_name in SEGMENT_MODELS)):
        raise WeightsError(_other_model(model, converted, path))
    if how is not None:
        _load_backbone(model, converted, path, logger, how)
        return
    _check_input_channels(model, converted, path)
    load_model_checkpoint(model, converted.state_dict, source=path, logger=logger,
                          classifier=converted.classifier)
    if logger:
        logger.info('loaded model weights from %s (a whole %s model)', path, converted.model_name)


def _is_that_2d_network(model, converted):
    """True when `model` is the 2D network of a '2d_backbone' file itself: the same first
    convolution (not inflated, the same input) and a classifier of the file's shapes (a TSN
    of its classes)."""
    own = model.state_dict()
    names = (converted.first_conv,) + converted.classifier if converted.first_conv else ()
    return (bool(converted.classifier) and bool(names)
            and all(k in own and k in converted.state_dict
                    and own[k].shape == converted.state_dict[k].shape for k in names))


# ---------------------------------------------------------------- VideoMAE pre-training
# a VideoMAE pre-training file's parts (models/videomae_pretrain.py): what fine-tuning takes of
# it, under the classification model's names, and what it leaves
ENCODER_PARTS = ('encoder.patch_embed.', 'encoder.blocks.')
DECODER_PARTS = ('decoder.', 'encoder_to_decoder.', 'mask_token')
ENCODER_NORM = 'encoder.norm.'
FRESH_IN_FINE_TUNING = ('backbone.fc_norm.', 'head.')
STARTS_PRETRAINING = ("pre-training continues only from a pre-training checkpoint (encoder and decoder: the "
                      "VideoMAE repository's pre-training checkpoint.pth, a Hugging Face VideoMAEForPreTraining "
                      "folder, or a TRAIN.TASK pretrain run of ours), or starts from scratch (MODEL.PRETRAINED '')")


def _not_a_pretraining_file(converted, path):
    """Why a file that is not a pre-training model cannot start a VideoMAEPretrain."""
    if converted.model_name == 'videomae' and converted.kind == 'model':
        what = 'a VideoMAE classification model (fine-tuned, its decoder is gone)'
    elif converted.model_name == 'videomae':
        what = f'a VideoMAE encoder without a decoder (kind {converted.kind!r})'
    else:
        what = (f'a {converted.model_name} model (kind {converted.kind!r}), not a VideoMAE pre-training '
                'model')
    return f'{path} is {what} ({converted.source}): {STARTS_PRETRAINING}'


def _load_pretraining_model(model, converted, path, logger=None):
    """A pre-training file into a VideoMAEPretrain: whole, encoder and decoder (the same depth
    and width, or the keys that differ are named)."""
    load_into(model, converted.state_dict, source=path)
    if logger:
        logger.info('loaded %s (a VideoMAE pre-training model, %s) whole: encoder and decoder, %d tensors',
                    path, converted.source, len(converted.state_dict))


def _load_pretrained_encoder(model, converted, path, logger=None):
    """A pre-training file into a VideoMAE classification model, as VideoMAE fine-tunes: the
    encoder's patch embedding and blocks (all of them, shapes equal); fc_norm and the classifier
    as the model initialised them (the encoder's `norm` feeds the decoder, fc_norm follows the
    mean pooling the classifier uses instead)."""
    if 'backbone.patch_embed.proj.weight' not in model.state_dict():
        raise WeightsError(f'{path} is a VideoMAE pre-training model (encoder and pixel decoder, '
                           f'{converted.source}): its encoder fine-tunes a VideoMAE (MODEL_NAME videomae, '
                           f'BACKBONE {converted.options.get("BACKBONE")}), not {type(model).__name__}')
    state = converted.state_dict
    encoder = {'backbone.' + k[len('encoder.'):]: v for k, v in state.items() if k.startswith(ENCODER_PARTS)}
    decoder = [k for k in state if k.startswith(DECODER_PARTS)]
    norm = [k for k in state if k.startswith(ENCODER_NORM)]
    unknown = [k for k in state if not k.startswith(ENCODER_PARTS + DECODER_PARTS + (ENCODER_NORM,))]
    if unknown:
        raise WeightsError(f'{path}: a VideoMAE pre-training file with tensors outside its encoder and '
                           f'decoder: {_describe(unknown)}')
    load_into(model, encoder, ignore_prefixes=FRESH_IN_FINE_TUNING, source=path)
    if logger:
        logger.info('loaded the encoder of %s (a VideoMAE pre-training model, %s) into %s: %d tensors '
                    '(encoder.patch_embed, encoder.blocks -> backbone.); dropped the decoder (%d tensors: '
                    'decoder.*, encoder_to_decoder, mask_token) and the encoder\'s final norm (%s, unused '
                    'with mean pooling); backbone.fc_norm and the classifier head.fc start fresh',
                    path, converted.source, type(model).__name__, len(encoder), len(decoder),
                    ', '.join(norm) or 'absent')


def load_converted(model, converted, path, logger=None, model_name=None):
    """Load a converted weight file (models.convert.Converted) into the freshly built `model`
    as its kind says (see the module's docstring).

    Args:
        model: the model to load into, as its constructor initialised it.
        converted: the file, read by models.convert.read_weights.
        path: the file's path, for messages and the log.
        logger: where to say what was loaded, left out and re-initialised (optional).
        model_name: the MODEL_NAME `model` was built as: a whole model of another MODEL_NAME
            is refused by name (without it, by the keys that do not fit).
    """
    from .convert.common import KIND_2D_BACKBONE, KIND_MODEL, KIND_PRETRAIN, is_masked_autoencoder
    if is_masked_autoencoder(model.state_dict()):
        if converted.kind != KIND_PRETRAIN:
            raise WeightsError(_not_a_pretraining_file(converted, path))
        _load_pretraining_model(model, converted, path, logger)
    elif converted.kind == KIND_PRETRAIN:
        _load_pretrained_encoder(model, converted, path, logger)
    elif converted.kind == KIND_MODEL:
        _load_model_file(model, converted, path, logger, model_name)
    elif converted.kind == KIND_2D_BACKBONE:
        if _is_that_2d_network(model, converted):
            load_model_checkpoint(model, converted.state_dict, source=path, logger=logger,
                                  classifier=converted.classifier)
            if logger:
                logger.info('loaded %s (%s) whole: the model is that 2D network, its classifier included',
                            path, converted.source)
        else:
            _load_backbone(model, converted, path, logger, _backbone_use(model, converted) or 'by name')
    else:
        what = {'3d_backbone': 'a 3D backbone', 'encoder': 'an encoder'}.get(converted.kind, converted.kind)
        raise WeightsError(f'{path} holds {what} without a classifier ({converted.source}: kind '
                           f'{converted.kind!r}, {converted.model_name}/{converted.options.get("BACKBONE")}); '
                           f'DLAC loads whole models (kind \'model\'), 2D ImageNet networks '
                           f'(\'2d_backbone\') and VideoMAE pre-training models (\'masked_autoencoder\'): '
                           f'fine-tune from a {converted.model_name} checkpoint with its '
                           f'classifier (MODEL_NAME {converted.model_name})')


def load_pretrained(model, path, logger=None, source='auto', model_name=None):
    """A weight file of any known source (models.convert) into `model`, without a config:
    see load_converted. Returns the Converted file."""
    from .convert import read_weights
    converted = read_weights(path, source)
    load_converted(model, converted, path, logger, model_name)
    return converted
