"""Two-stream (or more) late fusion: a weighted sum of the softmax scores that evaluate.py saved
in eval/scores.npz, checked to cover the same videos in the same order."""
import os.path as osp

import numpy as np

from .metrics import summarize


class FusionError(ValueError):
    """Score files that cannot be fused; the message says how they differ."""


def load_scores(path):
    if not osp.isfile(path):
        raise FusionError(f'score file not found: {path} (evaluate.py writes eval/scores.npz)')
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in ('scores', 'labels', 'paths') if key not in data]
        if missing:
            raise FusionError(f'{path}: not a DLAC score file (no {", ".join(missing)})')
        return {key: data[key] for key in data.files}


def check_same_videos(files, paths):
    """FusionError unless every file scores the same videos, in the same order, with the same
    labels and class count."""
    reference, first = files[0], paths[0]
    for other, path in zip(files[1:], paths[1:]):
        if len(other['paths']) != len(reference['paths']):
            raise FusionError(f'{path} scores {len(other["paths"])} videos, {first} '
                              f'{len(reference["paths"])}: evaluate both on the same metafile')
        differ = np.flatnonzero(other['paths'] != reference['paths'])
        if len(differ):
            i = differ[0]
            raise FusionError(f'{path} and {first} list other videos or another order: video '
                              f'{i} is {str(other["paths"][i])!r} vs {str(reference["paths"][i])!r} '
                              f'({len(differ)} positions differ)')
        if not np.array_equal(other['labels'], reference['labels']):
            raise FusionError(f'{path} and {first} give the same videos different labels')
        if other['scores'].shape[1] != reference['scores'].shape[1]:
            raise FusionError(f'{path} has {other["scores"].shape[1]} classes, {first} '
                              f'{reference["scores"].shape[1]}')


def fuse(paths, weights=None):
    """{'streams': [metrics of each file], 'fused': metrics of the weighted sum, 'scores': the
    weighted sum [videos, classes], 'weights', 'num_videos'}."""
    if len(paths) < 2:
        raise FusionError('--fuse needs at least two score files')
    weights = list(weights) if weights else [1.0] * len(paths)
    if len(weights) != len(paths):
        raise FusionError(f'{len(paths)} score files but {len(weights)} weights')
    files = [load_scores(path) for path in paths]
    check_same_videos(files, paths)
    labels, num_classes = files[0]['labels'], files[0]['scores'].shape[1]
    fused = sum(weight * data['scores'] for weight, data in zip(weights, files))
    metrics = [summarize(data['scores'], labels, num_classes) for data in files]
    return {'streams': metrics, 'fused': summarize(fused, labels, num_classes), 'scores': fused,
            'weights': weights, 'num_videos': len(labels)}
