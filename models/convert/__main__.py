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

from config import ConfigError, build_config, log_resolution, to_plain
from models import build_model
from models.weights import WeightsError, load_converted
from utils.checkpoint import CheckpointError, save_atomic

from . import SOURCES, read_weights, settings_of
from .common import KIND_PRETRAIN


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


def implied_settings(converted):
    """{config key: value} a converted file implies: the model in it (MODEL_NAME, BACKBONE,
    DATASET.CLASS_NUM; TRAIN.TASK 'pretrain' for a masked autoencoder, so that it is written
    whole, decoder included), its architecture options and its input convention."""
    implied = {'MODEL_NAME': converted.model_name, 'BACKBONE': converted.options['BACKBONE']}
    if converted.kind == KIND_PRETRAIN:
        implied['TRAIN.TASK'] = 'pretrain'
    if converted.num_classes is not None:
        implied['DATASET.CLASS_NUM'] = converted.num_classes
    implied.update(settings_of(converted, converted.model_name))
    return implied


def convert_file(argv, src, out, source='auto', logger=None):
    """Read `src`, build the config it implies under `argv` (--cfg / KEY VALUE win), build
    the model, load the file whole, write `out`. Returns (config, {key: value} of what the
    file set: every key it implies that argv did not give)."""
    converted = read_weights(src, source)
    implied = implied_settings(converted)
    cfg = build_config(argv, implied=implied)
    model = build_model(cfg, logger, pretrained=False)
    load_converted(model, converted, src, logger, model_name=cfg.MODEL_NAME.lower())
    save_atomic({'model': model.state_dict(), 'config': to_plain(cfg), 'source': converted.source,
                 'converted_from': osp.abspath(src), 'conversions': converted.notes}, out)
    return cfg, {key: value for key, value in implied.items() if key not in cfg.explicit}


def main(argv=None):
    args = build_convert_parser().parse_intermixed_args(argv)
    logger = logging.getLogger('dlac.convert')
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.addHandler(logging.StreamHandler(sys.stdout))
    config_argv = [item for path in args.cfg_files for item in ('--cfg', path)] + list(args.opts)
    try:
        cfg, applied = convert_file(config_argv, args.src, args.out, args.source, logger)
    except (WeightsError, CheckpointError, ConfigError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    log_resolution(cfg, logger)
    print(f'wrote {args.out}: {cfg.MODEL_NAME}/{cfg.BACKBONE}, {cfg.DATASET.CLASS_NUM} classes')
    print('config keys set from the file (evaluate.py, export_model.py, predict.py and demo.py '
          'read them from the checkpoint; give them to train.py only with MODEL.PRETRAINED):')
    for key, value in applied.items():
        print(f'  {key} {value}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
