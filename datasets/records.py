"""Metafile lines -> records: a RecordTable (numpy arrays and one packed path buffer) that
hands out a VideoRecord per look-up. Format: `<path> <num_frames> <label>`, split from the right,
separated by whitespace or (DLAC's .csv metafiles) by commas: the separator is found per file
from its first sample line, and paths may hold spaces and commas either way.

What a metafile may hold beyond the text rules of metafile_text (UTF-8, no control
characters, plain digits; a line that breaks one is a problem 'file:line: what', and the other
lines are still checked): frame counts and labels that fit int32, the arrays that hold them,
instead of wrapping; a path of 1 to MAX_PATH_BYTES bytes.

Unlabelled metafiles (`labelled=False`: self-supervised pre-training, TRAIN.TASK 'pretrain')
take `<path> <num_frames>` lines; whether a file has the label column is decided once, from its
first sample line (the last two fields plain integers: it has), and a file with labels has them
read but not checked against a class count. An unlabelled sample's label is NO_LABEL."""
import io
import os.path as osp
from dataclasses import dataclass, field

import numpy as np

from .metafile_text import (character_problem, excerpt, needs_line_checks, plain_integer,
                            python_reads_as_integer, read_text_file, text_lines)

# Names that say 'video file' without opening it (a metafile's paths are read millions of times);
# any other file is still decoded as a video (datasets.decoding), and tools that meet unknown
# files decide by content (datasets.video_probe).
VIDEO_EXTENSIONS = ('.mp4', '.m4v', '.mov', '.avi', '.webm', '.mkv', '.ts', '.mts', '.m2ts',
                    '.mpg', '.mpeg', '.vob', '.3gp', '.3g2', '.wmv', '.asf', '.flv', '.f4v',
                    '.ogv', '.mxf', '.dv', '.divx', '.y4m', '.gif')
INT32_MAX = int(np.iinfo(np.int32).max)
NO_LABEL = -1                  # the label of a sample of an unlabelled metafile
MAX_PATH_BYTES = 4096          # Linux's PATH_MAX: a longer path cannot be opened
PATH_ERRORS = 'surrogateescape'      # bytes of file names that are not UTF-8 survive the table


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


def _fitting_array(values, dtype, what):
    """`values` as a `dtype` array; a value that does not fit is a ValueError naming it, where
    numpy would wrap it silently (2**31 + 1 becomes -2**31 + 1 in int32)."""
    array = np.asarray(values)
    limits = np.iinfo(dtype)
    if array.size:
        low, high = array.min(), array.max()
        if low < limits.min or high > limits.max:
            raise ValueError(f'RecordTable: {what} {low if low < limits.min else high} does not '
                             f'fit {np.dtype(dtype).name} ({limits.min}..{limits.max})')
    return array.astype(dtype, copy=False)


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
        self.num_frames = _fitting_array(num_frames, np.int32, 'num_frames')
        self.labels = _fitting_array(labels, np.int32, 'label')
        self.line_numbers = (np.zeros(count, dtype=np.int32) if line_numbers is None
                             else _fitting_array(line_numbers, np.int32, 'line number'))
        self.sources = tuple(sources)                      # metafile names, for `where`
        self.source_ids = (np.zeros(count, dtype=np.uint16) if source_ids is None
                           else _fitting_array(source_ids, np.uint16, 'source id'))
        if len(self.offsets) != count + 1 or len(self.labels) != count:
            raise ValueError(f'RecordTable: {count} frame counts, {len(self.labels)} labels and '
                             f'{len(self.offsets)} offsets (expected {count + 1})')

    @classmethod
    def build(cls, paths, num_frames, labels, line_numbers=None, source=''):
        """From parallel lists (`paths`: a list of str), encoded into one buffer at once. A frame
        count or label that does not fit int32 is a ValueError. Paths are file names as the
        disk has them: one that is not UTF-8 (surrogate escapes, as os.listdir gives it) keeps
        its bytes."""
        joined = ''.join(paths)
        path_buffer = joined.encode('utf-8', PATH_ERRORS)
        # All ASCII (as many bytes as characters): a path's length in characters is its length
        # in bytes, and no path needs encoding on its own (3x faster at a million paths).
        encoded = paths if len(path_buffer) == len(joined) else (
            path.encode('utf-8', PATH_ERRORS) for path in paths)
        offsets = np.zeros(len(paths) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), np.int64, len(paths)), out=offsets[1:])
        return cls(path_buffer, offsets, num_frames, labels, line_numbers, (source,))

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
        return self.path_buffer[self.offsets[index]:self.offsets[index + 1]].decode('utf-8', PATH_ERRORS)

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


