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

What is trusted: DATASET.SHARDS and DATASET.SHARD_INDEX are the user's own words and may be
any URL gopen opens, `pipe:` commands run by a shell included. Everything read through them
is data, checked before use. A shard name in an index.json must be a plain file name (ASCII
letters, digits, '.', '_' and '-', beginning with a letter or digit: no folder, scheme, space
or shell character; see check_shard_name), because the shard URLs are the index's URL with its
file name replaced: `/d/index.json` -> `/d/<name>`, and `pipe:cat /d/index.json` ->
`pipe:cat /d/<name>`, a shell command; such a name stays one word naming one file of that
folder. An index that breaks these rules, or whose fields have the wrong types, is a
ShardError naming it and the entry. Tar headers are checked as they are read (checksum,
octal or base-256 sizes, UTF-8 names): a damaged one ends its shard like a truncation. A
sample's K.json is checked (check_sample_meta: types, frame count, label within
DATASET.CLASS_NUM, a known extension): a bad one, or any failure decoding its bytes, makes an
unreadable sample, replaced and flagged as above.

The member index: DataTool.pack writes beside each shard `<shard>.members.json` (named by the
shard's index.json entry, "members"): every member's name, tar header offset and size, grouped
by sample, and the shard's size. A local shard with one is read by seeking straight to each
sample's members, and only the members keep() wants are read: no walk over every header. It is
data like the rest: checked when loaded (check_member_index), and each member read has its tar
header checked against it. A member index that is missing, damaged or stale (the shard re-packed
or truncated since) is named in one warning and the shard is read by walking its tar, which
gives the same samples; so do streams (pipe:, http:) and shards packed without one.
"""
import collections
import contextlib
import io
import json
import logging
import os
import posixpath
import re

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from .decoding import DecodeError, decode_image_bytes, gather_frames
from .records import VIDEO_EXTENSIONS
from .video_reader import load_video_bytes

logger = logging.getLogger('dlac.data')
INDEX_FORMAT = 'dlac-shards/1'
INDEX_NAME = 'index.json'
PACKING_MODES = ('frames', 'video')
SHUFFLE_STREAM, REPLACEMENT_STREAM = 7907, 7919
RECENT_GOOD = 8          # good samples kept to stand in for a bad one
SHARD_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]*')
SHARD_NAME_LIMIT = 255   # a file name's length on common file systems
FRAME_EXTENSIONS = ('jpg', 'jpeg', 'png')
VIDEO_FILE_EXTENSIONS = tuple(extension.lstrip('.') for extension in VIDEO_EXTENSIONS)
MAX_FRAMES = 2 ** 31 - 1  # what the samplers' integer arithmetic is meant for
MEMBERS_FORMAT = 'dlac-shard-members/1'
MEMBERS_SUFFIX = '.members.json'
MEMBERS_LIMIT = 64 << 20  # a member index larger than this is damage (1 GB of frames: ~1 MB)


class ShardError(ValueError):
    """Shards or their index that cannot be used; the message names them."""


class MemberIndexError(ShardError):
    """A shard's member index that cannot be used (the shard is then read by walking it)."""


def open_url(url, mode='rb'):
    """A local path or any URL webdataset's gopen opens (pipe:, http(s):, ...)."""
    import webdataset
    try:
        return webdataset.gopen(url, mode)
    except Exception as err:  # noqa: BLE001 - gopen raises what its handler raises
        raise ShardError(f'cannot open {url}: {err}') from err


def local_path(url):
    """The file a shard URL names on this machine, or None for another scheme (pipe:, http:)."""
    path = url[len('file:'):] if url.startswith('file:') else url
    return None if ':' in path.split('/')[0] else path


def missing_shards(urls):
    """The local shard files of `urls` that do not exist (URLs of other schemes are not tried)."""
    return [url for url in urls if local_path(url) is not None and not os.path.isfile(local_path(url))]


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
    if urls is None:       # names checked by read_index: each stays one file of `base`
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
    """The index DataTool.pack wrote at `url`, every field the reader uses checked: anything
    else is a ShardError naming `url` (an index may come from anywhere; see the module's note)."""
    try:
        with open_url(url) as handle:
            index = json.loads(handle.read().decode('utf-8'))
    except (ShardError, OSError) as err:
        raise ShardError(f'cannot read the shard index {url}: {err}') from err
    except (ValueError, RecursionError) as err:
        raise ShardError(f'{url}: not a JSON shard index ({err})') from err
    found = index.get('format') if isinstance(index, dict) else f'a JSON {type(index).__name__}'
    if found != INDEX_FORMAT:
        raise ShardError(f'{url}: not a DLAC shard index (format {found!r}, expected '
                         f'{INDEX_FORMAT!r}); write one with python -m DataTool.pack')
    entries = index.get('shards')
    if not isinstance(entries, list):
        raise ShardError(f'{url}: "shards" is {entries!r:.60}, not a list of shard entries')
    if index.get('complete') is not True:
        raise ShardError(f'{url}: packing has not finished ({len(entries)} shards so far); run '
                         f'the same DataTool.pack command again to complete it')
    if index.get('mode', 'frames') not in PACKING_MODES:
        raise ShardError(f'{url}: "mode" is {index.get("mode")!r:.60}, expected one of '
                         f'{", ".join(PACKING_MODES)}')
    seen = set()
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ShardError(f'{url}: shard entry {position} is {entry!r:.60}, not an object with '
                             f'its name, samples and first')
        name = check_shard_name(entry.get('name'), url, position)
        for field in ('samples', 'first'):
            value = entry.get(field)
            if type(value) is not int or value < 0:          # a bool is not a count
                raise ShardError(f'{url}: shard entry {position} ({name}): {field} is '
                                 f'{value!r:.60}, not a count (an integer, 0 or more)')
        if name in seen:
            raise ShardError(f'{url}: shard entry {position} lists {name} twice')
        seen.add(name)
    return index


def check_shard_name(name, index_url, position):
    """`name` of shard entry `position` of `index_url` when it is a plain file name beside the
    index (the module's note says why), else ShardError naming both."""
    if isinstance(name, str) and len(name) <= SHARD_NAME_LIMIT and SHARD_NAME.fullmatch(name):
        return name
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + '...'
    raise ShardError(f'{index_url}: shard entry {position} is named {shown}; a shard name must '
                     f'be a plain file name beside the index (ASCII letters, digits, ".", "_" '
                     f'and "-", beginning with a letter or digit, at most {SHARD_NAME_LIMIT}): '
                     f'no folder, URL scheme, space or shell character')


# ---------------------------------------------------------------- reading a tar stream
def split_name(name):
    """WebDataset's convention: 'K.00012.jpg' -> ('K', '00012.jpg')."""
    directory, _, base = name.rpartition('/')
    key, _, extension = base.partition('.')
    return (directory + '/' + key if directory else key), extension


def read_samples(url, skip=0, take=None, keep=None, members=None):
    """Samples of one shard in order as {extension: bytes}, after leaving out the first
    `skip` (not read into memory) and up to `take` of them. keep(files so far, extension) ->
    bool may leave out members not needed (seeked over in a local file). A truncated or
    damaged tar ends the shard with a warning; the caller counts what is missing. `meta` is
    the sample's K.json parsed (None when it is not JSON), not yet checked. `members`: the
    file name of the shard's member index as index.json lists it (None: none); a local shard
    is then read through it, and by walking its tar when it cannot be used (one warning)."""
    if take is not None and take <= 0:
        return
    done = 0
    if members is not None and _local_file(url) is not None:
        try:
            for files in _indexed_samples(url, members, skip, take, keep):
                yield files
                done += 1
            return
        except (ShardError, OSError) as err:
            named = _member_index_path(url, members) or f'{members!r:.80}'
            logger.warning('shard %s: its member index %s is not used (%s); reading the shard by '
                           'walking its tar', url, named, ' '.join(str(err).split()) or type(err).__name__)
    yield from _walk_samples(url, skip + done, None if take is None else take - done, keep)


def _walk_samples(url, skip, take, keep):
    """read_samples by walking every tar header in order: streams, shards without a member
    index, and those whose index cannot be used."""
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
CHUNK = 1 << 20              # larger reads and skips go by pieces, after a look at what is left
LONG_NAME_LIMIT = 1 << 16    # a GNU long name or pax header larger than this is damage
OCTAL = re.compile(rb'[0-7]+')
FILE_TYPES = (b'0', b'\0', b'7')   # tar type flags of regular files


def tar_members(handle, url):
    """(name, size) of each regular file in a tar stream, the handle left at its data (the
    caller reads or skips size rounded up to 512). Handles ustar, GNU long names and pax
    paths. Sizes: octal, or GNU base-256 (first byte 0x80, as tar writes members of 8 GiB
    and more), parsed; a negative base-256 size (0xff) is damage. Raises ShardError (and
    nothing else) on a damaged header (bad checksum, a field that is not a number, a name
    that is not UTF-8) or a truncated file."""
    long_name = None
    while True:
        header = handle.read(BLOCK)
        if header == bytes(BLOCK):
            return                          # the end-of-archive blocks
        if len(header) < BLOCK:
            where = 'inside a tar header' if header else 'before the end-of-archive blocks'
            raise ShardError(f'{url}: truncated (it ends {where})')
        _check_checksum(header, url)
        size = _member_size(header, url)
        kind = header[156:157]
        if kind in (b'L', b'x'):             # the next member's long name
            if size > LONG_NAME_LIMIT:
                raise ShardError(f'{url}: damaged tar header (a long name of {size} bytes)')
            data = _read_exactly(handle, size, url)
            _skip_bytes(handle, _padded(size) - size, url)
            long_name = data.rstrip(b'\0') if kind == b'L' else _pax_path(data) or long_name
            continue
        if kind in FILE_TYPES:
            yield _text(long_name or _ustar_name(header), url), size
        else:
            _skip_bytes(handle, _padded(size), url)
        long_name = None


def _check_checksum(header, url):
    """POSIX: the octal sum of the header's bytes, the checksum field counted as 8 spaces;
    stored as 6 digits, NUL, space (or other NUL/space endings). As tarfile, the sum of the
    bytes read as signed chars (old tars) is accepted too."""
    stored = header[148:156].split(b'\0', 1)[0].strip()
    if not OCTAL.fullmatch(stored):
        raise ShardError(f'{url}: damaged tar header (checksum field {header[148:156]!r})')
    unsigned = sum(header) - sum(header[148:156]) + 8 * 32
    if int(stored, 8) == unsigned:
        return
    high = sum(1 for byte in header[:148] + header[156:] if byte > 127)
    if int(stored, 8) != unsigned - 256 * high:
        raise ShardError(f'{url}: damaged tar header (checksum)')


def _member_size(header, url):
    field = header[124:136]
    if field[0] == 0x80:                  # GNU base-256: big-endian in the other 11 bytes
        return int.from_bytes(field[1:], 'big')
    digits = field.split(b'\0', 1)[0].strip()
    if digits and not OCTAL.fullmatch(digits):
        raise ShardError(f'{url}: damaged tar header (size field {field!r})')
    return int(digits, 8) if digits else 0


def _ustar_name(header):
    name = header[:100].split(b'\0', 1)[0]
    if header[257:262] == b'ustar' and header[345:346] != b'\0':
        name = header[345:500].split(b'\0', 1)[0] + b'/' + name
    return name


def _text(name, url):
    try:
        return name.decode('utf-8')
    except UnicodeDecodeError:
        raise ShardError(f'{url}: damaged tar header (a name that is not UTF-8: {name[:60]!r})') from None


def _pax_path(data):
    for record in data.split(b'\n'):
        _, _, field = record.partition(b' ')
        if field.startswith(b'path='):
            return field[5:]
    return None


def _padded(size):
    return -(-size // BLOCK) * BLOCK


def _fewer_left(handle, count):
    """Whether a local file's handle has fewer than `count` bytes after its position (False
    for a stream, which cannot tell)."""
    try:
        return os.fstat(handle.fileno()).st_size - handle.tell() < count
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        return False


def _read_exactly(handle, size, url):
    """`size` bytes, or ShardError when the shard ends first. A size from a damaged header is
    never allocated up front: a local file is asked what it holds, a stream read by pieces."""
    if size > CHUNK and _fewer_left(handle, size):
        raise ShardError(f'{url}: truncated or damaged (a member of {size} bytes, more than is left)')
    pieces, wanted = [], size
    while wanted > 0:
        piece = handle.read(min(wanted, CHUNK))
        if not piece:
            raise ShardError(f'{url}: truncated (a member ends early)')
        pieces.append(piece)
        wanted -= len(piece)
    return pieces[0] if len(pieces) == 1 else b''.join(pieces)


def _skip_bytes(handle, count, url=''):
    """Past `count` bytes: a seek where the handle can, else read and dropped."""
    if count <= 0:
        return
    if getattr(handle, 'seekable', lambda: False)():
        if count > CHUNK and _fewer_left(handle, count):
            raise ShardError(f'{url}: truncated or damaged (a member of {count} bytes, more than is left)')
        handle.seek(count, os.SEEK_CUR)
        return
    while count > 0:
        chunk = handle.read(min(count, CHUNK))
        if not chunk:
            raise ShardError(f'{url}: truncated (it ends inside a member)')
        count -= len(chunk)


@contextlib.contextmanager
def _open_shard(url):
    """A local file is opened for random access, so members not kept are seeked over;
    anything else (pipe:, http:, ...) is streamed through webdataset's gopen."""
    local = local_path(url)
    if local is not None and os.path.isfile(local):
        with open(local, 'rb') as handle:
            yield handle
        return
    with open_url(url) as handle:
        yield handle


def _json_or_none(data):
    try:
        return json.loads(data.decode('utf-8'))
    except (ValueError, RecursionError):
        return None


# ---------------------------------------------------------------- the member index
MemberIndex = collections.namedtuple('MemberIndex', 'keys starts extensions offsets sizes')
MemberIndex.__doc__ = """A shard's member index, checked: sample p has key keys[p] and the
members starts[p] to starts[p + 1] - 1, each with its extension, tar header offset and size."""


def member_index_name(shard_name):
    """'train-000000.tar' -> 'train-000000.members.json', the member index beside it."""
    stem = shard_name[:-len('.tar')] if shard_name.endswith('.tar') else shard_name
    return stem + MEMBERS_SUFFIX


def member_index_names(urls, index):
    """The member index each shard of `urls` has in index.json `index` (None: packed without)."""
    listed = {entry['name']: entry.get('members') for entry in index['shards']}
    return [listed.get(posixpath.basename(url.split()[-1])) for url in urls]


def _local_file(url):
    """The local file shard `url` is, or None (a stream, or no such file)."""
    path = local_path(url)
    return path if path is not None and os.path.isfile(path) else None


def _member_index_path(url, members):
    """The member index named `members` beside local shard `url`, or None when `members` is
    not a plain file name (as shard names are; see check_shard_name): nothing else is opened."""
    if not (isinstance(members, str) and len(members) <= SHARD_NAME_LIMIT
            and SHARD_NAME.fullmatch(members)):
        return None
    return os.path.join(os.path.dirname(local_path(url)), members)


def _indexed_samples(url, members, skip, take, keep):
    """read_samples of a local shard through its member index: per sample in [skip,
    skip + take), keep() asked of each member by name, one seek and read for each kept one.
    ShardError or OSError on anything that does not match (the caller walks the tar)."""
    path = _member_index_path(url, members)
    if path is None:
        raise MemberIndexError('index.json names it with something other than a plain file '
                               'name beside the shard')
    shard = _local_file(url)
    with open(shard, 'rb') as handle:
        index = load_member_index(path, os.path.basename(shard), os.fstat(handle.fileno()).st_size)
        stop = len(index.keys) if take is None else min(len(index.keys), skip + take)
        for position in range(skip, stop):
            yield _indexed_sample(handle, index, position, keep, url)


def _indexed_sample(handle, index, position, keep, url):
    """Sample `position`'s dict as _walk_samples makes it, reading only the kept members."""
    key = index.keys[position]
    files = {'__key__': key, '__position__': position}
    for member in range(index.starts[position], index.starts[position + 1]):
        extension = index.extensions[member]
        if keep is not None and not keep(files, extension):
            continue
        files[extension] = _read_member(handle, index.offsets[member], index.sizes[member],
                                        f'{key}.{extension}', url)
        if extension == 'json':
            files['meta'] = _json_or_none(files['json'])
    return files


def _read_member(handle, offset, size, name, url):
    """The data of member `name` whose tar header is at `offset`, after checking that header
    (checksum, a file, the name and size the index gives): a stale index reads as a mismatch."""
    handle.seek(offset)
    header = _read_exactly(handle, BLOCK, url)
    try:
        _check_checksum(header, url)
        name_found, size_found = _text(_ustar_name(header), url), _member_size(header, url)
    except ShardError:
        raise MemberIndexError(f'byte {offset} of the shard holds no tar header, not that of the '
                               f'file {name[:80]!r} the index lists') from None
    kind = header[156:157]
    if (name_found, size_found) != (name, size) or kind not in FILE_TYPES:
        raise MemberIndexError(f'the tar header at byte {offset} is of {name_found[:80]!r} '
                               f'({size_found} bytes, type {kind!r}), not of the file '
                               f'{name[:80]!r} ({size} bytes) the index lists')
    return _read_exactly(handle, size, url)


def load_member_index(path, shard_name, shard_bytes):
    """The member index at `path` of shard `shard_name` (`shard_bytes` long), checked: it comes
    from where the shard came from, and re-packing or truncating the shard leaves it stale.
    MemberIndexError says what does not fit."""
    try:
        with open(path, 'rb') as handle:
            text = handle.read(MEMBERS_LIMIT + 1)
    except OSError as err:
        raise MemberIndexError(f'cannot read it ({err.strerror or err})') from err
    if len(text) > MEMBERS_LIMIT:
        raise MemberIndexError(f'it is larger than {MEMBERS_LIMIT} bytes')
    try:
        found = json.loads(text.decode('utf-8'))
    except (ValueError, RecursionError) as err:
        raise MemberIndexError(f'not JSON ({err})') from None
    return check_member_index(found, shard_name, shard_bytes)


def check_member_index(found, shard_name, shard_bytes):
    """MemberIndex of a parsed member index when it is one for this shard (its name and size)
    and its members could be that shard's, in order; else MemberIndexError saying why."""
    kind = found.get('format') if isinstance(found, dict) else f'a JSON {type(found).__name__}'
    if kind != MEMBERS_FORMAT:
        raise MemberIndexError(f'format {kind!r:.60}, expected {MEMBERS_FORMAT!r}')
    if found.get('shard') != shard_name:
        raise MemberIndexError(f'it indexes the shard {found.get("shard")!r:.80}, not {shard_name}')
    if type(found.get('shard_bytes')) is not int or found['shard_bytes'] != shard_bytes:
        raise MemberIndexError(f'the shard is {shard_bytes} bytes, the index was written for '
                               f'{found.get("shard_bytes")!r:.40} (re-packed or truncated since?)')
    keys, starts = _sample_runs(found.get('samples'))
    extensions = found.get('extensions')
    if not _names_without_slash(extensions):   # so 'key.extension' splits back to both
        raise MemberIndexError('"extensions" is not a list of extensions (strings without "/")')
    offsets, sizes = _integers(found.get('offsets'), 'offsets'), _integers(found.get('sizes'), 'sizes')
    if not len(extensions) == len(offsets) == len(sizes) == starts[-1]:
        raise MemberIndexError(f'{starts[-1]} members in "samples", {len(extensions)} extensions, '
                               f'{len(offsets)} offsets and {len(sizes)} sizes')
    _check_layout(offsets, sizes, shard_bytes)
    return MemberIndex(keys, starts, extensions, offsets.tolist(), sizes.tolist())


def _sample_runs(samples):
    """(keys, first member of each sample and the end) of "samples": [[key, member count]],
    keys as a walk of the tar finds them (no '.' in a key's file name, none twice in a row)."""
    if not isinstance(samples, list):
        raise MemberIndexError(f'"samples" is {samples!r:.60}, not a list of [key, member count]')
    keys, starts = [], [0]
    for position, sample in enumerate(samples):
        if not (isinstance(sample, list) and len(sample) == 2 and isinstance(sample[0], str)
                and type(sample[1]) is int and sample[1] > 0):
            raise MemberIndexError(f'sample {position} is {sample!r:.60}, not [key, member count]')
        key = sample[0]
        if '.' in key.rpartition('/')[2] or (keys and keys[-1] == key):
            raise MemberIndexError(f'sample {position} has the key {key!r:.60}, which a walk of '
                                   f'the tar would not find')
        keys.append(key)
        starts.append(starts[-1] + sample[1])
    return keys, starts


def _names_without_slash(values):
    """Whether `values` is a list of strings none of which holds '/' (without a Python step
    per member: ''.join takes nothing but strings)."""
    try:
        return isinstance(values, list) and '/' not in ''.join(values)
    except TypeError:
        return False


def _integers(values, field):
    """`values` as a 1-D int64 array when it is a list of integers (MemberIndexError if not:
    numpy makes floats, strings, nested lists and integers past int64 another kind of array)."""
    if isinstance(values, list) and not values:
        return np.zeros(0, dtype=np.int64)
    try:
        array = np.asarray(values) if isinstance(values, list) else None
    except (ValueError, TypeError, OverflowError):
        array = None
    if array is None or array.ndim != 1 or array.dtype.kind != 'i':
        raise MemberIndexError(f'"{field}" is not a list of integers')
    return array.astype(np.int64)


def _check_layout(offsets, sizes, shard_bytes):
    """Members on 512-byte blocks, in order, not overlapping, the last followed by room for
    the end-of-archive block inside the shard: every read stays inside the file."""
    if not len(offsets):
        return
    if offsets.min() < 0 or sizes.min() < 0 or max(offsets.max(), sizes.max()) > shard_bytes:
        raise MemberIndexError(f'a member offset or size is negative or past the shard\'s end '
                               f'({shard_bytes} bytes)')
    if (offsets % BLOCK).any():
        raise MemberIndexError('a member offset is not on a 512-byte block')
    ends = offsets + BLOCK + -(-sizes // BLOCK) * BLOCK
    if (offsets[1:] < ends[:-1]).any():
        raise MemberIndexError('members overlap or are out of order')
    if ends[-1] + BLOCK > shard_bytes:
        raise MemberIndexError(f'the last member ends at byte {ends[-1]}, past the end-of-archive '
                               f'block of the shard ({shard_bytes} bytes)')


def check_sample_meta(meta, mode, class_num, what):
    """`meta` (a sample's parsed K.json, None when unreadable) when it can make a clip of a
    shard packed in `mode`: num_frames an int from 1, label an int in [0, class_num) (class_num
    None: from 0), a known frame_ext or video_ext, path a string. Else DecodeError naming
    `what` and every problem, so the sample is replaced like an unreadable one."""
    if meta is None:
        raise DecodeError(f'{what}: no json member readable as UTF-8 JSON')
    if not isinstance(meta, dict):
        raise DecodeError(f'{what}: is not a JSON object but a {type(meta).__name__}')
    problems = []
    frames, label = meta.get('num_frames'), meta.get('label')
    if type(frames) is not int or not 0 < frames <= MAX_FRAMES:
        problems.append(f'num_frames {frames!r:.40} is not a frame count (an integer from 1)')
    if type(label) is not int or label < 0 or (class_num is not None and label >= class_num):
        classes = f'in [0, {class_num})' if class_num is not None else '(an integer from 0)'
        problems.append(f'label {label!r:.40} is not a class number {classes}')
    field, known = (('video_ext', VIDEO_FILE_EXTENSIONS) if mode == 'video'
                    else ('frame_ext', FRAME_EXTENSIONS))
    if not isinstance(meta.get(field), str) or meta[field] not in known:
        problems.append(f'{field} {meta.get(field)!r:.40} is not one of {", ".join(known)}')
    if not isinstance(meta.get('path'), str):
        problems.append(f'path {meta.get("path")!r:.40} is not a string')
    if problems:
        raise DecodeError(f'{what}: ' + '; '.join(problems))
    return meta


# ---------------------------------------------------------------- the dataset
class ShardDataset(IterableDataset):
    """Clips from packed shards, for one process of `num_replicas` (see the module's
    docstring for the order). `clips` is a VideoDataset without records: its sampling,
    transforms and seed make the clip from the decoded frames exactly as from a folder.
    Yields (clip, label, index, bad) like VideoDataset; `index` is the sample's number in the
    packed set."""

    def __init__(self, spec, clips, num_replicas=1, rank=0, shuffle_buffer=100, index_url='',
                 class_num=None):
        self.spec = spec
        self.class_num = class_num            # labels outside [0, class_num) are bad samples
        self.urls, self.counts, self.first, index = shard_list(spec, index_url)
        self.member_indexes = member_index_names(self.urls, index)
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
            for files in read_samples(self.urls[shard], skip, take, keep=keep,
                                      members=self.member_indexes[shard]):
                yield first + skip + got, files
                got += 1
            for lost in range(got, take):
                yield first + skip + lost, None

    def _keep(self, files, extension, index):
        """While reading: frames mode keeps only the frames the sampler will ask for (all of
        them when no K.json came first, none when it is bad: the sample is replaced)."""
        if extension in ('json', 'cls') or self.mode_of_packing != 'frames' or 'json' not in files:
            return True
        if 'wanted' not in files:         # the sampler's draw, from the sample's own stream
            try:
                meta = self._meta(index, files)
            except DecodeError:
                files['wanted'] = set()
            else:
                rng = self.clips._rng(index)
                files['wanted'] = {f'{i:05d}' for i in self.clips.sample_indices(meta['num_frames'], rng)}
        return extension.partition('.')[0] in files['wanted']

    def _meta(self, index, files):
        """Sample `index`'s checked K.json; DecodeError when it is lost or unusable."""
        if files is None:
            raise DecodeError(f'{self.describe(index)}: lost (truncated shard)')
        return check_sample_meta(files.get('meta'), self.mode_of_packing, self.class_num,
                                 f'{self.describe(index)}: {files["__key__"]}.json')

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
        """The clip of sample `index` from its shard members, as VideoDataset makes it. Any
        failure to decode the sample's bytes is a DecodeError: the sample is replaced."""
        meta, rng = self._meta(index, files), self.clips._rng(index)
        indices = self.clips.sample_indices(meta['num_frames'], rng)
        name = f'{self.describe(index)} ({meta["path"]})'
        if self.mode_of_packing == 'frames':     # only the crop's region, when it applies
            clip = self.clips.clip_from_regions(indices, self._frame_reader(files, meta, name), rng)
            if clip is not None:
                return clip, meta['label']
        try:
            frames = self._decode(files, meta, indices, name)
        except DecodeError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever a decoder raises on these bytes
            raise DecodeError(f'{name}: cannot decode ({type(err).__name__}: {err})') from err
        return self.clips.make_clip(frames, rng), meta['label']

    @staticmethod
    def _frame_reader(files, meta, name):
        """read(index) -> [(bytes, member name)] of a frames sample's member for frame `index`."""
        extension = meta['frame_ext']

        def read(i):
            data = files.get(f'{i:05d}.{extension}')
            if data is None:
                raise DecodeError(f'{name}: frame {i} is missing from the shard')
            return [(data, f'{name}.{i:05d}.{extension}')]
        return read

    def _decode(self, files, meta, indices, name):
        if self.mode_of_packing == 'video':
            extension = meta['video_ext']
            if extension not in files:
                raise DecodeError(f'{name}: no .{extension} member')
            return load_video_bytes(files[extension], indices, name, self.clips.min_side)
        read_member = self._frame_reader(files, meta, name)

        def read(i, out):
            (data, member), = read_member(i)
            return decode_image_bytes(data, member, self.clips.min_side, out)
        return gather_frames(indices, read, name)

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
