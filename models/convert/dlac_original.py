"""Checkpoints of the original DLAC (cvnovice95/DLAC, `<TIMESTAMP>_best_*.pth.tar`):
`{'epoch', 'model_dict', 'optimizer_dict', 'best_prec1'}`, keys with DataParallel's `module.`.
TSN/TSM have the TSN authors' `base_model.`/`new_fc.` layout; MFNet3D the MFNet authors' names.
DLAC's I3D carries 5 non-local blocks (`nl_block`), which DLAC here has no counterpart for yet:
such a file is refused with that reason.

Two things about DLAC's own runs that a converter cannot change: its I3D stem max pool has no
padding (ours (0, 1, 1)), and its 3D loaders fed clips reshaped frame-major, so DLAC-trained 3D
weights expect that order; fine-tune them rather than expecting DLAC's numbers."""
from ..weights import WeightsError
from .common import IMAGENET, Converted, unwrap
from .tsn_layout import convert_tsn_layout

NAME = 'dlac-original'
DESCRIPTION = "the original DLAC: {'model_dict'} (base_model./new_fc., MFNet3D, I3D with non-local)"


def recognises(checkpoint):
    return unwrap(checkpoint, 'model_dict') is not None


def convert(checkpoint):
    state = unwrap(checkpoint, 'model_dict')
    if any('.nl_block.' in k for k in state) or 'base_model.fullyconv.weight' in state:
        raise WeightsError("the original DLAC's I3D carries non-local blocks (nl_block), which DLAC "
                           'here has no counterpart for yet: it cannot be loaded until the model-zoo '
                           'issue adds them (MODEL.NON_LOCAL)')
    if 'conv1.conv.weight' in state:
        ours = {('head.fc.' + k[len('classifier.'):] if k.startswith('classifier.') else 'backbone.' + k): v
                for k, v in state.items()}
        return Converted(ours, 'mfnet3d', {'BACKBONE': 'mfnet3d'}, dict(IMAGENET),
                         ['MFNet3D: backbone.* <- the names, head.fc <- classifier',
                          "DLAC normalised MFNet3D inputs with ImageNet's mean and std"])
    return convert_tsn_layout(state, 'original DLAC')