def _range_rules(num_classes=None, labelled=True):
    """(column, failing(values), message(value as shown)) in the order they are checked, for
    one value (parse_line) or numpy arrays (check_metafile): both say the same. Unlabelled
    metafiles: frame counts only."""
    rules = [('num_frames', lambda v: v <= 0, lambda s: f'num_frames must be positive, got {s}'),
             ('num_frames', lambda v: v > INT32_MAX,
              lambda s: f'num_frames {s} is too large (at most {INT32_MAX})')]
    if not labelled:
        return rules
    rules.append(('label', lambda v: v < 0, lambda s: f'label must be >= 0, got {s}'))
    if num_classes is not None:
        rules.append(('label', lambda v: v >= num_classes,
                      lambda s: f'label {s} is out of range for DATASET.CLASS_NUM={num_classes}'))
    rules.append(('label', lambda v: v > INT32_MAX,
                  lambda s: f'label {s} is too large (at most {INT32_MAX})'))
    return rules


def _path_problem(num_bytes):
    """What is wrong with a path of `num_bytes` UTF-8 bytes, else None."""
    if num_bytes == 0:
        return 'the path is empty'
    if num_bytes > MAX_PATH_BYTES:
        return f'the path is {num_bytes} bytes long; a file system takes at most {MAX_PATH_BYTES}'
    return None


# ---------------------------------------------------------------- lines
def find_separator(line):
    """',' when the line is `path,frames,label` (DLAC's CSV metafiles), else None (whitespace)."""
    parts = line.strip().rsplit(',', 2)
    is_sample = len(parts) == 3 and all(plain_integer(p) is not None for p in parts[1:])
    return ',' if is_sample else None


def _file_separator(data):
    """The separator of the first line that is a sample in either form; None (whitespace) when
    no line is. A header line (`path,frames,label`) before it must not make a CSV file read as
    whitespace-separated, every line then a problem."""
    for raw in io.BytesIO(data):
        text = raw.decode('utf-8', 'replace').strip()
        if not text or text[0] == '#':
            continue
        if find_separator(text):
            return ','
        parts = text.rsplit(None, 2)
        if len(parts) == 3 and all(plain_integer(p) is not None for p in parts[1:]):
            return None
    return None


def _unlabelled_layout(data, separator):
    """(separator, has the label column) of a metafile whose labels may be absent, from its
    first sample line: it ends in two integers (`path frames label`) or in one (`path frames`,
    whitespace- or comma-separated)."""
    for raw in io.BytesIO(data):
        text = raw.decode('utf-8', 'replace').strip()
        if not text or text[0] == '#':
            continue
        parts = text.rsplit(separator, 2)
        if len(parts) == 3 and all(plain_integer(p.strip()) is not None for p in parts[1:]):
            return separator, True
        for candidate in (None, ','):
            parts = text.rsplit(candidate, 1)
            if len(parts) == 2 and plain_integer(parts[1].strip()) is not None:
                return candidate, False
        break
    return separator, True


def parse_line(line, source='<string>', line_no=0, separator=None, labelled=True):
    """One metafile line -> VideoRecord. Whatever is wrong is a MetafileError that starts
    'source:line_no:' and quotes at most QUOTE_LIMIT characters of the line. `labelled`
    False: a `<path> <num_frames>` line, its label NO_LABEL."""
    where = f'{source}:{line_no}'
    problem = character_problem(line)
    if problem:
        raise MetafileError(f'{where}: {problem}')
    columns = 3 if labelled else 2
    parts = [part.strip() for part in line.rstrip('\n').rsplit(separator, columns - 1)] if separator \
        else line.rstrip('\n').rsplit(maxsplit=columns - 1)
    if len(parts) != columns:
        fields = ['<path>', '<num_frames>', '<label>'][:columns]
        shape = (',' if separator else ' ').join(fields)
        unlabelled = labelled and len(parts) == 2 and plain_integer(parts[1].strip()) is not None
        hint = ' (no label: only pre-training, TRAIN.TASK pretrain, reads unlabelled metafiles)' if unlabelled else ''
        raise MetafileError(f"{where}: expected '{shape}', got {excerpt(line.strip())}{hint}")
    if not labelled:
        parts.append(str(NO_LABEL))
    path, frames_text, label_text = parts
    num_frames, label = plain_integer(frames_text), plain_integer(label_text)
    if num_frames is None or label is None:
        hint = (' (plain digits 0-9 only, as DataTools write them)'
                if python_reads_as_integer(frames_text) and python_reads_as_integer(label_text)
                else '')
        raise MetafileError(f'{where}: num_frames and label must be integers, got '
                            f'{excerpt(frames_text)} and {excerpt(label_text)}{hint}')
    values = {'num_frames': (num_frames, frames_text), 'label': (label, label_text)}
    for column, failing, message in _range_rules(labelled=labelled):
        value, text = values[column]
        if failing(value):
            raise MetafileError(f'{where}: {message(excerpt(text.strip(), quoted=False))}')
    path = path.strip()
    problem = _path_problem(len(path.encode('utf-8')))
    if problem:
        raise MetafileError(f'{where}: {problem}')
    return VideoRecord(path, num_frames, label, where)


