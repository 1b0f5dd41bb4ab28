"""DataTool.check's findings over the whole dataset: duplicates across samples and splits,
the clean metafiles, report.json, report.png and the one-screen advice."""
import os.path as osp
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from DataTool.common.metafile import write_metafile  # noqa: E402
from DataTool.common.sample_check import (CORRECTED, NOTE, UNUSABLE, WARNING,  # noqa: E402
                                          problem)
from datasets.records import NO_LABEL  # noqa: E402
from datasets.video_probe import LONG_KEYFRAME_INTERVAL  # noqa: E402

SEVERITIES = (UNUSABLE, CORRECTED, WARNING, NOTE)


@dataclass
class Entry:
    """One metafile line and what was found about it."""
    metafile: str
    line: int
    path: str
    listed: int
    label: int
    key: str = ''
    problems: list = field(default_factory=list)

    @property
    def where(self):
        return f'{self.metafile}:{self.line}'

    @property
    def usable(self):
        return not any(p['severity'] == UNUSABLE for p in self.problems)


def mark_duplicates(entries, results):
    """Add a 'duplicate' warning to every usable sample whose content (hash) an earlier one
    has: same metafile, or an earlier metafile (a validation video that is also in training).
    Returns the number marked per kind ('within' a metafile, 'across' metafiles)."""
    first = {}
    counts = Counter()
    for entry in entries:
        content = results.get(entry.key, {}).get('hash')
        if not content or not entry.usable:
            continue
        original = first.setdefault(content, entry)
        if original is entry:
            continue
        if original.metafile == entry.metafile:
            counts['within'] += 1
            reason = (f'same content as {original.path} (line {original.line}): the same video '
                      'twice in one split')
            kind = 'duplicate'
        else:
            counts['across'] += 1
            reason = (f'same content as {original.path} ({osp.basename(original.metafile)}:'
                      f'{original.line}): one video in two splits, so the score on '
                      f'{osp.basename(entry.metafile)} counts a video trained on')
            kind = 'duplicate_across_splits'
        entry.problems.append(problem(WARNING, kind, reason))
    return counts


def real_frames(entry, results):
    return results.get(entry.key, {}).get('frames') or entry.listed


def write_clean_metafiles(metafiles, entries, results, out, drop_duplicates=False):
    """out/clean_<metafile name> for every metafile: its usable lines, frame counts as found
    (and without duplicates with `drop_duplicates`). Returns {metafile: (clean path, lines)}."""
    by_metafile = defaultdict(list)
    for entry in entries:
        by_metafile[entry.metafile].append(entry)
    written = {}
    for metafile in metafiles:
        rows = by_metafile[metafile]
        keep = [e for e in rows if e.usable and not (drop_duplicates and any(
            p['problem'].startswith('duplicate') for p in e.problems))]
        clean = osp.join(out, 'clean_' + osp.basename(metafile))
        write_metafile(clean, ((e.path, real_frames(e, results),
                                None if e.label == NO_LABEL else e.label) for e in keep))
        written[metafile] = (clean, len(keep))
    return written


def problem_list(entries, line_problems):
    """Every problem of report.json: sample, metafile, line, severity, problem, reason."""
    found = [{'sample': e.path, 'metafile': e.metafile, 'line': e.line, **p}
             for e in entries for p in e.problems]
    return line_problems + sorted(found, key=lambda p: (SEVERITIES.index(p['severity']),
                                                       p['metafile'], p['line']))


def _spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {'min': min(values), 'median': statistics.median(values), 'max': max(values)}


def summarise(entries, results, line_problems, clean, class_names, root):
    """The report's summary, with `advice`: what to do, one line each, most urgent first."""
    usable = [e for e in entries if e.usable]
    facts = [results.get(e.key, {}) for e in usable]
    videos = [f for f in facts if f.get('kind') == 'video']
    counts = Counter(p['problem'] for e in entries for p in e.problems)
    unusable = Counter(p['problem'] for e in entries for p in e.problems if p['severity'] == UNUSABLE)
    classes = {osp.basename(m): dict(sorted(Counter(e.label for e in usable if e.metafile == m
                                                    and e.label != NO_LABEL).items()))
               for m in dict.fromkeys(e.metafile for e in entries)}
    summary = {
        'samples': len(entries), 'usable': len(usable), 'videos': len(videos),
        'frame_folders': sum(f.get('kind') == 'frames' for f in facts),
        'bad_metafile_lines': len(line_problems),
        'problems': dict(counts.most_common()),
        'unusable': dict(unusable.most_common()),
        'clean_metafiles': {m: {'clean': path, 'lines': n} for m, (path, n) in clean.items()},
        'samples_per_class': classes,
        'class_names': class_names,
        'duration_s': _spread([f.get('duration') for f in videos]),
        'keyframe_interval': _spread([f.get('keyframe_interval') for f in videos]),
        'short_side': _spread([min(f['width'], f['height']) for f in facts if 'width' in f]),
    }
    summary['advice'] = advice(entries, results, summary, line_problems, clean, root)
    return summary


def _count(number, noun):
    return f'{number} {noun}{"" if number == 1 else "s"}'


