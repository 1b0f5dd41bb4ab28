"""BN-Inception converted from Caffe (`bn_inception-52deb4733.pth` of Cadene's
pretrainedmodels, used by TSN, TSM and DLAC; the TSM repository's archs/bn_inception.py has the
same names). Our BN-Inception has these names; the classifier is `last_linear` (Cadene) or
`fc`. The network was trained on BGR pixels in [0, 255] minus [104, 117, 128], std 1: that
convention comes with the weights."""
import torch

from .common import CAFFE_BGR, KIND_2D_BACKBONE, Converted, present
from .tsn_layout import squeeze_bn

NAME = 'bninception-caffe'
DESCRIPTION = 'Caffe BN-Inception (conv1_7x7_s2, inception_3a_..., last_linear or fc)'


def _state(checkpoint):
    return checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}


def recognises(checkpoint):
    state = _state(checkpoint)
    return isinstance(state, dict) and isinstance(state.get('conv1_7x7_s2.weight'), torch.Tensor)


def convert(checkpoint):
    ours = {}
    for key, value in squeeze_bn(_state(checkpoint)).items():
        for classifier in ('last_linear.', 'fc.'):
            if key.startswith(classifier):
                ours['head.fc.' + key[len(classifier):]] = value
                break
        else:
            ours['backbone.' + key] = value
    return Converted(ours, 'tsn', {'BACKBONE': 'bninception'}, dict(CAFFE_BGR),
                     ['backbone.* <- the Caffe names, head.fc <- last_linear/fc',
                      'input convention: BGR, values 0-255, mean [104, 117, 128], std 1'],
                     kind=KIND_2D_BACKBONE, classifier=present(ours),
                     first_conv='backbone.conv1_7x7_s2.weight')
