"""eval/report.html: one evaluated run on one static page, for a person to read in a browser
or to pass on as a folder. The page has no scripts and fetches nothing from the network; each
picture is a PNG beside it (eval/confusion.png, the rest in eval/report_files/), so it shows
the same anywhere. Every text that comes from the config, the class names or the metafile's
paths is escaped: those come from data files, and must read as text, never as markup.
"""
import datetime
import html
import os
import os.path as osp
import shutil

import numpy as np

from config import default_config, to_plain
from config_trained import flat_items
from utils.metrics import per_class_accuracy
from utils.plots import save_frame_strip_png, save_per_class_accuracy_png

PAGE_NAME = 'report.html'
FILES_DIR = 'report_files'          # the page's own pictures, beside it, rewritten each time
WORST_CLIPS = 12
CONFUSED_PAIRS = 10
NO_DEFAULT = object()               # a key that config.py's defaults do not have

STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1280px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
summary { cursor: pointer; margin: 0.5em 0; color: #444; }
td.value { font-family: monospace; word-break: break-all; }
tr.changed { background: #fff1b8; font-weight: bold; }
.numbers td:first-child { font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; }
.clips { display: flex; flex-wrap: wrap; gap: 1em 2em; }
figure.clip { margin: 0; max-width: 600px; }
figure.clip figcaption { font-size: 0.85em; }
.note { color: #555; font-style: italic; }
.wrong { color: #b00020; } .right { color: #1b7f1b; }
"""


def flat_settings(node):
    """[(dotted key, plain value)] of a (nested) config, in its order."""
    return [(key, to_plain(value)) for key, value in flat_items(node)]


def settings_rows(cfg):
    """[(key, value, default, changed)] of the resolved config: the keys whose value differs
    from config.py's defaults first (what this run changed, resolved paths and views
    included), then the rest, each group in config order."""
    defaults = dict(flat_settings(default_config()))
    rows = [(key, value, defaults.get(key, NO_DEFAULT), defaults.get(key, NO_DEFAULT) != value)
            for key, value in flat_settings(cfg)]
    return [row for row in rows if row[3]] + [row for row in rows if not row[3]]


def confused_pairs(matrix, count=CONFUSED_PAIRS):
    """[(true class, predicted class, videos, share of the true class's videos in %)] of the
    `count` largest off-diagonal cells of the confusion matrix, largest first."""
    off = np.array(matrix, dtype=np.int64)
    np.fill_diagonal(off, 0)
    totals = np.maximum(np.asarray(matrix).sum(axis=1), 1)
    cells = [(int(t), int(p)) for t, p in zip(*np.nonzero(off))]
    cells.sort(key=lambda cell: (-off[cell], -off[cell] / totals[cell[0]], cell))
    return [(t, p, int(off[t, p]), 100.0 * off[t, p] / totals[t]) for t, p in cells[:count]]


def worst_rows(scores, labels, count=WORST_CLIPS):
    """Rows of `scores` [N, K] whose true class (`labels` [N]) has the lowest score, lowest
    first: the videos the model got most wrong."""
    true_scores = np.asarray(scores)[np.arange(len(labels)), np.asarray(labels)]
    return np.argsort(true_scores, kind='stable')[:count]


def write_report_page(eval_dir, cfg, report, confusion, scores, labels, paths, class_names,
                      view_of, curves_png=None, worst_count=WORST_CLIPS):
    """Write eval_dir/report.html and its pictures; returns the page's path.

    Args:
        eval_dir: the evaluation folder (confusion.png is already there).
        cfg: the resolved config of the evaluation.
        report: evaluate.py's report (top1, top5, mean_class_accuracy, views, checkpoint, ...).
        confusion: the confusion matrix [K, K], true class on the rows.
        scores, labels, paths: the averaged scores [N, K], labels [N] and metafile paths of
            the videos scored.
        class_names: the K class names.
        view_of: row -> the first view [C, T, H, W] uint8 of that video as the model saw it,
            or None when it cannot be read again.
        curves_png: the run's training curves (copied beside the page), if any.
        worst_count: how many of the worst-classified videos to show.
    """
    files_dir = osp.join(eval_dir, FILES_DIR)
    shutil.rmtree(files_dir, ignore_errors=True)
    os.makedirs(files_dir)
    sections = [_header(cfg, report), _settings(cfg), _curves(files_dir, curves_png),
                _confusion(eval_dir), _per_class(files_dir, confusion, class_names),
                _pairs(confusion, class_names),
                _worst(files_dir, scores, labels, paths, class_names, view_of, worst_count)]
    title = f'{cfg.MODEL_NAME}/{cfg.EXP_TAG}: evaluation report'
    page = ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<title>{_text(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n'
            + '\n'.join(sections) + '\n</body>\n</html>\n')
    path = osp.join(eval_dir, PAGE_NAME)
    with open(path + '.tmp', 'w', encoding='utf-8') as handle:
        handle.write(page)
    os.replace(path + '.tmp', path)
    return path


def _text(value):
    return html.escape(str(value), quote=True)


def _shown(value):
    """A config value as typed on the command line: strings bare ('' for empty), the rest as
    Python writes them."""
    if isinstance(value, str):
        return value if value else "''"
    return repr(value)


def _image(src, alt):
    return f'<img src="{_text(src)}" alt="{_text(alt)}">'


def _header(cfg, report):
    epoch = report.get('checkpoint_epoch')
    checkpoint = report.get('checkpoint') or report.get('exported_model') or ''
    unreadable = report.get('num_unreadable', 0)
    rows = [('model', f'{cfg.MODEL_NAME} / {cfg.BACKBONE} ({cfg.MODALITY})'),
            ('dataset', f'{cfg.DATASET.NAME}: {report.get("metafile", cfg.DATASET.VAL_META_PATH)}'),
            ('videos', f'{report["num_videos"]}'
                       + (f' ({unreadable} unreadable, left out)' if unreadable else '')),
            ('top1', f'{report["top1"]:.2f} %'), ('top5', f'{report["top5"]:.2f} %'),
            ('mean class accuracy', f'{report["mean_class_accuracy"]:.2f} %'),
            ('views', report.get('views', '')),
            ('checkpoint', checkpoint + (f' (epoch {epoch})' if epoch is not None else '')),
            ('date', datetime.datetime.now().strftime('%Y-%m-%d %H:%M'))]
    body = ''.join(f'<tr><td>{_text(name)}</td><td>{_text(value)}</td></tr>' for name, value in rows)
    return (f'<h1>{_text(cfg.MODEL_NAME)}/{_text(cfg.EXP_TAG)}</h1>\n'
            f'<table class="numbers">{body}</table>')


def _settings(cfg):
    rows = settings_rows(cfg)
    changed = [row for row in rows if row[3]]
    same = [row for row in rows if not row[3]]
    lines = []
    for key, value, default, _ in changed:
        default_text = '(no default)' if default is NO_DEFAULT else _shown(default)
        lines.append(f'<tr class="changed"><td>{_text(key)}</td><td class="value">{_text(_shown(value))}'
                     f'</td><td class="value">{_text(default_text)}</td></tr>')
    rest = ''.join(f'<tr><td>{_text(key)}</td><td class="value">{_text(_shown(value))}</td></tr>'
                   for key, value, _, _ in same)
    return (f'<h2 id="settings">Settings</h2>\n<p>The resolved config of this evaluation. These '
            f'{len(changed)} keys differ from the defaults in config.py: what this run set, and what '
            'was resolved from it (paths, views).</p>\n'
            '<table class="settings"><tr><th>key</th><th>value</th><th>default</th></tr>'
            + ''.join(lines) + '</table>\n'
            f'<details><summary>The other {len(same)} keys, at their defaults</summary>\n'
            '<table class="settings"><tr><th>key</th><th>value</th></tr>' + rest + '</table></details>')


def _curves(files_dir, curves_png):
    head = '<h2 id="curves">Training curves</h2>\n'
    if not curves_png or not osp.isfile(curves_png):
        return head + ('<p class="note">No training curves: this run has no curves.png (a checkpoint '
                       'evaluated without its training history).</p>')
    shutil.copyfile(curves_png, osp.join(files_dir, 'curves.png'))
    return head + ('<p>Training loss, validation top1 and the learning rate, per epoch.</p>\n'
                   + _image(f'{FILES_DIR}/curves.png', 'training loss, validation top1 and learning rate'))


def _confusion(eval_dir):
    head = '<h2 id="confusion">Confusion matrix</h2>\n'
    if not osp.isfile(osp.join(eval_dir, 'confusion.png')):
        return head + '<p class="note">No confusion.png in this folder.</p>'
    return head + _image('confusion.png', 'confusion matrix, true class on the rows')


def _per_class(files_dir, confusion, class_names):
    accuracies = per_class_accuracy(np.asarray(confusion))
    save_per_class_accuracy_png(accuracies, class_names, osp.join(files_dir, 'per_class_accuracy.png'),
                                title='Per-class accuracy, worst first')
    empty = int(np.isnan(accuracies).sum())
    note = f'<p class="note">{empty} classes have no videos and are not shown.</p>\n' if empty else ''
    return ('<h2 id="per-class">Per-class accuracy</h2>\n' + note
            + _image(f'{FILES_DIR}/per_class_accuracy.png', 'per-class accuracy, sorted, worst first'))


def _pairs(confusion, class_names):
    pairs = confused_pairs(confusion)
    head = '<h2 id="confused-pairs">Most confused classes</h2>\n'
    if not pairs:
        return head + '<p class="note">No video was given a wrong class.</p>'
    rows = ''.join(f'<tr><td>{_text(class_names[t])}</td><td>{_text(class_names[p])}</td>'
                   f'<td>{count}</td><td>{share:.1f} %</td></tr>' for t, p, count, share in pairs)
    return (head + '<table class="pairs"><tr><th>true class</th><th>predicted as</th><th>videos</th>'
            '<th>share of the true class</th></tr>' + rows + '</table>')


def _worst(files_dir, scores, labels, paths, class_names, view_of, count):
    rows = worst_rows(scores, labels, count)
    items = []
    for rank, row in enumerate(rows, 1):
        true, predicted = int(labels[row]), int(np.argmax(scores[row]))
        view = view_of(int(row))
        if view is None:
            picture, shown = '<p class="note">(this video could not be read again)</p>', 0
        else:
            name = f'worst_{rank:02d}.png'
            shown = save_frame_strip_png(view, osp.join(files_dir, name))
            picture = _image(f'{FILES_DIR}/{name}', f'frames of {paths[row]}')
        frames = f', {shown} of {view.shape[1]} frames' if view is not None else ''
        verdict = 'right' if true == predicted else 'wrong'
        items.append(
            f'<figure class="clip">{picture}<figcaption>{rank}. <span class="path">{_text(paths[row])}</span>'
            f'{_text(frames)}<br>true: <span class="true">{_text(class_names[true])}</span> '
            f'({scores[row][true]:.3f}), predicted: <span class="predicted {verdict}">'
            f'{_text(class_names[predicted])}</span> ({scores[row][predicted]:.3f})</figcaption></figure>')
    return (f'<h2 id="worst-clips">The {len(rows)} worst-classified videos</h2>\n'
            '<p>Lowest score of the true class first; each strip shows the frames the model saw '
            '(the first view of the clip, as the test loader gives it).</p>\n'
            '<div class="clips">\n' + '\n'.join(items) + '\n</div>')
