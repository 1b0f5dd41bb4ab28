"""Convert a weight file of any known source into a DLAC checkpoint (what best.pth holds:
`model`, `config`), which evaluate.py --checkpoint, export_model.py, demo.py and MODEL.PRETRAINED
take:

    python -m models.convert SRC OUT [--from auto|NAME] [--cfg F] [KEY VALUE ...]

Prints the config keys it set: MODEL_NAME, BACKBONE and DATASET.CLASS_NUM of the model in the
file, the architecture options and the input convention. KEY VALUE pairs and --cfg files win
over what the file implies.
"""
import argparse
import logging
import os.path as osp
import sys

from config import ConfigError, parse_config, resolve_model_defaults, set_unless_explicit, to_plain
from models import build_model
from models.weights import WeightsError, load_converted
from utils.checkpoint import CheckpointError, save_atomic

from . import SOURCES, apply_settings, read_weights

# what a change of MODEL_NAME re-derives, unless given explicitly
MODEL_DEFAULTED = {'DATASET.SAMPLING': 'auto', 'VAL.NUM_SEGMENTS': 0, 'VAL.NUM_CLIPS': 0,
                   'VAL.NUM_CROPS': 0}


def build_convert_parser():
    parser = argparse.ArgumentParser(prog='python -m models.convert', description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='the weight file, as downloaded')
    parser.add_argument('out', help='the DLAC checkpoint to write')
    parser.add_argument('--from', dest='source', default='auto', choices=['auto'] + sorted(SOURCES),
                        help='the source of SRC (default: detected from its content)')
    parser.add_argument('--cfg', dest='cfg_files', action='append', default=[],
                        help='YAML or Python file of config overrides')
    parser.add_argument('opts', nargs='*', metavar='KEY VALUE', help='config overrides')
    return parser


def convert_file(cfg, src, out, source='auto', logger=None):
    """Read `src`, set the config it implies, build the model, load it whole, write `out`.
    Returns {config key: value} of what was set."""
    converted = read_weights(src, source)
    settings = {'MODEL_NAME': converted.model_name, 'BACKBONE': converted.options['BACKBONE']}
    if converted.num_classes is not None:
        settings['DATASET.CLASS_NUM'] = converted.num_classes
    applied = {key: value for key, value in settings.items() if set_unless_explicit(key, value, cfg)}
    if 'MODEL_NAME' in applied:
        for key, value in MODEL_DEFAULTED.items():
            set_unless_explicit(key, value, cfg)
        resolve_model_defaults(cfg)
    applied.update(apply_settings(cfg, converted, logger, path=src))
    model = build_model(cfg, logger, pretrained=False)
    load_converted(model, converted, src, logger)
    save_atomic({'model': model.state_dict(), 'config': to_plain(cfg), 'source': converted.source,
                 'converted_from': osp.abspath(src), 'conversions': converted.notes}, out)
    return applied


def main(argv=None):
    cfg, args = parse_config(argv, parser=build_convert_parser())
    logger = logging.getLogger('dlac.convert')
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.addHandler(logging.StreamHandler(sys.stdout))
    try:
        applied = convert_file(cfg, args.src, args.out, args.source, logger)
    except (WeightsError, CheckpointError, ConfigError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'wrote {args.out}: {cfg.MODEL_NAME}/{cfg.BACKBONE}, {cfg.DATASET.CLASS_NUM} classes')
    print('config keys set from the file (give the same to evaluate.py, export_model.py and '
          'demo.py, or let them read the options and convention from the checkpoint):')
    for key, value in applied.items():
        print(f'  {key} {value}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