MAX_REPORTED = 50


def problem_report(problems, what='the metafiles'):
    """One message for every problem found (the first MAX_REPORTED listed)."""
    shown = problems[:MAX_REPORTED]
    more = f'\n  ... and {len(problems) - len(shown)} more' if len(problems) > len(shown) else ''
    return (f'{len(problems)} problem{"s" * (len(problems) != 1)} in {what}; fix them and run '
            f'again:\n  ' + '\n  '.join(shown) + more)


def check_metafile(path, num_classes=None, labelled=True):
    """(records, problems): every line checked, none skipped silently. `records` is a
    RecordTable; problems are bad lines (the rules in this module's docstring), labels >=
    num_classes and entries listed twice, each as 'file:line: what', in line order. The file
    is read at once: its bytes are checked for control characters and UTF-8 in a few passes in
    C, so that the lines of a clean file need only the fast path below. `labelled` False:
    the label column may be absent (decided by the first sample line), and labels are not
    checked."""
    if not osp.isfile(path):
        return RecordTable.empty(), [f'metafile not found: {path}']
    data, problem = read_text_file(path)
    if problem:
        return RecordTable.empty(), [problem]
    is_ascii = data.isascii()          # then the only digits int() can meet are 0-9
    check_lines = needs_line_checks(data, is_ascii)
    separator, with_labels = _file_separator(data), True
    if not labelled:
        separator, with_labels = _unlabelled_layout(data, separator)
        num_classes = None
    paths, frames, labels, line_numbers, problems = [], [], [], [], []
    for line_no, line in enumerate(text_lines(data), start=1):
        if check_lines and (problem := character_problem(line)):
            problems.append((line_no, f'{path}:{line_no}: {problem}'))
            continue
        text = line.strip()
        if not text or text[0] == '#':
            continue
        # unlabelled: `path frames`, with a stand-in label column for the fast path
        parts = text.rsplit(separator, 2) if with_labels else text.rsplit(separator, 1) + ['0']
        try:                   # the common case, fast; anything odd is parse_line's to explain
            frames_text, label_text = parts[1], parts[2]
            if not (frames_text.isdigit() and label_text.isdigit()
                    and (is_ascii or frames_text.isascii() and label_text.isascii())):
                raise ValueError('not plain digits')   # '-4', ' 5 ' (CSV), '+5', '١٢'
            num_frames, label = int(frames_text), int(label_text)   # ValueError: > 4300 digits
            item = parts[0].strip()
        except (ValueError, IndexError):
            try:
                record = parse_line(line, path, line_no, separator, with_labels)
            except MetafileError as err:
                problems.append((line_no, str(err)))
                continue
            item, num_frames, label = record.path, record.num_frames, record.label
        label = label if with_labels else NO_LABEL
        paths.append(item)
        frames.append(num_frames)
        labels.append(label)
        line_numbers.append(line_no)
    frames, labels = _integer_array(frames), _integer_array(labels)
    line_numbers = np.array(line_numbers, dtype=np.int64)
    keep = _range_problems(path, frames, labels, line_numbers, num_classes, problems, labelled)
    paths = [item for item, kept in zip(paths, keep) if kept] if not keep.all() else paths
    frames, labels, line_numbers = frames[keep], labels[keep], line_numbers[keep]
    unique = _first_listings(path, paths, line_numbers, problems)
    if unique is not None:
        paths = [item for item, kept in zip(paths, unique) if kept]
        frames, labels, line_numbers = frames[unique], labels[unique], line_numbers[unique]
    records = RecordTable.build(paths, frames, labels, line_numbers, path)
    keep = _path_problems(path, records, problems)
    if keep is not None:                # rare: no string is looked at unless a length is wrong
        records = RecordTable.build([item for item, kept in zip(paths, keep) if kept],
                                    frames[keep], labels[keep], line_numbers[keep], path)
    problems = [message for _, message in sorted(problems, key=lambda item: item[0])]
    if not len(records) and not problems:
        problems.append(f'{path}: no samples')
    return records, problems


def _integer_array(values):
    """int64, or Python ints (dtype object) when one is past int64: it is reported as too large
    with its exact value."""
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:
        return np.array(values, dtype=object)


def _range_problems(path, frames, labels, line_numbers, num_classes, problems, labelled=True):
    """Frame counts and labels out of range (_range_rules), found with numpy; returns the mask
    of lines without them."""
    columns = {'num_frames': frames, 'label': labels}
    bad = np.zeros(len(frames), dtype=bool)
    for column, failing, message in _range_rules(num_classes, labelled):
        values = columns[column]
        failed = np.asarray(failing(values), dtype=bool)
        for i in np.flatnonzero(failed & ~bad):
            shown = excerpt(str(values[i]), quoted=False)
            problems.append((int(line_numbers[i]), f'{path}:{line_numbers[i]}: {message(shown)}'))
        bad |= failed
    return ~bad


def _path_problems(path, records, problems):
    """Empty paths and paths past MAX_PATH_BYTES, from the offsets (no string is touched);
    None when there are none, else the mask of lines without them."""
    lengths = np.diff(records.offsets)
    bad = (lengths == 0) | (lengths > MAX_PATH_BYTES)
    if not bad.any():
        return None
    for i in np.flatnonzero(bad):
        line = int(records.line_numbers[i])
        problems.append((line, f'{path}:{line}: {_path_problem(int(lengths[i]))}'))
    return ~bad


def _first_listings(path, paths, line_numbers, problems):
    """None when no path is listed twice (one set, the common case); else the mask of first
    listings, with a problem for each repeat. Called before RecordTable.build, whose big
    temporary, once freed, would leave this set's memory resident (glibc raises its mmap
    threshold to the size of the largest block freed)."""
    if len(set(paths)) == len(paths):
        return None
    first_line, keep = {}, np.ones(len(paths), dtype=bool)
    for i, item in enumerate(paths):
        if item in first_line and item:          # '' is _path_problems' to report, every time
            keep[i] = False
            problems.append((int(line_numbers[i]), f'{path}:{line_numbers[i]}: '
                             f'{excerpt(item, quoted=False)} is listed again '
                             f'(first at line {first_line[item]})'))
        else:
            first_line[item] = int(line_numbers[i])
    return keep


def parse_metafile(path, num_classes=None, labelled=True):
    """All records of a metafile; blank lines and lines starting with '#' are skipped. Any
    problem raises one MetafileError listing them all. `labelled`: see check_metafile."""
    records, problems = check_metafile(path, num_classes, labelled)
    if problems:
        raise MetafileError(problem_report(problems, path))
    return records


def read_class_names(path):
    """classInd.txt: `<index> <class name>` per line -> names in index order. The indices run
    from 0 (DataTools) or 1 (UCF101's own file) without a gap or a repeat, either of which would
    give the classes after it the wrong names. The text rules are the metafiles'; every problem
    is in one MetafileError."""
    data, problem = read_text_file(path)
    problems = [problem] if problem else []
    names, first_line = {}, {}
    for line_no, line in enumerate(text_lines(data or b''), start=1):
        where = f'{path}:{line_no}'
        problem = character_problem(line)
        if problem:
            problems.append(f'{where}: {problem}')
            continue
        fields = line.split(maxsplit=1)
        if not fields:
            continue
        index = plain_integer(fields[0])
        if len(fields) < 2 or index is None or index < 0:
            problems.append(f"{where}: expected '<index> <class name>', got "
                            f"{excerpt(line.strip())}")
        elif index in first_line:
            problems.append(f'{where}: index {index} is listed again '
                            f'(first at line {first_line[index]})')
        else:
            names[index], first_line[index] = fields[1].strip(), line_no
    indices = sorted(names)
    if indices and not problems and (indices[0] > 1 or indices[-1] - indices[0] >= len(indices)):
        missing = 0 if indices[0] > 1 else next(i for i in range(indices[0], indices[-1])
                                                 if i not in names)
        problems.append(f'{path}: indices must run from 0 (or 1) without a gap: '
                        f'{missing} is missing')
    if problems:
        raise MetafileError(problem_report(problems, path))
    return [names[index] for index in indices]
