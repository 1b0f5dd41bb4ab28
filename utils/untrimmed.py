"""Long and untrimmed videos: windows of the model's clip slid over the whole video, their
scores pooled into one video-level prediction (DLAC's untrimmed evaluation), and merged into
segments of one class along the timeline (demo.py --timeline)."""
import numpy as np

from .progress import progress
from .whole_video import frame_span

POOLINGS = ('mean', 'max', 'topk')


def window_starts(num_frames, window, stride):
    """Starts of windows of `window` frames every `stride` frames; the last one ends at the
    video's end, so every frame is covered."""
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return starts


def predict_windows(frames, spec, predictor, window, stride, batch=8, show_progress=True):
    """Softmax scores [num_windows, K] of the windows over `frames` (resized RGB), and their
    starts; each window is prepared as one test view (ClipSpec). Progress is counted in
    windows, so a long video shows it moving."""
    starts = window_starts(len(frames), window, stride)
    scores = []
    bar = progress(None, desc='windows', total=len(starts), unit='window',
                   disable=not show_progress, leave=False)
    for first in range(0, len(starts), batch):
        chunk = starts[first:first + batch]
        clips = [spec.to_input(np.stack([frames[i] for i in spec.window_indices(s, window)]))
                 for s in chunk]
        scores.append(predictor(np.stack(clips)))
        bar.update(len(chunk))
    bar.close()
    return np.concatenate(scores), starts


def nearest_window(num_frames, starts, window):
    """For each frame, the window whose centre is nearest."""
    centres = np.asarray(starts) + window / 2.0
    frame_centres = np.arange(num_frames) + 0.5
    return np.abs(frame_centres[:, None] - centres[None, :]).argmin(axis=1)


def pool(window_scores, method='topk', k=3):
    """Video-level scores [K] from window scores [W, K]: their mean, their max, or per class
    the mean of its k highest window scores (top-k pooling: a class present in part of the
    video is not diluted by the rest)."""
    if method == 'mean':
        return window_scores.mean(axis=0)
    if method == 'max':
        return window_scores.max(axis=0)
    if method == 'topk':
        k = max(1, min(k, len(window_scores)))
        return np.sort(window_scores, axis=0)[-k:].mean(axis=0)
    raise ValueError(f'unknown pooling {method!r}; choose one of {list(POOLINGS)}')


def merge_segments(window_scores, starts, window, times, names):
    """Consecutive windows with the same top class merged into segments. Each window speaks
    for the frames nearer its centre than any other's, so segment ends fall midway between
    the centres of windows of different classes. [{class, start_frame, end_frame, start_time,
    end_time, score (mean top score of its windows), windows}] in time order; times in seconds
    from the frames' timestamps `times`."""
    num_frames = len(times)
    owner = nearest_window(num_frames, starts, window)
    top = window_scores.argmax(axis=1)
    segments = []
    for frame in range(num_frames):
        w = owner[frame]
        label = int(top[w])
        if segments and segments[-1]['index'] == label:
            segment = segments[-1]
            segment['end_frame'] = frame + 1
            segment['_windows'].add(int(w))
        else:
            segments.append({'index': label, 'class': names[label], 'start_frame': frame,
                             'end_frame': frame + 1, '_windows': {int(w)}})
    for segment in segments:
        windows = sorted(segment.pop('_windows'))
        start_time, end_time = frame_span(times, segment['start_frame'], segment['end_frame'])
        segment.update(start_time=round(start_time, 3), end_time=round(end_time, 3),
                       windows=len(windows),
                       score=round(float(np.mean([window_scores[w, segment['index']] for w in windows])), 5))
    return segments


def window_centres(times, starts, window):
    """Seconds at the middle of each window."""
    return np.array([sum(frame_span(times, s, s + window)) / 2 for s in starts])


def save_timeline_png(window_scores, starts, window, times, names, segments, path, classes=5):
    """Classes over time: a strip of the segments, and the score curves of the classes that
    lead anywhere (at most `classes`)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    centres = window_centres(times, starts, window)
    leading = list(dict.fromkeys(int(i) for i in window_scores.argmax(axis=1)))[:classes]
    colours = {index: plt.cm.tab10(n % 10) for n, index in enumerate(leading)}
    fig, (strip, curves) = plt.subplots(2, 1, figsize=(10, 4), sharex=True,
                                        gridspec_kw={'height_ratios': [1, 3]})
    for segment in segments:
        colour = colours.get(segment['index'], 'lightgrey')
        strip.axvspan(segment['start_time'], segment['end_time'], color=colour, alpha=0.8)
        strip.text((segment['start_time'] + segment['end_time']) / 2, 0.5, segment['class'],
                   ha='center', va='center', fontsize=8)
    strip.set_yticks([])
    for index in leading:
        curves.plot(centres, window_scores[:, index], color=colours[index], label=names[index])
    curves.set_xlabel('time (s)')
    curves.set_ylabel('score')
    curves.set_ylim(0, 1)
    curves.legend(fontsize=8, loc='upper right')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_untrimmed_arguments(parser, what):
    """--untrimmed (helped as `what`), --window, --stride, --pooling, --pool-k."""
    parser.add_argument('--untrimmed', action='store_true', help=what)
    parser.add_argument('--window', type=int, default=0, help="--untrimmed: frames per window (0: the clip's span)")
    parser.add_argument('--stride', type=int, default=0, help='--untrimmed: frames between windows (0: window/2)')
    parser.add_argument('--pooling', choices=POOLINGS, default='topk', help='--untrimmed: how windows are pooled')
    parser.add_argument('--pool-k', type=int, default=3, help='--untrimmed, topk pooling: windows per class')


def window_plan(num_frames, spec, window=0, stride=0):
    """(window, stride) in frames: `window` (0: the clip's span) at most the video, `stride`
    (0: half a window) at least 1."""
    window = min(window or spec.default_window, num_frames)
    return window, max(1, stride or window // 2)


def score_untrimmed(frames, spec, predictor, window=0, stride=0, pooling='topk', pool_k=3,
                    times=None):
    """(pooled scores [K], {'window', 'stride', 'starts', 'scores'} and with `times` (each
    frame's seconds) 'start_times', 'end_times') of one whole video: windows of `window`
    frames (0: the clip's span) every `stride` (0: half a window)."""
    window, stride = window_plan(len(frames), spec, window, stride)
    window_scores, starts = predict_windows(frames, spec, predictor, window, stride)
    windows = {'window': window, 'stride': stride, 'starts': [int(s) for s in starts]}
    if times is not None:
        spans = [frame_span(times, s, s + window) for s in starts]
        windows.update(start_times=[round(a, 3) for a, _ in spans],
                       end_times=[round(b, 3) for _, b in spans])
    windows['scores'] = np.round(window_scores, 6).tolist()
    return pool(window_scores, pooling, pool_k), windows
