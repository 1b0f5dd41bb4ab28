"""Shards from elsewhere are data, never commands: a hostile or damaged index.json, tar header
or sample JSON is refused or counted as unreadable, and never runs anything or kills the
loader. Also the epoch's plan: a new shard order each epoch, and validation reading every
sample exactly once over any number of loader slots."""
import io
import json
import logging
import os
import os.path as osp
import shlex
import tarfile
import tempfile
from contextlib import contextmanager
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets import shards
from datasets.decoding import DecodeError
from datasets.shards import (INDEX_FORMAT, ShardDataset, ShardError, check_sample_meta,
                             check_shard_name, read_index, read_samples, shard_list, tar_members)
from datasets.video_dataset import VideoDataset

BOUNDED = settings(max_examples=200, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------- small shards to break
def sample_files(number, frames=2):
    """[(member name, bytes)] of one sample as DataTool.pack lays it out (dummy frames)."""
    key = f'{number:09d}'
    meta = {'path': f'class/video_{number}', 'num_frames': frames, 'label': number % 3,
            'where': f'meta.txt:{number + 1}', 'frame_ext': 'jpg'}
    members = [(f'{key}.json', json.dumps(meta).encode()), (f'{key}.cls', str(number % 3).encode())]
    members += [(f'{key}.{k:05d}.jpg', bytes([number, k]) * (300 + 100 * k)) for k in range(frames)]
    return members


def write_tar(path, members, tar_format=tarfile.USTAR_FORMAT):
    with tarfile.open(path, 'w', format=tar_format) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o444, 0
            archive.addfile(info, io.BytesIO(data))


def write_shards(folder, counts, names=None, first_number=0):
    """Shards of `counts` dummy samples and their index.json; the index's path."""
    os.makedirs(folder, exist_ok=True)
    entries, number = [], first_number
    for k, count in enumerate(counts):
        name = names[k] if names else f'part-{k:06d}.tar'
        members = sum((sample_files(number + i) for i in range(count)), [])
        write_tar(osp.join(folder, name), members)
        entries.append({'name': name, 'samples': count, 'bytes': 0, 'first': number})
        number += count
    return write_index(folder, entries)


def write_index(folder, entries, **fields):
    index = {'format': INDEX_FORMAT, 'mode': 'frames', 'shards': entries,
             'samples': sum(e['samples'] for e in entries
                            if isinstance(e, dict) and type(e.get('samples')) is int),
             'complete': True, **fields}
    path = osp.join(folder, 'index.json')
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump(index, handle)
    return path


@contextmanager
def shard_warnings():
    """The warnings the shard reader logs (dlac's loggers may not propagate to the root)."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger('dlac.data')
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


# ---------------------------------------------------------------- 1. the index runs nothing
def test_an_index_naming_a_pipe_shard_runs_nothing(tmp_path, monkeypatch):
    """`DATASET.SHARDS index.json` from the folder holding it: a shard entry named
    `pipe:touch${IFS}PWNED` became a URL of its own, which gopen ran through a shell."""
    monkeypatch.chdir(tmp_path)
    write_shards(str(tmp_path), [2])
    write_index(str(tmp_path), [{'name': 'pipe:touch${IFS}PWNED', 'samples': 2, 'first': 0}])
    with pytest.raises(ShardError) as refused:
        urls, _, _, _ = shard_list('index.json')
        for url in urls:
            list(read_samples(url))
    assert not (tmp_path / 'PWNED').exists()
    assert 'index.json' in str(refused.value) and 'pipe:touch${IFS}PWNED' in str(refused.value)


def test_an_index_read_through_a_pipe_cannot_extend_the_command(tmp_path, monkeypatch):
    """`DATASET.SHARDS 'pipe:cat /d/index.json'`: shard URLs are `pipe:cat /d/<name>`, so a
    name `a.tar;touch${IFS}PWNED` appended a command of its own."""
    monkeypatch.chdir(tmp_path)
    folder = str(tmp_path / 'd')
    write_shards(folder, [2], names=['a.tar'])
    write_index(folder, [{'name': 'a.tar;touch${IFS}PWNED', 'samples': 2, 'first': 0}])
    index = osp.join(folder, 'index.json')
    with pytest.raises(ShardError) as refused:
        urls, _, _, _ = shard_list(f'pipe:cat {index}')
        for url in urls:
            list(read_samples(url))
    assert not (tmp_path / 'PWNED').exists() and not (tmp_path / 'd' / 'PWNED').exists()
    assert index in str(refused.value) and 'a.tar;touch${IFS}PWNED' in str(refused.value)


HOSTILE_NAMES = ['../x.tar', '/etc/passwd', 'http://x/a.tar', 'a.tar|id', 'a b.tar', '$(id).tar',
                 '`id`.tar', 'a.tar;id', 'a.tar&', 'a.tar>x', "a'.tar", 'a.tar\n', 'a\0.tar',
                 'file:a.tar', 'sub/a.tar', 'sub\\a.tar', '-', '-rf.tar', '.', '..', '.hidden.tar',
                 '', 'a' * 300, 'ä.tar', 7, None, ['a.tar']]


@pytest.mark.parametrize('name', HOSTILE_NAMES, ids=[repr(n)[:20] for n in HOSTILE_NAMES])
def test_hostile_shard_names_are_refused_naming_the_index_and_the_entry(tmp_path, name):
    write_shards(str(tmp_path), [2])
    index = write_index(str(tmp_path), [{'name': name, 'samples': 2, 'first': 0}])
    with pytest.raises(ShardError) as refused:
        shard_list(index)
    assert index in str(refused.value) and repr(name)[:20] in str(refused.value)


@pytest.mark.parametrize('entries, why', [
    ('not a list', 'shards'),
    ([['a.tar', 2, 0]], 'entry 0'),
    ([{'samples': 2, 'first': 0}], 'entry 0'),
    ([{'name': 'part-000000.tar', 'first': 0}], 'samples'),
    ([{'name': 'part-000000.tar', 'samples': -1, 'first': 0}], 'samples'),
    ([{'name': 'part-000000.tar', 'samples': '2', 'first': 0}], 'samples'),
    ([{'name': 'part-000000.tar', 'samples': True, 'first': 0}], 'samples'),
    ([{'name': 'part-000000.tar', 'samples': 2}], 'first'),
    ([{'name': 'part-000000.tar', 'samples': 2, 'first': -3}], 'first'),
    ([{'name': 'part-000000.tar', 'samples': 2, 'first': 1.5}], 'first'),
    ([{'name': 'part-000000.tar', 'samples': 2, 'first': 0}] * 2, 'twice'),
])
def test_a_malformed_index_is_a_shard_error_naming_it(tmp_path, entries, why):
    write_shards(str(tmp_path), [2])
    index = write_index(str(tmp_path), entries)
    with pytest.raises(ShardError, match=why) as refused:
        shard_list(index)
    assert index in str(refused.value)


@pytest.mark.parametrize('text', ['[]', '"index"', '{"format": "dlac-shards/1"}', '7',
                                  '{"format": "dlac-shards/1", "complete": true, "shards": [], '
                                  '"mode": "audio"}',
                                  '{"format": "dlac-shards/1", "complete": "yes", "shards": []}',
                                  '[' * 100000], ids=lambda text: text[:30])
def test_an_index_that_is_not_one_is_a_shard_error(tmp_path, text):
    path = tmp_path / 'index.json'
    path.write_text(text, encoding='utf-8')
    with pytest.raises(ShardError) as refused:
        read_index(str(path))
    assert str(path) in str(refused.value)


def test_a_normal_index_still_works_locally_and_through_a_pipe(tmp_path):
    index = write_shards(str(tmp_path / 'd'), [2, 3], names=['train-000000.tar', 'train_1.v2.tar'])
    for spec in (index, f'pipe:cat {index}'):
        urls, counts, first, _ = shard_list(spec)
        assert counts.tolist() == [2, 3] and first.tolist() == [0, 2]
        keys = [files['__key__'] for url in urls for files in read_samples(url)]
        assert keys == [f'{n:09d}' for n in range(5)]
    assert urls[1] == f'pipe:cat {tmp_path}/d/train_1.v2.tar'


@BOUNDED
@given(name=st.text(min_size=0, max_size=40))
def test_a_name_that_passes_is_one_plain_shell_word(name):
    """Whatever passes the check is safe in `pipe:cat <folder>/<name>`: no scheme, no path
    part, nothing a shell expands or splits, and not a gopen special name ('-')."""
    try:
        check_shard_name(name, 'index.json', 0)
    except ShardError as err:
        assert 'index.json' in str(err)
        return
    assert shlex.quote(name) == name and ':' not in name and '/' not in name
    assert shlex.split(f'cat /d/{name}') == ['cat', f'/d/{name}']
    assert name[0].isalnum() and name not in ('.', '..')


# ---------------------------------------------------------------- 2. damaged tar headers
def three_samples(tmp_path):
    """A shard of 3 samples (json, cls, 2 frames each) and its members' header offsets."""
    path = str(tmp_path / 'three.tar')
    write_tar(path, sum((sample_files(n) for n in range(3)), []))
    with tarfile.open(path) as archive:
        offsets = {member.name: member.offset for member in archive}
    return path, offsets


def checksum(header, signed=False):
    values = [b - 256 if signed and b > 127 else b for b in header[:148] + header[156:]]
    return sum(values) + 256


def patch_header(path, offset, start, value, fix_checksum=True, signed=False):
    with open(path, 'r+b') as handle:
        handle.seek(offset)
        header = bytearray(handle.read(512))
        header[start:start + len(value)] = value
        if fix_checksum:
            header[148:156] = b'%06o\0 ' % checksum(header, signed)
        handle.seek(offset)
        handle.write(header)


def flip_checksum_bit(bit):
    def damage(path, offset):
        with open(path, 'r+b') as handle:
            handle.seek(offset + 149)
            byte = handle.read(1)[0]
            handle.seek(offset + 149)
            handle.write(bytes([byte ^ (1 << bit)]))
    return damage


DAMAGE = {
    'garbage size': lambda path, at: patch_header(path, at, 124, b'zzzzzzzzzzz\0'),
    'base-256 size': lambda path, at: patch_header(path, at, 124, b'\x80' + b'\xff' * 11),
    'negative base-256 size': lambda path, at: patch_header(path, at, 124, b'\xff' * 12),
    'negative octal size': lambda path, at: patch_header(path, at, 124, b'-0000000001\0'),
    'absurd size': lambda path, at: patch_header(path, at, 124, b'77777777777\0'),
    'octal size with an underscore': lambda path, at: patch_header(path, at, 124, b'0000_001000\0'),
    '0xff in the name': lambda path, at: patch_header(path, at, 0, b'\xff'),
    '0xff in the ustar prefix': lambda path, at: patch_header(path, at, 345, b'\xffdir\0'),
    'flipped checksum bit 3': flip_checksum_bit(3),
    'flipped checksum bit 6': flip_checksum_bit(6),
    'flipped checksum bit 0': flip_checksum_bit(0),
    'non-octal checksum': lambda path, at: patch_header(path, at, 148, b'12_345\0 ', fix_checksum=False),
    'damaged type and name': lambda path, at: patch_header(path, at, 0, b'\0' * 100 + b'\xff' * 56,
                                                           fix_checksum=False),
}


@pytest.mark.parametrize('how', ['file', 'pipe'])
@pytest.mark.parametrize('damage', sorted(DAMAGE))
def test_a_damaged_header_ends_the_shard_with_one_warning(tmp_path, damage, how):
    """Damage in the middle of sample 2: samples 0 and 1 come out whole, then one warning
    naming the shard, and no exception (it used to be ValueError or UnicodeDecodeError)."""
    path, offsets = three_samples(tmp_path)
    DAMAGE[damage](path, offsets['000000002.00000.jpg'])
    url = path if how == 'file' else f'pipe:cat {path}'
    with shard_warnings() as warnings:
        samples = list(read_samples(url))
    assert [files['__key__'] for files in samples] == ['000000000', '000000001']
    assert samples[1]['00001.jpg'] == sample_files(1)[3][1]
    assert len(warnings) == 1 and url in warnings[0].getMessage()
    assert 'damaged' in warnings[0].getMessage() or 'truncated' in warnings[0].getMessage()


@pytest.mark.parametrize('how', ['file', 'pipe'])
def test_a_short_final_block_loses_only_the_last_sample(tmp_path, how):
    path, _ = three_samples(tmp_path)
    with tarfile.open(path) as archive:
        last = archive.getmembers()[-1]
    with open(path, 'r+b') as handle:             # 300 bytes into the end-of-archive blocks
        handle.truncate(last.offset_data + -(-last.size // 512) * 512 + 300)
    url = path if how == 'file' else f'pipe:cat {path}'
    with shard_warnings() as warnings:
        samples = list(read_samples(url))
    assert [files['__key__'] for files in samples] == ['000000000', '000000001']
    assert len(warnings) == 1 and url in warnings[0].getMessage()


def test_a_base_256_size_is_read_as_the_size_it_encodes(tmp_path):
    """GNU tar (and tarfile) write sizes of 8 GiB and more in base 256: parsed, not refused."""
    path, offsets = three_samples(tmp_path)
    size = len(sample_files(1)[2][1])
    patch_header(path, offsets['000000001.00000.jpg'], 124, b'\x80' + size.to_bytes(11, 'big'))
    with shard_warnings() as warnings:
        samples = list(read_samples(path))
    assert len(samples) == 3 and not warnings
    assert samples[1]['00000.jpg'] == sample_files(1)[2][1]


def test_a_signed_byte_checksum_is_accepted_as_tarfile_accepts_it(tmp_path):
    """Old tars summed the header's bytes as signed chars; tarfile takes either sum."""
    path, offsets = three_samples(tmp_path)
    patch_header(path, offsets['000000001.json'], 265, 'äöü'.encode('latin-1') + b'\0', signed=True)
    with tarfile.open(path) as archive:
        assert len(archive.getmembers()) == 12
    with shard_warnings() as warnings:
        samples = list(read_samples(path))
    assert len(samples) == 3 and not warnings


def reference_shard():
    """A small valid shard (GNU long names for one sample, a folder member) as bytes."""
    members = sample_files(0) + sample_files(1, frames=1) + sample_files(2, frames=3)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w', format=tarfile.GNU_FORMAT) as archive:
        folder = tarfile.TarInfo('folder')
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for name, data in members:
            info = tarfile.TarInfo(('x' * 120 + '/' + name) if name.startswith('000000001') else name)
            info.size, info.mtime = len(data), 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


REFERENCE = reference_shard()
with tarfile.open(fileobj=io.BytesIO(REFERENCE)) as _archive:
    HEADERS = [member.offset for member in _archive]
    _last = _archive.getmembers()[-1]
    END_BLOCK = _last.offset_data + -(-_last.size // 512) * 512     # where the zero blocks begin


class Stream(io.RawIOBase):
    """A non-seekable byte stream, as a pipe: or http: shard is."""

    def __init__(self, data):
        self.source = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.source.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def read_both_ways(data, folder):
    """read_samples of `data` as a local file (seeks) and as a stream: [(samples, warnings)],
    after checking that tar_members alone raises nothing but ShardError."""
    try:
        walk_members(data)
    except ShardError:
        pass
    path = osp.join(folder, 'shard.tar')
    with open(path, 'wb') as handle:
        handle.write(data)

    @contextmanager
    def open_stream(url):
        yield io.BufferedReader(Stream(data))
    results = []
    for url, opener in ((path, shards._open_shard), ('pipe:stream', open_stream)):
        with mock.patch.object(shards, '_open_shard', opener), shard_warnings() as warnings:
            results.append((list(read_samples(url)), list(warnings)))
        assert all(url in warning.getMessage() for warning in warnings)
    return results


def walk_members(data):
    """tar_members over a stream of `data`, reading each member as read_samples does."""
    handle = io.BufferedReader(Stream(data))
    for _, size in tar_members(handle, 'stream'):
        shards._read_exactly(handle, size, 'stream')
        shards._skip_bytes(handle, shards._padded(size) - size, 'stream')


with tempfile.TemporaryDirectory() as _folder:
    REFERENCE_SAMPLES = read_both_ways(REFERENCE, _folder)[0][0]


@BOUNDED
@given(data=st.binary(max_size=3000), fix_checksum=st.booleans())
def test_arbitrary_bytes_give_samples_or_one_warning(data, fix_checksum):
    """Any bytes, the first block's checksum made right or not (so its fields are parsed)."""
    if fix_checksum and len(data) >= 512:
        data = bytearray(data)
        data[148:156] = b'%06o\0 ' % checksum(data[:512])
        data = bytes(data)
    with tempfile.TemporaryDirectory() as folder:
        for samples, warnings in read_both_ways(data, folder):
            assert all(isinstance(files, dict) for files in samples)
            assert len(warnings) <= 1


@BOUNDED
@given(edits=st.lists(st.tuples(st.integers(0, len(REFERENCE) - 1), st.integers(0, 255)),
                      max_size=6),
       header_edits=st.lists(st.tuples(st.sampled_from(HEADERS), st.integers(0, 511),
                                       st.integers(0, 255)), max_size=4),
       fix_checksums=st.booleans(), keep=st.integers(0, len(REFERENCE)))
def test_a_mutated_shard_gives_samples_or_one_warning(edits, header_edits, fix_checksums, keep):
    """Byte flips anywhere, flips in headers (with their checksums made right again, so the
    size, name and type fields are parsed), and truncation."""
    data = bytearray(REFERENCE)
    for position, value in edits:
        data[position] = value
    for header, position, value in header_edits:
        data[header + position] = value
        if fix_checksums:
            data[header + 148:header + 156] = b'%06o\0 ' % checksum(data[header:header + 512])
    with tempfile.TemporaryDirectory() as folder:
        for samples, warnings in read_both_ways(bytes(data[:keep]), folder):
            assert all(isinstance(files, dict) for files in samples)
            assert len(warnings) <= 1


def test_the_reference_shard_reads_whole_both_ways():
    with tempfile.TemporaryDirectory() as folder:
        for samples, warnings in read_both_ways(REFERENCE, folder):
            assert [files['__key__'] for files in samples] == \
                ['000000000', 'x' * 120 + '/000000001', '000000002'] and not warnings
            assert samples == REFERENCE_SAMPLES


@BOUNDED
@given(keep=st.integers(0, len(REFERENCE)))
def test_a_truncated_shard_gives_a_prefix_of_its_samples(keep):
    """Cut anywhere: the samples that come out are the first ones, whole; a cut before the
    end-of-archive blocks is one warning."""
    with tempfile.TemporaryDirectory() as folder:
        for samples, warnings in read_both_ways(REFERENCE[:keep], folder):
            assert samples == REFERENCE_SAMPLES[:len(samples)]
            assert len(warnings) == (keep < END_BLOCK + 512)


# ---------------------------------------------------------------- 3. sample JSON
GOOD_META = {'path': 'a/b', 'num_frames': 12, 'label': 7, 'where': 'x:1', 'frame_ext': 'jpg'}


@pytest.mark.parametrize('change, reason', [
    ({'label': 99}, 'label'), ({'label': 8}, 'label'), ({'label': -1}, 'label'),
    ({'label': 'abc'}, 'label'), ({'label': 2.0}, 'label'), ({'label': True}, 'label'),
    ({'label': None}, 'label'), ({'num_frames': 0}, 'num_frames'),
    ({'num_frames': 'x'}, 'num_frames'), ({'num_frames': -5}, 'num_frames'),
    ({'num_frames': 10 ** 40}, 'num_frames'), ({'frame_ext': None}, 'frame_ext'),
    ({'frame_ext': 'exe'}, 'frame_ext'), ({'frame_ext': ['jpg']}, 'frame_ext'),
    ({'path': 3}, 'path'),
])
def test_bad_sample_json_is_a_decode_error_saying_why(change, reason):
    meta = {**GOOD_META, **change}
    with pytest.raises(DecodeError, match=reason):
        check_sample_meta(meta, 'frames', 8, 'sample 3 of x.tar')


@pytest.mark.parametrize('meta, reason', [
    ({k: v for k, v in GOOD_META.items() if k != 'frame_ext'}, 'frame_ext'),
    ({k: v for k, v in GOOD_META.items() if k != 'label'}, 'label'),
    ([1, 2, 3], 'object'), ('text', 'object'), (None, 'json'),
])
def test_missing_fields_and_other_json_are_decode_errors(meta, reason):
    with pytest.raises(DecodeError, match=reason):
        check_sample_meta(meta, 'frames', 8, 'sample 3 of x.tar')


def test_good_sample_json_passes_in_both_modes():
    assert check_sample_meta(GOOD_META, 'frames', 8, 'x') == GOOD_META
    video = {**GOOD_META, 'video_ext': 'mkv'}
    del video['frame_ext']
    assert check_sample_meta(video, 'video', 8, 'x') == video
    with pytest.raises(DecodeError, match='video_ext'):
        check_sample_meta(GOOD_META, 'video', 8, 'x')


# ---------------------------------------------------------------- the epoch's plan
def dataset(folder, counts, mode, **options):
    """A ShardDataset over dummy shards (the plan and the raw samples need no decoding)."""
    index = write_shards(folder, counts)
    return ShardDataset(index, VideoDataset([], folder, mode, transform=None, seed=3), **options)


def test_the_shard_order_changes_with_the_epoch_and_repeats_within_it(tmp_path):
    data = dataset(str(tmp_path), [2] * 8, 'train')
    orders, samples = [], []
    for epoch in (0, 1, 2, 0):
        data.set_epoch(epoch)
        orders.append(data._shard_order().tolist())
        samples.append(data._pieces(0, data.total))
    assert orders[0] != orders[1] and orders[1] != orders[2] and orders[0] == orders[3]
    assert samples[0] != samples[1] and samples[0] == samples[3]
    assert sorted(orders[1]) == list(range(8))


@pytest.mark.parametrize('replicas, workers', [(3, 1), (1, 3)])
def test_validation_over_three_slots_reads_every_sample_exactly_once(tmp_path, replicas, workers):
    """16 samples in shards of 5, 7 and 4 over 3 loader slots (16 = 3 x 5 + 1): the slot that
    holds the remainder reads it, no sample is read twice."""
    data = dataset(str(tmp_path), [5, 7, 4], 'val')
    data.num_replicas, data.workers = replicas, workers
    read = []
    for rank in range(replicas):
        data.rank = rank
        for worker in range(workers):
            start, count = data._range(rank * workers + worker, 3)
            for index, files in data._raw(data._pieces(start, count)):
                assert files['__key__'] == f'{index:09d}'
                read.append(index)
        assert len(data) == sum(data._range(rank * workers + w, 3)[1] for w in range(workers))
    assert sorted(read) == list(range(16))


def test_training_slots_are_equal_and_cover_every_sample(tmp_path):
    data = dataset(str(tmp_path), [5, 7, 4], 'train')
    ranges = [data._range(slot, 3) for slot in range(3)]
    assert [count for _, count in ranges] == [6, 6, 6]
    positions = {(start + k) % 16 for start, count in ranges for k in range(count)}
    assert positions == set(range(16))
