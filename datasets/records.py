"""Metafile lines -> VideoRecord. Format: `<path> <num_frames> <label>`, split from the right."""
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


def parse_line(line, source='<string>', line_no=0):
    parts = line.rstrip('\n').rsplit(maxsplit=2)
    where = f'{source}:{line_no}'
    if len(parts) != 3:
        raise MetafileError(f"{where}: expected '<path> <num_frames> <label>', got {line.strip()!r}")
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


def parse_metafile(path, num_classes=None):
    """All records of a metafile; blank lines and lines starting with '#' are skipped."""
    if not osp.isfile(path):
        raise MetafileError(f'metafile not found: {path}')
    records = []
    with open(path, encoding='utf-8') as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            record = parse_line(line, path, line_no)
            if num_classes is not None and record.label >= num_classes:
                raise MetafileError(f'{path}:{line_no}: label {record.label} is out of range for '
                                    f'DATASET.CLASS_NUM={num_classes}')
            records.append(record)
    if not records:
        raise MetafileError(f'{path}: no samples')
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
