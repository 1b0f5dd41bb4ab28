"""Today's metafile parser (one frozen dataclass per line), kept as the baseline that
benchmarks/scale_bench.py measures against and that tests compare the compact records with.
Not used by the product.

Format: `<path> <num_frames> <label>`, split from the right,
separated by whitespace or (DLAC's .csv metafiles) by commas: the separator is found per file
from its first sample line, and paths may hold spaces and commas either way."""
import os.path as osp
from dataclasses import dataclass, field

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.webm', '.mkv')


class MetafileError(ValueError):
    """A metafile that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class VideoRecord:
    path: str          # relative to DATASET.VIDEO_SEQ_PATH: a frame folder or a video file
    num_frames: int
    label: int
    where: str = field(default='', compare=False)    # 'metafile:line', for error messages

    @property
    def is_video(self):
        return self.path.lower().endswith(VIDEO_EXTENSIONS)


def find_separator(line):
    """',' when the line is `path,frames,label` (DLAC's CSV metafiles), else None (whitespace)."""
    parts = line.strip().rsplit(',', 2)
    return ',' if len(parts) == 3 and all(p.strip().lstrip('-').isdigit() for p in parts[1:]) else None


def parse_line(line, source='<string>', line_no=0, separator=None):
    parts = [part.strip() for part in line.rstrip('\n').rsplit(separator, 2)] if separator \
        else line.rstrip('\n').rsplit(maxsplit=2)
    where = f'{source}:{line_no}'
    if len(parts) != 3:
        shape = ('<path>,<num_frames>,<label>' if separator else '<path> <num_frames> <label>')
        raise MetafileError(f"{where}: expected '{shape}', got {line.strip()!r}")
    path, frames_text, label_text = parts
    try:
        num_frames, label = int(frames_text), int(label_text)
    except ValueError:
        raise MetafileError(f"{where}: num_frames and label must be integers, "
                            f"got {frames_text!r} and {label_text!r}") from None
    if num_frames <= 0:
        raise MetafileError(f'{where}: num_frames must be positive, got {num_frames}')
    if label < 0:
        raise MetafileError(f'{where}: label must be >= 0, got {label}')
    return VideoRecord(path.strip(), num_frames, label, where)


MAX_REPORTED = 50


def problem_report(problems, what='the metafiles'):
    """One message for every problem found (the first MAX_REPORTED listed)."""
    shown = problems[:MAX_REPORTED]
    more = f'\n  ... and {len(problems) - len(shown)} more' if len(problems) > len(shown) else ''
    return (f'{len(problems)} problem{"s" * (len(problems) != 1)} in {what}; fix them and run '
            f'again:\n  ' + '\n  '.join(shown) + more)


def check_metafile(path, num_classes=None):
    """(records, problems): every line checked, none skipped silently. Problems are bad lines,
    labels >= num_classes and entries listed twice, each as 'file:line: what'."""
    if not osp.isfile(path):
        return [], [f'metafile not found: {path}']
    records, problems, first_line = [], [], {}
    separator = False          # not known until the first sample line
    with open(path, encoding='utf-8') as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            if separator is False:
                separator = find_separator(line)
            try:
                record = parse_line(line, path, line_no, separator)
            except MetafileError as err:
                problems.append(str(err))
                continue
            if num_classes is not None and record.label >= num_classes:
                problems.append(f'{path}:{line_no}: label {record.label} is out of range for '
                                f'DATASET.CLASS_NUM={num_classes}')
                continue
            if record.path in first_line:
                problems.append(f'{path}:{line_no}: {record.path} is listed again (first at '
                                f'line {first_line[record.path]})')
                continue
            first_line[record.path] = line_no
            records.append(record)
    if not records and not problems:
        problems.append(f'{path}: no samples')
    return records, problems


def parse_metafile(path, num_classes=None):
    """All records of a metafile; blank lines and lines starting with '#' are skipped. Any
    problem raises one MetafileError listing them all."""
    records, problems = check_metafile(path, num_classes)
    if problems:
        raise MetafileError(problem_report(problems, path))
    return records


def read_class_names(path):
    """classInd.txt: `<index> <class name>` per line -> list ordered by index."""
    names = {}
    with open(path, encoding='utf-8') as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            index_text, _, name = line.strip().partition(' ')
            if not index_text.isdigit() or not name:
                raise MetafileError(f"{path}:{line_no}: expected '<index> <class name>'")
            names[int(index_text)] = name.strip()
    return [names[index] for index in sorted(names)]