def _example(entries, kind):
    entry = next(e for e in entries for p in e.problems if p['problem'] == kind)
    reason = next(p['reason'] for p in entry.problems if p['problem'] == kind)
    return f'e.g. {osp.basename(entry.metafile)}:{entry.line} {entry.path}: {reason}'


def advice(entries, results, summary, line_problems, clean, root):
    """What to do, one line each (an example of each kind of problem), most urgent first."""
    lines = []
    counts = Counter(summary['problems'])
    cleans = ' '.join(path for path, _ in clean.values())
    bad = sum(summary['unusable'].values()) + len(line_problems)
    if bad:
        lines.append(f'{_count(bad, "sample")} cannot be used: the clean metafiles leave them out')
        for kind, count in summary['unusable'].items():
            lines.append(f'  {count} {kind.replace("_", " ")}: {_example(entries, kind)}')
        if line_problems:
            lines.append(f'  {_count(len(line_problems), "bad metafile line")}: e.g. '
                         f'{line_problems[0]["reason"]}')
    if counts['frame_count']:
        lines.append(f"{_count(counts['frame_count'], 'wrong frame count')}: the clean metafiles "
                     f"have the real ones; {_example(entries, 'frame_count')}")
    if counts['duplicate_across_splits']:
        lines.append(f"{_count(counts['duplicate_across_splits'], 'sample')} in two splits (a "
                     f"validation video also in training inflates its score): remove them, or "
                     f"rerun with --drop-duplicates; {_example(entries, 'duplicate_across_splits')}")
    if counts['duplicate']:
        lines.append(f"{_count(counts['duplicate'], 'sample')} repeating another of its split; "
                     f"{_example(entries, 'duplicate')}")
    slow = [results[e.key]['keyframe_interval'] for e in entries
            if any(p['problem'] == 'long_keyframe_interval' for p in e.problems)]
    if slow:
        lines.append(f'{_count(len(slow), "video")} with keyframes every '
                     f'{int(statistics.median(slow))} frames (up to {max(slow)}): every sampled '
                     f'frame costs up to that many '
                     f'decoded frames. Transcode them:\n    python -m DataTool.transcode --meta '
                     f'{cleans} --root {root} --out {root.rstrip("/")}_transcoded')
    if counts['rotated']:
        lines.append(f"{_count(counts['rotated'], 'video')} shown rotated (phone videos): DLAC "
                     "turns them as a player does, nothing to do")
    if counts['variable_frame_rate']:
        lines.append(f"{_count(counts['variable_frame_rate'], 'video')} with a variable frame rate; "
                     f"{_example(entries, 'variable_frame_rate')}")
    per_class = next(iter(summary['samples_per_class'].values()), {})
    if per_class:
        names = summary['class_names'] or []
        empty = [name for label, name in enumerate(names) if label not in per_class]
        low, high = min(per_class.values()), max(per_class.values())
        lines.append(f'{len(per_class)} classes in {next(iter(summary["samples_per_class"]))}, '
                     f'{low} to {high} samples each'
                     + (f' ({high / low:.1f}x imbalance)' if high > 2 * low else '')
                     + (f'; no sample of: {", ".join(empty[:10])}' if empty else ''))
    if bad or counts['frame_count']:
        lines.append(f'train on the clean metafiles: {cleans}')
    return lines


def save_report_png(entries, results, summary, path):
    """Class balance, durations, sizes and keyframe intervals, one panel each."""
    facts = [results.get(e.key, {}) for e in entries if e.usable]
    videos = [f for f in facts if f.get('kind') == 'video']
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    balance = axes[0][0]
    splits = summary['samples_per_class']
    names = summary['class_names']
    labels = sorted({c for counts in splits.values() for c in counts})
    width = 0.8 / max(1, len(splits))
    for offset, (split, counts) in enumerate(splits.items()):
        balance.bar([c + offset * width for c in labels], [counts.get(c, 0) for c in labels],
                    width=width, label=split)
    if labels:
        balance.set_xticks([c + 0.4 - width / 2 for c in labels])
        balance.set_xticklabels([names[c] if names and c < len(names) else str(c)
                                 for c in labels], rotation=90, fontsize=6 if len(labels) > 30 else 8)
        balance.legend()
    balance.set_title('samples per class')
    _histogram(axes[0][1], [f['duration'] for f in videos if f.get('duration')],
               'duration (s)', 'videos' if videos else 'no videos')
    _histogram(axes[1][0], [min(f['width'], f['height']) for f in facts if 'width' in f],
               'short side (pixels, as shown)', 'samples')
    _histogram(axes[1][1], [f['keyframe_interval'] for f in videos],
               'longest keyframe interval (frames)', 'videos' if videos else 'no videos')
    if videos:
        axes[1][1].axvline(LONG_KEYFRAME_INTERVAL, color='tab:red', linestyle='--',
                           label=f'slow to sample beyond {LONG_KEYFRAME_INTERVAL}: transcode')
        axes[1][1].legend()
    figure.suptitle(f"{summary['usable']} of {summary['samples']} samples usable")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _histogram(axis, values, xlabel, ylabel):
    if values:
        axis.hist(values, bins=min(30, max(5, len(set(values)))))
    else:
        axis.text(0.5, 0.5, 'nothing to show', ha='center', va='center', transform=axis.transAxes)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
