"""Packed shards as an input: WebDataset tar files (written by `python -m DataTool.pack`),
streamed in order from local disks or any URL that webdataset's gopen opens (`pipe:`,
`http://`, ...), instead of millions of small files opened at random.

A shard holds, per sample with key K (its number in the packed set): `K.json` (path, frame
count, label, where it came from), `K.cls` (label), and either the frames `K.00000.jpg ...`
or the video `K.mp4`. `index.json` beside the shards lists them with their sample counts.

Order within an epoch (ShardDataset): the shards are put in an order drawn from (seed, epoch)
(validation: as listed) and their samples laid end to end; loader slot s of S (S = processes
x loader workers) reads the ceil(N/S) positions from s x ceil(N/S) on, wrapping around at N,
through a shuffle buffer (training). So every sample is read at most once per process (while
a process's share, ceil(N/S) x workers, is at most N), the slots together read every sample,
and exactly once when N is a multiple of S. Each worker batches its own samples (its last
batch may be short): every slot has the same count, so every process takes the same number of
steps. Validation splits the N
positions into S nearly equal parts, each read once. A sample that cannot be decoded, or that
a truncated shard lost, is replaced by a recent good one and flagged (the `bad` field), as
VideoDataset does; the counts never change, so processes stay in step.
"""
import collections
import contextlib
import json
import logging
import os
import posixpath

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from .decoding import DecodeError, decode_image_bytes, gather_frames
from .video_reader import load_video_bytes

logger = logging.getLogger('dlac.data')
INDEX_FORMAT = 'dlac-shards/1'
INDEX_NAME = 'index.json'
SHUFFLE_STREAM, REPLACEMENT_STREAM = 7907, 7919
RECENT_GOOD = 8          # good samples kept to stand in for a bad one


class ShardError(ValueError):
    """Shards or their index that cannot be used; the message names them."""


def open_url(url, mode='rb'):
    """A local path or any URL webdataset's gopen opens (pipe:, http(s):, ...)."""
    import webdataset
    try:
        return webdataset.gopen(url, mode)
    except Exception as err:  # noqa: BLE001 - gopen raises what its handler raises
        raise ShardError(f'cannot open {url}: {err}') from err


# ---------------------------------------------------------------- the index
def shard_list(spec, index_url=''):
    """(urls, their sample counts, the packed number of each one's first sample, the index
    dict) for
    DATASET.SHARDS: an index.json (path or URL), or a brace pattern of shard URLs
    (`train-{000000..000099}.tar`) whose counts come from `index_url` or from the
    index.json beside the first shard."""
    import braceexpand
    if not spec:
        raise ShardError('DATASET.INPUT_TYPE shards needs DATASET.SHARDS: the index.json '
                         'DataTool.pack wrote, or a pattern of shard URLs')
    if spec.endswith('.json'):
        index_url, urls = spec, None
    else:
        urls = list(braceexpand.braceexpand(spec))
        if not index_url:
            if urls[0].startswith('pipe:'):
                raise ShardError(f'DATASET.SHARDS {spec}: a pipe: pattern needs '
                                 f'DATASET.SHARD_INDEX (the index.json with the sample counts)')
            index_url = posixpath.join(posixpath.dirname(urls[0]), INDEX_NAME)
    index = read_index(index_url)
    listed = {entry['name']: entry['samples'] for entry in index['shards']}
    base = posixpath.dirname(index_url)
    if urls is None:
        urls = [posixpath.join(base, entry['name']) for entry in index['shards']]
    unknown = [url for url in urls if posixpath.basename(url.split()[-1]) not in listed]
    if unknown:
        raise ShardError(f'{index_url} does not list {len(unknown)} of the shards '
                         f'{spec} names, e.g. {unknown[0]}')
    names = [posixpath.basename(url.split()[-1]) for url in urls]
    counts = np.array([listed[name] for name in names], dtype=np.int64)
    first_of = {entry['name']: entry['first'] for entry in index['shards']}
    first = np.array([first_of[name] for name in names], dtype=np.int64)  # a subset keeps its numbers
    return urls, counts, first, index


