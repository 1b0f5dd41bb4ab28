"""Untrimmed and long videos: windows over the whole video, pooled into a video-level
prediction, and merged into segments along the timeline."""
import json
import os.path as osp

import numpy as np
import pytest

import demo
import evaluate
import predict
from conftest import run_main
from test_predict import videos as videos_fixture

videos = videos_fixture          # the fixture: rendered videos, a corrupt file, a checkpoint
from datasets.clip_spec import ClipSpec
from DataTool.Synthetic.render import CLASS_NAMES, render_clip
from utils.metrics import average_precision, mean_average_precision
from utils.untrimmed import merge_segments, pool, predict_windows, score_untrimmed, window_starts

FIRST, SECOND = 0, 4            # move_left, then rotate_clockwise: another shape and hue


def object_colour(clip):
    """Mean colour [3] of the pixels that stand out from the clip's background (its median)."""
    background = np.median(clip.reshape(3, -1), axis=1)
    mask = np.abs(clip - background[:, None, None, None]).sum(axis=0) > 1.0
    return clip[:, mask].mean(axis=1) if mask.any() else background


class ColourOracle:
    """Scores a clip by how close the colour of its moving object is to each part's: a model
    that knows the two classes, so what is tested is the windows, the pooling and the segments."""

    def __init__(self, parts, spec):
        self.prototypes = {label: object_colour(spec.to_input(frames[:spec.frames]))
                           for label, frames in parts.items()}

    def __call__(self, clips):
        scores = np.full((len(clips), len(CLASS_NAMES)), -50.0)
        for label, prototype in self.prototypes.items():
            scores[:, label] = [-np.abs(object_colour(clip) - prototype).sum() * 5 for clip in clips]
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


def test_two_classes_in_a_row_rank_first_and_second_and_make_two_segments():
    spec = ClipSpec('dense', 8, 2, 1, 72, 64, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    parts = {FIRST: render_clip(FIRST, 60, np.random.default_rng(1)),
             SECOND: render_clip(SECOND, 90, np.random.default_rng(2))}
    frames = [spec.resize(frame[None])[0] for frame in np.concatenate([parts[FIRST], parts[SECOND]])]
    window, stride = 16, 8
    scores, starts = predict_windows(frames, spec, ColourOracle(parts, spec), window, stride,
                                     show_progress=False)
    assert starts == window_starts(150, 16, 8) and starts[-1] + window == 150
    for method in ('topk', 'mean', 'max'):
        ranked = np.argsort(-pool(scores, method, k=3))
        assert set(ranked[:2].tolist()) == {FIRST, SECOND}, method
    segments = merge_segments(scores, starts, window, np.arange(150) / 16.0, list(CLASS_NAMES))
    assert [s['class'] for s in segments] == [CLASS_NAMES[FIRST], CLASS_NAMES[SECOND]]
    assert segments[0]['start_frame'] == 0 and segments[-1]['end_frame'] == 150
    assert abs(segments[0]['end_frame'] - 60) <= window / 2               # the true boundary
    assert segments[1]['start_time'] == pytest.approx(segments[0]['end_frame'] / 16.0, abs=1e-3)
    assert all(0 < s['score'] <= 1 for s in segments)


def test_window_starts_cover_every_frame_at_the_edges():
    assert window_starts(16, 16, 8) == [0]                                 # one window, exactly the video
    assert window_starts(17, 16, 8) == [0, 1]                              # the last one ends at the end
    assert window_starts(40, 16, 8) == [0, 8, 16, 24]
    assert window_starts(41, 16, 8) == [0, 8, 16, 24, 25]


def test_a_video_as_long_as_the_window_is_one_window():
    spec = ClipSpec('dense', 8, 2, 1, 72, 64, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    frames = [np.zeros((72, 72, 3), dtype=np.uint8)] * 16
    pooled, windows = score_untrimmed(frames, spec, lambda clips: np.full((len(clips), 3), 1 / 3),
                                      window=16, stride=8, times=np.arange(16) / 8.0)
    assert windows['starts'] == [0] and windows['window'] == 16
    assert windows['start_times'] == [0.0] and windows['end_times'] == [2.0]
    np.testing.assert_allclose(pooled, [1 / 3] * 3)


def test_segment_boundaries_fall_midway_between_window_centres():
    """Windows of 8 frames every 4 over 20 frames (centres 4, 8, 12, 16): the first two say
    class 1, the last two class 2, so the change is midway between centres 8 and 12."""
    scores = np.array([[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.1, 0.1, 0.8]])
    segments = merge_segments(scores, [0, 4, 8, 12], 8, np.arange(20) / 5.0, ['a', 'b', 'c'])
    assert [(s['class'], s['start_frame'], s['end_frame']) for s in segments] == [('b', 0, 10), ('c', 10, 20)]
    assert (segments[0]['end_time'], segments[1]['start_time'], segments[1]['end_time']) == (2.0, 2.0, 4.0)
    variable = np.concatenate([np.arange(10) / 10.0, 1.0 + np.arange(10) / 2.0])   # 10 fps, then 2
    segments = merge_segments(scores, [0, 4, 8, 12], 8, variable, ['a', 'b', 'c'])
    assert (segments[0]['end_time'], segments[1]['start_time'], segments[1]['end_time']) == (1.0, 1.0, 5.6)  # the last frame lasts the typical interval
    assert segments[0]['score'] == pytest.approx(0.75) and segments[1]['windows'] == 2


def test_pooling_formulas():
    windows = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7]])
    np.testing.assert_allclose(pool(windows, 'mean'), [0.375, 0.625])
    np.testing.assert_allclose(pool(windows, 'max'), [0.9, 0.9])
    np.testing.assert_allclose(pool(windows, 'topk', k=2), [0.6, 0.85])
    with pytest.raises(ValueError, match="unknown pooling 'median'"):
        pool(windows, 'median')


