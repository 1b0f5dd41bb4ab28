"""One logger per experiment: console plus a log file under <experiment>/log/."""
import logging
import os
import os.path as osp
import sys


def setup_logger(log_dir, name='dlac', filename='train.log', rank=0):
    """INFO to the console and log_dir/filename. Other DDP processes (`rank` > 0) write no file
    and only print warnings, marked with their rank, so the log reads as one run."""
    is_main = rank == 0
    if is_main:
        os.makedirs(log_dir, exist_ok=True)
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter('%(asctime)s %(levelname)s ' + ('' if is_main else f'[rank {rank}] ')
                            + '%(message)s', '%Y-%m-%d %H:%M:%S')
    if not is_main:
        logger.setLevel(logging.WARNING)
    handlers = [logging.StreamHandler(sys.stdout)]
    if is_main:
        handlers.append(logging.FileHandler(osp.join(log_dir, filename), encoding='utf-8'))
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger
