"""One logger per experiment: console plus a log file under <experiment>/log/."""
import logging
import os
import os.path as osp
import sys


def setup_logger(log_dir, name='dlac', filename='train.log'):
    os.makedirs(log_dir, exist_ok=True)
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter('%(asctime)s %(levelname)s %(message)s', '%Y-%m-%d %H:%M:%S')
    for handler in (logging.StreamHandler(sys.stdout),
                    logging.FileHandler(osp.join(log_dir, filename), encoding='utf-8')):
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger
