"""The TSN/TSM authors' checkpoints (mit-han-lab/temporal-shift-module `ckpt.best.pth.tar` and
the released `TSM_kinetics_RGB_resnet50_shift8_blockres_...pth`): `{'epoch', 'arch',
'state_dict', 'best_prec1'}`, keys `module.base_model...` and `module.new_fc`."""
from .common import unwrap
from .tsn_layout import convert_tsn_layout

NAME = 'tsm-authors'
DESCRIPTION = "TSN/TSM authors: {'state_dict'} with module.base_model. and module.new_fc"


def recognises(checkpoint):
    state = unwrap(checkpoint, 'state_dict')
    return state is not None and any(k.startswith('base_model.') for k in state)


def convert(checkpoint):
    return convert_tsn_layout(unwrap(checkpoint, 'state_dict'), 'TSM authors')