@pytest.mark.slow
def test_predict_untrimmed_and_demo_timeline_from_the_command_line(videos, tmp_path):  # noqa: F811
    folder, relative, overrides = videos
    out = tmp_path / 'untrimmed'
    assert run_main(predict, overrides, ['--input', str(folder), '--out', str(out), '--untrimmed',
                                         '--window', '6', '--stride', '3', '--pooling', 'max']) == 0
    with open(out / 'windows.jsonl', encoding='utf-8') as handle:
        windows = [json.loads(line) for line in handle]
    assert len(windows) == 16 and all(row['window'] == 6 and row['stride'] == 3 for row in windows)
    with open(out / 'predictions.jsonl', encoding='utf-8') as handle:
        rows = {row['path']: row for row in map(json.loads, handle)}
    for row in windows:
        pooled = np.max(np.array(row['scores']), axis=0)
        assert rows[row['path']]['top'][0][1] == pytest.approx(pooled.max(), abs=1e-5)
        assert 'max pooling' in rows[row['path']]['views']
    assert open(out / 'unreadable.csv', encoding='utf-8').read().count('\n') == 3     # header + 2

    video = str(folder / relative[0])
    assert run_main(demo, overrides, ['--video', video, '--timeline', '--window', '6',
                                      '--out', str(tmp_path / 'demo')]) == 0
    with open(tmp_path / 'demo' / 'segments.json', encoding='utf-8') as handle:
        segments = json.load(handle)['segments']
    assert segments[0]['start_frame'] == 0
    assert all(a['end_frame'] == b['start_frame'] for a, b in zip(segments, segments[1:]))
    with open(tmp_path / 'demo' / 'timeline.png', 'rb') as handle:
        assert handle.read(8) == b'\x89PNG\r\n\x1a\n'
    assert osp.isfile(tmp_path / 'demo' / 'output.avi')


def test_mean_average_precision_is_activitynet_s():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 1, 1, 0])
    # class 0 ranks videos 0, 1, 3, 2: positives at ranks 1 and 3 -> (1/1 + 2/3) / 2
    # class 1 ranks videos 2, 3, 1, 0: positives at ranks 1 and 3 -> (1/1 + 2/3) / 2
    assert mean_average_precision(scores, labels) == pytest.approx((1 + 2 / 3) / 2 * 100)
    assert average_precision(scores[:, 0], np.zeros(4, dtype=bool)) is None
    assert mean_average_precision(np.eye(3), np.arange(3)) == pytest.approx(100.0)


def test_map_leaves_out_classes_without_videos():
    """ActivityNet's mAP averages over the classes present: a class with no video has no AP."""
    scores = np.array([[0.9, 0.1, 0.5], [0.8, 0.2, 0.9], [0.3, 0.7, 0.2], [0.6, 0.4, 0.1]])
    labels = np.array([0, 1, 1, 0])                       # nobody is class 2
    assert average_precision(scores[:, 2], labels == 2) is None
    assert mean_average_precision(scores, labels) == pytest.approx((1 + 2 / 3) / 2 * 100)
    assert mean_average_precision(scores[:, :2], labels) == mean_average_precision(scores, labels)


@pytest.mark.slow
def test_evaluate_untrimmed_reports_top3_and_map(videos, tmp_path):  # noqa: F811
    _, _, overrides = videos
    assert run_main(evaluate, overrides, ['--untrimmed', '--window', '8', '--pooling', 'mean']) == 0
    folder = osp.join(str(tmp_path), 'ar_output', 'tsn', 'synthetic_rgb_resnet18', 'eval', 'untrimmed')
    with open(osp.join(folder, 'report.json'), encoding='utf-8') as handle:
        report = json.load(handle)
    scores = np.load(osp.join(folder, 'scores.npz'))
    assert report['num_videos'] == 16 and report['untrimmed']['pooling'] == 'mean'
    assert report['mAP'] == pytest.approx(mean_average_precision(scores['scores'], scores['labels']))
    assert report['top1'] <= report['top3'] <= report['top5']
    with open(osp.join(folder, 'windows.jsonl'), encoding='utf-8') as handle:
        windows = [json.loads(line) for line in handle]
    for row, pooled in zip(windows, scores['scores']):
        np.testing.assert_allclose(np.mean(row['scores'], axis=0), pooled, atol=1e-5)
