"""Metafile lines -> records: a RecordTable (numpy arrays and one packed path buffer) that
hands out a VideoRecord per look-up. Format: `<path> <num_frames> <label>`, split from the right,
separated by whitespace or (DLAC's .csv metafiles) by commas: the separator is found per file
from its first sample line, and paths may hold spaces and commas either way."""
import os.path as osp
from dataclasses import dataclass, field

import numpy as np

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


class RecordTable:
    """Many records in a few objects: one UTF-8 buffer of every path, their offsets, and
    arrays of frame counts, labels and metafile line numbers.

    Why: a million VideoRecord objects take ~600 MiB, and every forked loader worker that
    touches them (reference counts, the garbage collector) turns its copy-on-write pages
    private, multiplying that memory by the workers. Here a look-up reads arrays and writes
    nothing shared; the VideoRecord it returns is built on the fly and dies with the caller.
    """

    def __init__(self, path_buffer, offsets, num_frames, labels, line_numbers=None,
                 sources=('',), source_ids=None):
        count = len(num_frames)
        self.path_buffer = path_buffer                     # bytes, every path back to back
        self.offsets = np.asarray(offsets, dtype=np.int64)           # count + 1 positions
        self.num_frames = np.asarray(num_frames, dtype=np.int32)
        self.labels = np.asarray(labels, dtype=np.int32)
        self.line_numbers = (np.zeros(count, dtype=np.int32) if line_numbers is None
                             else np.asarray(line_numbers, dtype=np.int32))
        self.sources = tuple(sources)                      # metafile names, for `where`
        self.source_ids = (np.zeros(count, dtype=np.uint16) if source_ids is None
                           else np.asarray(source_ids, dtype=np.uint16))
        if len(self.offsets) != count + 1 or len(self.labels) != count:
            raise ValueError(f'RecordTable: {count} frame counts, {len(self.labels)} labels and '
                             f'{len(self.offsets)} offsets (expected {count + 1})')

    @classmethod
    def build(cls, paths, num_frames, labels, line_numbers=None, source=''):
        """From parallel lists; the paths are encoded into one buffer at once."""
        encoded = [item.encode('utf-8') for item in paths]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(item) for item in encoded], out=offsets[1:])
        return cls(b''.join(encoded), offsets, num_frames, labels, line_numbers, (source,))

    @classmethod
    def from_records(cls, records):
        """From VideoRecords (a list, or another table: returned as is)."""
        if isinstance(records, cls):
            return records
        records = list(records)
        wheres = [record.where.rpartition(':') for record in records]
        sources = sorted({source for source, _, _ in wheres})
        source_index = {source: i for i, source in enumerate(sources)}
        table = cls.build([record.path for record in records],
                          [record.num_frames for record in records],
                          [record.label for record in records],
                          [int(line) if line.isdigit() else 0 for _, _, line in wheres])
        table.sources = tuple(sources) or ('',)
        table.source_ids = np.array([source_index[source] for source, _, _ in wheres],
                                    dtype=np.uint16)
        return table

    @classmethod
    def empty(cls):
        return cls(b'', [0], [], [])

    def __len__(self):
        return len(self.num_frames)

    def path(self, index):
        return self.path_buffer[self.offsets[index]:self.offsets[index + 1]].decode('utf-8')

    def where(self, index):
        line = int(self.line_numbers[index])
        return f'{self.sources[self.source_ids[index]]}:{line}' if line else ''

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f'record {index} of {len(self)}')
        index %= len(self)
        return VideoRecord(self.path(index), int(self.num_frames[index]),
                           int(self.labels[index]), self.where(index))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def nbytes(self):
        """Memory held by the records (buffers and arrays)."""
        return len(self.path_buffer) + sum(array.nbytes for array in (
            self.offsets, self.num_frames, self.labels, self.line_numbers, self.source_ids))


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
    """(records, problems): every line checked, none skipped silently. `records` is a
    RecordTable; problems are bad lines, labels >= num_classes and entries listed twice, each
    as 'file:line: what', in line order."""
    if not osp.isfile(path):
        return RecordTable.empty(), [f'metafile not found: {path}']
    paths, frames, labels, line_numbers, problems = [], [], [], [], []
    separator = False          # not known until the first sample line
    with open(path, encoding='utf-8') as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text[0] == '#':
                continue
            if separator is False:
                separator = find_separator(text)
            parts = text.rsplit(separator, 2)
            try:                   # the common case, fast; anything odd is parse_line's to explain
                num_frames, label = int(parts[1]), int(parts[2])
                item = parts[0].strip()
            except (ValueError, IndexError):
                try:
                    record = parse_line(line, path, line_no, separator)
                except MetafileError as err:
                    problems.append((line_no, str(err)))
                    continue
                item, num_frames, label = record.path, record.num_frames, record.label
            paths.append(item)
            frames.append(num_frames)
            labels.append(label)
            line_numbers.append(line_no)
    frames, labels = np.array(frames, dtype=np.int64), np.array(labels, dtype=np.int64)
    line_numbers = np.array(line_numbers, dtype=np.int64)
    keep = _range_problems(path, frames, labels, line_numbers, num_classes, problems)
    paths = [item for item, kept in zip(paths, keep) if kept] if not keep.all() else paths
    frames, labels, line_numbers = frames[keep], labels[keep], line_numbers[keep]
    unique = _first_listings(path, paths, line_numbers, problems)
    if unique is not None:
        paths = [item for item, kept in zip(paths, unique) if kept]
        frames, labels, line_numbers = frames[unique], labels[unique], line_numbers[unique]
    records = RecordTable.build(paths, frames, labels, line_numbers, path)
    problems = [message for _, message in sorted(problems, key=lambda item: item[0])]
    if not len(records) and not problems:
        problems.append(f'{path}: no samples')
    return records, problems


def _range_problems(path, frames, labels, line_numbers, num_classes, problems):
    """Frame counts <= 0 and labels < 0 or >= num_classes, found with numpy; returns the mask
    of lines without them."""
    checks = [(frames <= 0, lambda i: f'num_frames must be positive, got {frames[i]}'),
              (labels < 0, lambda i: f'label must be >= 0, got {labels[i]}')]
    if num_classes is not None:
        checks.append((labels >= num_classes, lambda i: f'label {labels[i]} is out of range '
                                                        f'for DATASET.CLASS_NUM={num_classes}'))
    bad = np.zeros(len(frames), dtype=bool)
    for failing, message in checks:
        for i in np.flatnonzero(failing & ~bad):
            problems.append((int(line_numbers[i]), f'{path}:{line_numbers[i]}: {message(i)}'))
        bad |= failing
    return ~bad


def _first_listings(path, paths, line_numbers, problems):
    """None when no path is listed twice (one set, the common case); else the mask of first
    listings, with a problem for each repeat."""
    if len(set(paths)) == len(paths):
        return None
    first_line, keep = {}, np.ones(len(paths), dtype=bool)
    for i, item in enumerate(paths):
        if item in first_line:
            keep[i] = False
            problems.append((int(line_numbers[i]), f'{path}:{line_numbers[i]}: {item} is listed '
                                                   f'again (first at line {first_line[item]})'))
        else:
            first_line[item] = int(line_numbers[i])
    return keep


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