def read_index(url):
    try:
        with open_url(url) as handle:
            index = json.loads(handle.read().decode('utf-8'))
    except (ShardError, OSError) as err:
        raise ShardError(f'cannot read the shard index {url}: {err}') from err
    except ValueError as err:
        raise ShardError(f'{url}: not a JSON shard index ({err})') from err
    if index.get('format') != INDEX_FORMAT:
        raise ShardError(f'{url}: not a DLAC shard index (format {index.get("format")!r}, '
                         f'expected {INDEX_FORMAT!r}); write one with python -m DataTool.pack')
    if not index.get('complete'):
        raise ShardError(f'{url}: packing has not finished ({len(index["shards"])} shards so '
                         f'far); run the same DataTool.pack command again to complete it')
    return index


# ---------------------------------------------------------------- reading a tar stream
def split_name(name):
    """WebDataset's convention: 'K.00012.jpg' -> ('K', '00012.jpg')."""
    directory, _, base = name.rpartition('/')
    key, _, extension = base.partition('.')
    return (directory + '/' + key if directory else key), extension


def read_samples(url, skip=0, take=None, keep=None):
    """Samples of one shard in order as {extension: bytes}, after leaving out the first
    `skip` (not read into memory) and up to `take` of them. keep(files so far, extension) ->
    bool may leave out members not needed (seeked over in a local file). A truncated or
    damaged tar ends the shard with a warning; the caller counts what is missing."""
    position, yielded, files = -1, 0, None      # position: number of the sample being read
    try:
        with _open_shard(url) as handle:
            for name, size in tar_members(handle, url):
                key, extension = split_name(name)
                if files is None or key != files['__key__']:
                    if files is not None and position >= skip:
                        yield files
                        yielded += 1
                        if take is not None and yielded >= take:
                            return
                    position, files = position + 1, {'__key__': key, '__position__': position + 1}
                if position < skip or (keep is not None and not keep(files, extension)):
                    _skip_bytes(handle, _padded(size), url)
                    continue
                files[extension] = _read_exactly(handle, size, url)
                _skip_bytes(handle, _padded(size) - size, url)
                if extension == 'json':
                    files['meta'] = _json_or_none(files['json'])
        if files is not None and position >= skip and (take is None or yielded < take):
            yield files
    except (ShardError, OSError) as err:
        logger.warning('shard %s is truncated or damaged after %d samples (%s); the rest of '
                       'it is counted as unreadable', url, max(position - skip, 0),
                       ' '.join(str(err).split()) or type(err).__name__)


# A tar reader of our own: tarfile's member parsing took two thirds of the time of reading a
# frames shard, and a sample's frames come 300 members at a time.
BLOCK = 512


def tar_members(handle, url):
    """(name, size) of each regular file in a tar stream, the handle left at its data (the
    caller reads or skips size rounded up to 512). Handles ustar, GNU long names and pax
    paths; raises ShardError on a damaged header or a truncated file."""
    long_name = None
    while True:
        header = handle.read(BLOCK)
        if header == bytes(BLOCK):
            return                          # the end-of-archive blocks
        if len(header) < BLOCK:
            where = 'inside a tar header' if header else 'before the end-of-archive blocks'
            raise ShardError(f'{url}: truncated (it ends {where})')
        stored = header[148:156].split(b'\0', 1)[0].strip()
        if not stored or int(stored, 8) != sum(header[:148]) + 256 + sum(header[156:]):
            raise ShardError(f'{url}: damaged tar header (checksum)')
        size = int(header[124:136].split(b'\0', 1)[0].strip() or b'0', 8)
        kind = header[156:157]
        name = header[:100].split(b'\0', 1)[0]
        if header[257:262] == b'ustar' and header[345:346] != b'\0':
            name = header[345:500].split(b'\0', 1)[0] + b'/' + name
        if kind in (b'L', b'x'):             # the next member's long name
            data = _read_exactly(handle, size, url)
            _skip_bytes(handle, _padded(size) - size, url)
            long_name = data.rstrip(b'\0') if kind == b'L' else _pax_path(data) or long_name
            continue
        if kind in (b'0', b'\0', b'7'):
            yield (long_name or name).decode('utf-8'), size
        else:
            _skip_bytes(handle, _padded(size), url)
        long_name = None


def _pax_path(data):
    for record in data.split(b'\n'):
        _, _, field = record.partition(b' ')
        if field.startswith(b'path='):
            return field[5:]
    return None


