"""Checkpoints of the original DLAC (cvnovice95/DLAC, `<TIMESTAMP>_best_*.pth.tar`):
`{'epoch', 'model_dict', 'optimizer_dict', 'best_prec1'}`, keys with DataParallel's `module.`.
TSN/TSM have the TSN authors' `base_model.`/`new_fc.` layout; MFNet3D the MFNet authors' names.
DLAC's I3D-R50 (`base_model.` with 5 non-local blocks `layer2.{1,3}` / `layer3.{1,3,5}.nl_block`:
g, theta, phi, W.0 conv, W.1 BN, no sub-sampling; a `fullyconv` 1x1x1 classifier) becomes our
I3D with MODEL.NON_LOCAL True and MODEL.NON_LOCAL_SUBSAMPLE False.

Two things about DLAC's own runs that a converter cannot change: its I3D stem max pool has no
padding (ours (0, 1, 1)), and its 3D loaders fed clips reshaped frame-major, so DLAC-trained 3D
weights expect that order; fine-tune them rather than expecting DLAC's numbers."""
from .common import CLASSIFIER, IMAGENET, KIND_MODEL, Converted, rename, resnet_depth, unwrap
from .tsn_layout import convert_tsn_layout

NAME = 'dlac-original'
DESCRIPTION = "the original DLAC: {'model_dict'} (base_model./new_fc., MFNet3D, I3D with non-local)"


def recognises(checkpoint):
    return unwrap(checkpoint, 'model_dict') is not None


def convert(checkpoint):
    state = unwrap(checkpoint, 'model_dict')
    if 'base_model.fullyconv.weight' in state:
        return convert_i3d(state)
    if 'conv1.conv.weight' in state:
        ours = {('head.fc.' + k[len('classifier.'):] if k.startswith('classifier.') else 'backbone.' + k): v
                for k, v in state.items()}
        return Converted(ours, 'mfnet3d', {'BACKBONE': 'mfnet3d'}, dict(IMAGENET),
                         ['MFNet3D: backbone.* <- the names, head.fc <- classifier',
                          "DLAC normalised MFNet3D inputs with ImageNet's mean and std"],
                         kind=KIND_MODEL, classifier=CLASSIFIER, first_conv='backbone.conv1.conv.weight')
    return convert_tsn_layout(state, 'original DLAC')


I3D_RULES = [
    (r'base_model\.(layer\d\.\d+)\.nl_block\.(g|theta|phi)\.(weight|bias)', r'backbone.\1.non_local.\2.\3'),
    (r'base_model\.(layer\d\.\d+)\.nl_block\.W\.([01])\.(.+)', r'backbone.\1.non_local.out.\2.\3'),
    (r'base_model\.fullyconv\.(weight|bias)', r'head.fc.\1'),
    (r'base_model\.(.+)', r'backbone.\1'),
]


def convert_i3d(state):
    ours = rename(state, I3D_RULES, 'original DLAC I3D')
    ours['head.fc.weight'] = ours['head.fc.weight'].flatten(1)      # the 1x1x1 conv classifier
    depth = resnet_depth(ours, 'backbone.')
    options = {'BACKBONE': f'resnet{depth}', 'MODEL.STEM_TEMPORAL_STRIDE': [1, 1],
               'MODEL.NON_LOCAL': True, 'MODEL.NON_LOCAL_SUBSAMPLE': False,
               'MODEL.NON_LOCAL_SCALED': False}
    notes = ['base_model. -> backbone., nl_block.g/theta/phi/W.0/W.1 -> non_local.g/theta/phi/out.0/out.1, '
             'fullyconv (1x1x1) -> head.fc', 'non-local blocks without sub-sampling, as DLAC built them',
             "DLAC's stem max pool had no padding (ours pads 1): fine-tune rather than expect DLAC's numbers"]
    return Converted(ours, 'i3d', options, dict(IMAGENET), notes, kind=KIND_MODEL, classifier=CLASSIFIER,
                     first_conv='backbone.conv1.weight')
