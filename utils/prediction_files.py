"""predict.py's output folder: predictions.jsonl / .csv and unreadable.csv, appended to as
batches finish so a rerun continues where one stopped, and run.json saying what produced them.

A rerun may only add rows made the same way: the same model (by content hash, wherever the
file now lies), views, top-k and mode. Otherwise the old rows would silently stand for the new
settings, so the folder is refused unless the caller overwrites it."""
import csv
import hashlib
import json
import os
import os.path as osp

import numpy as np

from config import ConfigError

from .safe_text import from_spreadsheet_cell, printable_path, spreadsheet_row

RUN_FILE = 'run.json'
OUTPUT_FILES = ('predictions.jsonl', 'predictions.csv', 'unreadable.csv', 'windows.jsonl', RUN_FILE)


class PredictionFolderError(ConfigError):
    """An output folder holding rows made by another model or other settings."""


def file_digest(path, chunk=1 << 22):
    """sha256 of a file's content (what identifies a model wherever it is copied)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def run_settings(model_path, views, topk, untrimmed=None):
    """What decides a prediction row: the model file's content, views, top-k, the mode and
    its window options."""
    settings = {'model_sha256': file_digest(model_path), 'views': views, 'topk': int(topk),
                'mode': 'untrimmed' if untrimmed else 'clips'}
    if untrimmed:
        settings['untrimmed'] = dict(untrimmed)
    return settings


def claim_folder(out_dir, settings, model_path, overwrite=False):
    """Make `out_dir` hold rows of `settings`: a new folder records them; a folder made with
    the same settings is continued; a different one raises PredictionFolderError naming the
    differences, unless `overwrite` (its earlier outputs are removed)."""
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, RUN_FILE)
    earlier = None
    if osp.isfile(path):
        with open(path, encoding='utf-8') as handle:
            earlier = json.load(handle).get('settings')
    elif osp.isfile(osp.join(out_dir, 'predictions.jsonl')):
        earlier = {'model_sha256': 'unknown (made before run.json was kept)'}
    if earlier is not None and earlier != settings:
        if not overwrite:
            changed = sorted(set(earlier) | set(settings))
            differences = '; '.join(f'{key}: {earlier.get(key)!r} there, {settings.get(key)!r} now'
                                    for key in changed if earlier.get(key) != settings.get(key))
            raise PredictionFolderError(
                f'{out_dir} holds predictions made differently ({differences}); give a new '
                '--out, or --overwrite to replace them')
        for name in OUTPUT_FILES:
            if osp.isfile(osp.join(out_dir, name)):
                os.remove(osp.join(out_dir, name))
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump({'settings': settings, 'model_file': osp.abspath(model_path)}, handle, indent=2)


class PredictionFiles:
    """predictions.jsonl / .csv and unreadable.csv in `out_dir`, appended to as batches
    finish; `done` holds the paths a previous run already wrote. Paths are written as
    printable UTF-8 (a name that is not UTF-8 shows its bytes as \\xNN) and CSV cells that a
    spreadsheet would run as formulas are escaped (utils.safe_text)."""

    def __init__(self, out_dir, topk):
        os.makedirs(out_dir, exist_ok=True)
        self.jsonl, self.csv = osp.join(out_dir, 'predictions.jsonl'), osp.join(out_dir, 'predictions.csv')
        self.unreadable = osp.join(out_dir, 'unreadable.csv')
        self.topk, self.done = topk, set()
        if osp.isfile(self.jsonl):
            with open(self.jsonl, encoding='utf-8') as handle:
                self.done.update(json.loads(line)['path'] for line in handle if line.strip())
        if osp.isfile(self.unreadable):
            with open(self.unreadable, encoding='utf-8', newline='') as handle:
                self.done.update(from_spreadsheet_cell(row['path']) for row in csv.DictReader(handle))
        self._header(self.csv, ['path'] + [f'{kind}{rank}' for rank in range(1, topk + 1)
                                           for kind in ('class', 'score')]
                     + ['views', 'seconds', 'duration'])
        self._header(self.unreadable, ['path', 'reason'])

    @staticmethod
    def _header(path, columns):
        if not osp.isfile(path):
            with open(path, 'w', encoding='utf-8', newline='') as handle:
                csv.writer(handle).writerow(columns)

    def is_done(self, path):
        return printable_path(path) in self.done

    def add(self, path, scores, names, views, seconds, duration):
        """One video's row: its top-k, the views, `seconds` spent on it and its `duration`
        (seconds of video)."""
        order = np.argsort(-scores)[:self.topk]
        top = [[names[i], round(float(scores[i]), 6)] for i in order]
        path = printable_path(path)
        with open(self.jsonl, 'a', encoding='utf-8') as handle:
            handle.write(json.dumps({'path': path, 'top': top, 'views': views,
                                     'seconds': round(seconds, 4),
                                     'duration': round(duration, 3)}) + '\n')
        with open(self.csv, 'a', encoding='utf-8', newline='') as handle:
            csv.writer(handle).writerow(spreadsheet_row(
                [path] + [v for pair in top for v in pair]
                + [views, round(seconds, 4), round(duration, 3)]))

    def add_unreadable(self, path, reason):
        with open(self.unreadable, 'a', encoding='utf-8', newline='') as handle:
            csv.writer(handle).writerow(spreadsheet_row([printable_path(path), printable_path(reason)]))