def _padded(size):
    return -(-size // BLOCK) * BLOCK


def _read_exactly(handle, size, url):
    data = handle.read(size)
    if len(data) < size:
        raise ShardError(f'{url}: truncated (a member ends early)')
    return data


def _skip_bytes(handle, count, url=''):
    """Past `count` bytes: a seek where the handle can, else read and dropped."""
    if count <= 0:
        return
    if getattr(handle, 'seekable', lambda: False)():
        handle.seek(count, os.SEEK_CUR)
        return
    while count > 0:
        chunk = handle.read(min(count, 1 << 20))
        if not chunk:
            raise ShardError(f'{url}: truncated (it ends inside a member)')
        count -= len(chunk)


@contextlib.contextmanager
def _open_shard(url):
    """A local file is opened for random access, so members not kept are seeked over;
    anything else (pipe:, http:, ...) is streamed through webdataset's gopen."""
    local = url[len('file:'):] if url.startswith('file:') else url
    if ':' not in local.split('/')[0] and os.path.isfile(local):
        with open(local, 'rb') as handle:
            yield handle
        return
    with open_url(url) as handle:
        yield handle


def _json_or_none(data):
    try:
        meta = json.loads(data.decode('utf-8'))
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and {'num_frames', 'label'} <= set(meta) else None


# ---------------------------------------------------------------- the dataset
class ShardDataset(IterableDataset):
    """Clips from packed shards, for one process of `num_replicas` (see the module's
    docstring for the order). `clips` is a VideoDataset without records: its sampling,
    transforms and seed make the clip from the decoded frames exactly as from a folder.
    Yields (clip, label, index, bad) like VideoDataset; `index` is the sample's number in the
    packed set."""

    def __init__(self, spec, clips, num_replicas=1, rank=0, shuffle_buffer=100, index_url=''):
        self.spec = spec
        self.urls, self.counts, self.first, index = shard_list(spec, index_url)
        self.total = int(self.counts.sum())
        self.mode_of_packing = index.get('mode', 'frames')
        self.clips = clips
        self.train = clips.mode == 'train'
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle_buffer = shuffle_buffer if self.train else 0
        self.batch_size, self.workers = 1, 1         # set by build_loader
        self.epoch, self.skipped = 0, 0
        if not self.total:
            raise ShardError(f'DATASET.SHARDS {spec}: no samples')

    # --- what build_loader and the training loop set
    def set_epoch(self, epoch):
        self.epoch, self.skipped = epoch, 0
        self.clips.set_epoch(epoch)

    def skip(self, count):
        """Leave out this process's first `count` samples of the epoch (a resumed epoch)."""
        self.skipped = count

    def __len__(self):
        """This process's samples this epoch (after skip)."""
        return sum(count for count in self._worker_counts())

    def num_batches(self):
        """This process's batches this epoch (after skip): each worker batches its own."""
        return sum(-(-count // self.batch_size) for count in self._worker_counts())

    def _worker_counts(self):
        slots = self.num_replicas * self.workers
        return [max(self._range(self.rank * self.workers + w, slots)[1] - self._skipped_here(w), 0)
                for w in range(self.workers)]

    def describe(self, index):
        holding = np.flatnonzero((self.first <= index) & (index < self.first + self.counts))
        if not len(holding):
            return f'sample {index} of {self.spec}'
        shard = int(holding[0])
        return f'sample {index - self.first[shard]} of {self.urls[shard]}'

    # --- the epoch's plan
    def _range(self, slot, slots):
        """(first position, count) of loader slot `slot` of `slots` this epoch."""
        if self.train:
            per_slot = -(-self.total // slots)
            return slot * per_slot % self.total, per_slot
        start = slot * self.total // slots
        return start, (slot + 1) * self.total // slots - start

    def _shard_order(self):
        if not self.train:
            return np.arange(len(self.urls))
        return np.random.default_rng((self.clips.seed, self.epoch)).permutation(len(self.urls))

    def _pieces(self, start, count):
        """[(shard, skip within it, take)] covering `count` positions from `start`, wrapping."""
        order = self._shard_order()
        ends = np.cumsum(self.counts[order])
        pieces, position = [], start
        while count > 0:
            position %= self.total
            k = int(np.searchsorted(ends, position, side='right'))
            offset = position - (ends[k] - self.counts[order[k]])
            take = int(min(count, self.counts[order[k]] - offset))
            pieces.append((int(order[k]), int(offset), take))
            position, count = position + take, count - take
        return pieces

    def _skipped_here(self, worker):
        """Of this process's skipped samples, those this worker had yielded: every worker has
        the same number of batches (training), and they go round-robin over the workers."""
        batches = self.skipped // self.batch_size
        return len(range(worker, batches, self.workers)) * self.batch_size

    # --- reading
    def _raw(self, pieces):
        """(index, sample dict or None when lost) in order, keeping only the frames sampled."""
        for shard, skip, take in pieces:
            first, got = int(self.first[shard]), 0
            keep = (lambda files, extension, first=first:
                    self._keep(files, extension, first + files['__position__']))
            for files in read_samples(self.urls[shard], skip, take, keep=keep):
                yield first + skip + got, files
                got += 1
            for lost in range(got, take):
                yield first + skip + lost, None

    def _keep(self, files, extension, index):
        """While reading: frames mode keeps only the frames the sampler will ask for."""
        if extension in ('json', 'cls') or self.mode_of_packing != 'frames':
            return True
        meta = files.get('meta')
        if meta is None:
            return True
        if 'wanted' not in files:         # the sampler's draw, from the sample's own stream
            rng = self.clips._rng(index)
            files['wanted'] = {f'{i:05d}' for i in self.clips.sample_indices(meta['num_frames'], rng)}
        return extension.partition('.')[0] in files['wanted']

    def _shuffled(self, raw, worker):
        if self.shuffle_buffer <= 1:
            yield from raw
            return
        rng = np.random.default_rng((self.clips.seed, self.epoch, self.rank, worker, SHUFFLE_STREAM))
        buffer = []
        for item in raw:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(item)
                continue
            j = int(rng.integers(len(buffer)))
            buffer[j], item = item, buffer[j]
            yield item
        for j in rng.permutation(len(buffer)):
            yield buffer[j]

    def make_clip(self, index, files):
        """The clip of sample `index` from its shard members, as VideoDataset makes it."""
        if files is None:
            raise DecodeError(f'{self.describe(index)}: lost (truncated shard)')
        if files.get('meta') is None:
            raise DecodeError(f'{self.describe(index)}: no readable {files["__key__"]}.json '
                              f'(path, num_frames, label) in the shard')
        meta, rng = files['meta'], self.clips._rng(index)
        indices = self.clips.sample_indices(meta['num_frames'], rng)
        name = f'{self.describe(index)} ({meta.get("path", "")})'
        if self.mode_of_packing == 'video':
            extension = meta['video_ext']
            if extension not in files:
                raise DecodeError(f'{name}: no .{extension} member')
            frames = load_video_bytes(files[extension], indices, name, self.clips.min_side)
        else:
            extension = meta['frame_ext']

            def read(i, out):
                data = files.get(f'{i:05d}.{extension}')
                if data is None:
                    raise DecodeError(f'{name}: frame {i} is missing from the shard')
                return decode_image_bytes(data, f'{name}.{i:05d}.{extension}', self.clips.min_side, out)
            frames = gather_frames(indices, read, name)
        return self.clips.make_clip(frames, rng), int(meta['label'])

    def __iter__(self):
        info = get_worker_info()
        worker = info.id if info is not None else 0
        slots = self.num_replicas * self.workers
        start, count = self._range(self.rank * self.workers + worker, slots)
        stream = self._shuffled(self._raw(self._pieces(start, count)), worker)
        for _ in range(self._skipped_here(worker)):
            next(stream, None)
        recent, waiting = collections.deque(maxlen=RECENT_GOOD), []
        for index, files in stream:
            try:
                clip, label = self.make_clip(index, files)
            except DecodeError as err:
                logger.warning('cannot read %s', err)
                waiting.append(index)
            else:
                recent.append((index, files))
                yield clip, label, index, -1
            while waiting and recent:
                yield self._stand_in(waiting.pop(0), recent)
        if waiting:
            raise DecodeError(f'{len(waiting)} samples of {self.spec} could not be read and no '
                              f'readable sample was met to stand in for them, e.g. '
                              f'{self.describe(waiting[0])}')

    def _stand_in(self, bad, recent):
        """(clip, label, index, bad) for unreadable sample `bad`: a recent good sample's clip
        (training: with its label and index; validation: flagged for leaving out)."""
        choice = np.random.default_rng((self.clips.seed, self.epoch, bad, REPLACEMENT_STREAM))
        other, files = recent[int(choice.integers(len(recent)))]
        clip, label = self.make_clip(other, files)
        return (clip, label, other, bad) if self.train else (clip, 0, bad, bad)
