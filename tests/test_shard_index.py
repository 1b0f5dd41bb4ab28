"""Member indexes of packed shards: DataTool.pack writes one beside each shard (resumably),
a local shard is read through it with a tar header parsed only for the members read, and the
samples and clips are exactly those of walking the tar. A damaged, stale or hostile member
index is named in one warning and the shard walked instead; a truncated shard loses what it
lost before."""
import json
import os
import os.path as osp
import shutil
import tarfile

import pytest
import torch

from DataTool import pack as pack_tool
from datasets import begin_epoch, build_dataset, build_loader, shards
from datasets.shards import (MEMBERS_FORMAT, load_member_index, member_index_name,
                             read_samples, shard_list)
from test_shard_safety import shard_warnings
from test_shards import pack, shard_config


@pytest.fixture(scope='module')
def packed(tiny_root, tmp_path_factory):
    """Folders of shards: the 24 training videos' frames in 4 shards of 6, the 16 validation
    video files in shards of 6, 6 and 4."""
    out = tmp_path_factory.mktemp('indexed')
    return {'frames': pack(tiny_root, out / 'frames', 'train', '--samples-per-shard', '6'),
            'video': pack(tiny_root, out / 'video', 'val_video', '--samples-per-shard', '6'),
            'out': out}


def folder_copy(packed, mode, tmp_path):
    """A copy of the `mode` shard folder to change, and its index.json's path."""
    folder = str(tmp_path / f'{mode}-copy')
    shutil.copytree(str(packed['out'] / mode), folder)
    return folder, osp.join(folder, 'index.json')


def tar_listing(path):
    """(name, header offset, size) of every file member, as tarfile reads the shard."""
    with tarfile.open(path) as archive:
        return [(member.name, member.offset, member.size) for member in archive if member.isfile()]


def index_listing(members):
    """The same triples as the member index `members` (its parsed JSON) lists them."""
    names, position = [], 0
    for key, count in members['samples']:
        names += [f'{key}.{extension}' for extension in
                  members['extensions'][position:position + count]]
        position += count
    return list(zip(names, members['offsets'], members['sizes']))


def assert_indexes_match_their_shards(folder, index):
    """Every shard `index` lists has the member index it names, true to the shard."""
    for entry in index['shards']:
        assert entry['members'] == member_index_name(entry['name'])
        shard = osp.join(folder, entry['name'])
        with open(osp.join(folder, entry['members']), encoding='utf-8') as handle:
            members = json.load(handle)
        assert members['format'] == MEMBERS_FORMAT and members['shard'] == entry['name']
        assert members['shard_bytes'] == osp.getsize(shard) == entry['bytes']
        assert len(members['samples']) == entry['samples']
        assert index_listing(members) == tar_listing(shard)
        load_member_index(osp.join(folder, entry['members']), entry['name'], osp.getsize(shard))


def read_all(url, members=None, **options):
    with shard_warnings() as warnings:
        samples = list(read_samples(url, members=members, **options))
    return samples, [warning.getMessage() for warning in warnings]


def every_third_frame(files, extension):
    """A keep() leaving out most frames, as a sampler does, and the .cls labels."""
    if extension[:5].isdigit():
        return int(extension[:5]) % 3 == 0
    return extension != 'cls'


# ---------------------------------------------------------------- writing
@pytest.mark.parametrize('mode', ['frames', 'video'])
def test_the_packer_writes_a_member_index_per_shard_named_in_index_json(packed, mode):
    folder = str(packed['out'] / mode)
    assert_indexes_match_their_shards(folder, packed[mode])
    assert len(packed[mode]['shards']) > 1
    assert not [name for name in os.listdir(folder) if name.endswith('.tmp')]


def half_written(which):
    """json.dump that, writing the `which`-th member index, writes half of it and stops as an
    interruption does."""
    dump, calls = json.dump, []

    def interrupted(data, handle, **options):
        if '.members.json' in handle.name:
            calls.append(handle.name)
            if len(calls) == which:
                handle.write(json.dumps(data)[:100])
                raise KeyboardInterrupt
        return dump(data, handle, **options)
    return interrupted


def replace_failing_for(suffix):
    """os.replace that stops as an interruption does when it would rename onto `suffix`."""
    replace = os.replace

    def interrupted(source, destination):
        if str(destination).endswith(suffix):
            raise KeyboardInterrupt
        return replace(source, destination)
    return interrupted


@pytest.mark.parametrize('where', ['writing the member index', 'renaming the shard'])
def test_a_resumed_pack_leaves_every_shard_a_correct_member_index(tiny_root, tmp_path, packed,
                                                                  monkeypatch, where):
    """Stopped inside the third shard (its member index half written, or written but the shard
    not yet renamed), then the same command: every shard has its true member index."""
    out = tmp_path / 'resumed'
    if where == 'writing the member index':
        monkeypatch.setattr(pack_tool.json, 'dump', half_written(3))
    else:
        monkeypatch.setattr(pack_tool.os, 'replace', replace_failing_for('-000002.tar'))
    with pytest.raises(KeyboardInterrupt):
        pack(tiny_root, out, 'train', '--samples-per-shard', '6')
    monkeypatch.undo()
    with open(str(out / 'index.json'), encoding='utf-8') as handle:
        assert len(json.load(handle)['shards']) == 2
    stopped_at = {name for name in os.listdir(str(out)) if '-000002.' in name}
    assert stopped_at == ({'train_split1-000002.members.json.tmp', 'train_split1-000002.tar.tmp'}
                          if where == 'writing the member index' else
                          {'train_split1-000002.members.json', 'train_split1-000002.tar.tmp'})
    (out / 'train_split1-000009.members.json.tmp').write_text('{"format"')   # an older stop's
    resumed = pack(tiny_root, out, 'train', '--samples-per-shard', '6')
    assert [entry['samples'] for entry in resumed['shards']] == [6, 6, 6, 6]
    assert_indexes_match_their_shards(str(out), resumed)
    assert not [name for name in os.listdir(str(out)) if name.endswith('.tmp')]
    for entry in resumed['shards']:
        url = str(out / entry['name'])
        assert read_all(url, entry['members']) == read_all(url)


# ---------------------------------------------------------------- reading: the same samples
@pytest.mark.parametrize('mode', ['frames', 'video'])
@pytest.mark.parametrize('keep', [None, every_third_frame], ids=['all', 'every third frame'])
@pytest.mark.parametrize('skip, take', [(0, None), (2, 3), (1, 1), (4, 100), (0, 0)])
def test_samples_through_the_index_are_those_of_the_walk(packed, mode, keep, skip, take):
    """Every key, kept member and its bytes, the parsed meta, the order of samples and of
    each sample's members, for any skip and take."""
    for entry in packed[mode]['shards']:
        url = str(packed['out'] / mode / entry['name'])
        indexed, warnings = read_all(url, entry['members'], skip=skip, take=take, keep=keep)
        walked, _ = read_all(url, skip=skip, take=take, keep=keep)
        assert indexed == walked and not warnings
        assert [list(files) for files in indexed] == [list(files) for files in walked]
        expected = max(min(entry['samples'] - skip, 100 if take is None else take), 0)
        assert len(indexed) == expected
        assert [files['__position__'] for files in indexed] == list(range(skip, skip + expected))


def dataset_outputs(cfg, split):
    """Everything a ShardDataset yields in one epoch, read in this process."""
    dataset = build_dataset(cfg, split)
    dataset.set_epoch(1)
    return list(iter(dataset))


def without_member_indexes(index_path, how):
    """The shards as packed before member indexes ('old'), or with the files gone ('deleted')."""
    with open(index_path, encoding='utf-8') as handle:
        index = json.load(handle)
    for entry in index['shards']:
        if how == 'deleted':
            os.remove(osp.join(osp.dirname(index_path), entry['members']))
        else:
            del entry['members']
    with open(index_path, 'w', encoding='utf-8') as handle:
        json.dump(index, handle)


@pytest.mark.parametrize('mode, how', [('frames', 'old'), ('frames', 'deleted'), ('video', 'old')])
def test_clips_are_bit_identical_with_and_without_the_index(tiny_root, tmp_path, packed, mode, how):
    folder, index = folder_copy(packed, mode, tmp_path)
    cfg = shard_config(tiny_root, tmp_path, index, index)
    splits = ('val', 'train') if mode == 'frames' else ('val',)
    with shard_warnings() as warnings:
        indexed = {split: dataset_outputs(cfg, split) for split in splits}
    assert not warnings
    without_member_indexes(index, how)
    with shard_warnings() as warnings:
        walked = {split: dataset_outputs(cfg, split) for split in splits}
    for split in splits:
        assert len(indexed[split]) == len(walked[split]) == packed[mode]['samples']
        for (clip, label, number, bad), expected in zip(indexed[split], walked[split]):
            assert torch.equal(clip, expected[0]) and (label, number, bad) == expected[1:]
            assert bad == -1
    if how == 'old':
        assert not warnings
    else:                      # one per shard read (each split reads each shard once)
        assert len(warnings) == len(packed[mode]['shards']) * len(splits)
        assert all('.members.json' in w.getMessage() and 'cannot read it' in w.getMessage()
                   for w in warnings)


# ---------------------------------------------------------------- reading: the work done
@pytest.fixture
def header_parses(monkeypatch):
    """The number of tar headers parsed (each is checksummed once) while the test runs."""
    calls = []
    check = shards._check_checksum

    def counting(header, url):
        calls.append(url)
        return check(header, url)
    monkeypatch.setattr(shards, '_check_checksum', counting)
    return calls


def members_read(files):
    """The names of the members read into a sample's dict."""
    return [name for name in files if name not in ('__key__', '__position__', 'meta', 'wanted')]


def test_only_the_members_read_have_their_headers_parsed(tiny_root, tmp_path, packed, header_parses):
    """A validation epoch of TSN clips (5 of 12-16 frames a sample): one header parse a member
    read, against one a member in the shard when walking."""
    index = str(packed['out'] / 'frames' / 'index.json')
    dataset = build_dataset(shard_config(tiny_root, tmp_path, index, index), 'val')
    read = sum(len(members_read(files)) for _, files in dataset._raw(dataset._pieces(0, 24)))
    in_shards = sum(len(tar_listing(url)) for url in shard_list(index)[0])
    assert len(header_parses) == read and read < in_shards / 2
    del header_parses[:]
    dataset.member_indexes = [None] * len(dataset.urls)        # shards packed without one
    assert sum(len(members_read(files)) for _, files in dataset._raw(dataset._pieces(0, 24))) == read
    assert len(header_parses) == in_shards


def test_a_stream_walks_the_tar_and_opens_no_member_index(packed, header_parses, monkeypatch):
    entry = packed['frames']['shards'][1]
    path = str(packed['out'] / 'frames' / entry['name'])
    opened = open_spy(monkeypatch)
    streamed, warnings = read_all(f'pipe:cat {path}', entry['members'], keep=every_third_frame)
    assert streamed == read_all(path, keep=every_third_frame)[0] and not warnings
    assert len(header_parses) == 2 * len(tar_listing(path))
    assert not [name for name in opened if name.endswith('.members.json')]


# ---------------------------------------------------------------- damaged member indexes
def edit(change):
    """Damage: the member index's JSON changed in place by change(members)."""
    def damage(path, folder):
        with open(path, encoding='utf-8') as handle:
            members = json.load(handle)
        change(members)
        with open(path, 'w', encoding='utf-8') as handle:
            json.dump(members, handle)
    return damage


def raw(data):
    def damage(path, folder):
        with open(path, 'wb') as handle:
            handle.write(data)
    return damage


def set_field(field, value):
    return edit(lambda members: members.__setitem__(field, value))


def swap_frames_of_sample_3(members):
    """A lie the checks at loading cannot see: two frames of sample 3 named the wrong way round."""
    first = sum(count for _, count in members['samples'][:3])
    members['extensions'][first + 2:first + 4] = members['extensions'][first + 2:first + 4][::-1]


def another_shards_index(path, folder):
    shutil.copyfile(osp.join(folder, 'train_split1-000000.members.json'), path)


def another_shards_index_disguised(path, folder):
    """Shard 0's member index claiming shard 1's name and size: found by the first header read."""
    another_shards_index(path, folder)
    edit(lambda members: members.update(shard='train_split1-000001.tar', shard_bytes=osp.getsize(
        osp.join(folder, 'train_split1-000001.tar'))))(path, folder)


def shift_offset(member, by):
    return edit(lambda members: members['offsets'].__setitem__(member, members['offsets'][member] + by))


DAMAGED = {                   # what is done to it, and the reason the warning gives
    'garbage bytes': (raw(bytes(range(256)) * 8), 'not JSON'),
    'empty': (raw(b''), 'not JSON'),
    'not UTF-8': (raw(b'{"format": "\xff"}'), 'not JSON'),
    'half of it': (lambda path, folder: os.truncate(path, osp.getsize(path) // 2), 'not JSON'),
    'deeply nested': (raw(b'[' * 100000), 'not JSON'),
    'a JSON list': (raw(b'[1, 2, 3]'), 'format'),
    'another format': (set_field('format', 'dlac-shard-members/0'), 'format'),
    'missing file': (lambda path, folder: os.remove(path), 'cannot read it'),
    'a folder': (lambda path, folder: (os.remove(path), os.mkdir(path)), 'cannot read it'),
    'shard_bytes a string': (set_field('shard_bytes', '829440'), 'the shard is'),
    'shard_bytes one block more': (edit(lambda m: m.__setitem__('shard_bytes', m['shard_bytes'] + 512)),
                                   'the shard is'),
    'samples a dict': (set_field('samples', {'000000006': 15}), '"samples"'),
    'a sample count of True': (edit(lambda m: m['samples'][0].__setitem__(1, True)), 'sample 0 is'),
    'a sample count of 0': (edit(lambda m: m['samples'][0].__setitem__(1, 0)), 'sample 0 is'),
    'a key with a dot': (edit(lambda m: m['samples'][0].__setitem__(0, '000000006.x')),
                         'sample 0 has the key'),
    'a key twice in a row': (edit(lambda m: m['samples'][1].__setitem__(0, m['samples'][0][0])),
                             'sample 1 has the key'),
    'one member too few': (edit(lambda m: m['samples'][-1].__setitem__(1, m['samples'][-1][1] - 1)),
                           'members in "samples"'),
    'an extension with a slash': (edit(lambda m: m['extensions'].__setitem__(5, 'a/b.jpg')),
                                  '"extensions"'),
    'an extension a number': (edit(lambda m: m['extensions'].__setitem__(5, 7)), '"extensions"'),
    'offsets strings': (edit(lambda m: m.__setitem__('offsets', [str(o) for o in m['offsets']])),
                        '"offsets"'),
    'an offset a float': (edit(lambda m: m['offsets'].__setitem__(3, m['offsets'][3] + 0.5)),
                          '"offsets"'),
    'an offset too large for int64': (edit(lambda m: m['offsets'].__setitem__(3, 2 ** 64)),
                                      '"offsets"'),
    'sizes nested': (edit(lambda m: m.__setitem__('sizes', [[s] for s in m['sizes']])), '"sizes"'),
    'sizes missing': (edit(lambda m: m.pop('sizes')), '"sizes"'),
    'a negative offset': (edit(lambda m: m['offsets'].__setitem__(0, -512)), 'negative or past'),
    'an offset past the end': (shift_offset(-1, 1 << 40), 'negative or past'),
    'a size past the end': (edit(lambda m: m['sizes'].__setitem__(-1, 1 << 40)), 'negative or past'),
    'the last member over the end-of-archive block': (edit(lambda m: m['offsets'].__setitem__(
        -1, m['shard_bytes'] - 512)), 'end-of-archive'),
    'an offset off its block': (shift_offset(4, 1), '512-byte block'),
    'overlapping members': (shift_offset(4, -512), 'overlap'),
    'members out of order': (edit(lambda m: m['offsets'].__setitem__(slice(3, 5), m['offsets'][3:5][::-1])),
                             'overlap'),
    "another shard's index": (another_shards_index, 'it indexes the shard'),
    "another shard's index, disguised": (another_shards_index_disguised, 'the index lists'),
    'two frames named the wrong way round': (edit(swap_frames_of_sample_3), '000000009.00000.jpg'),
}


def open_spy(monkeypatch):
    """The paths shards.py opens from now on."""
    opened = []

    def spy(path, *args, **kw):
        opened.append(osp.abspath(path))
        return open(path, *args, **kw)
    monkeypatch.setattr(shards, 'open', spy, raising=False)
    return opened


def tree(folder):
    return sorted((root, name, osp.getsize(osp.join(root, name)))
                  for root, _, names in os.walk(folder) for name in names)


@pytest.mark.parametrize('damage', sorted(DAMAGED))
def test_a_damaged_member_index_is_named_once_and_the_shard_walked(tmp_path, packed, damage,
                                                                   monkeypatch):
    folder, _ = folder_copy(packed, 'frames', tmp_path)
    entry = packed['frames']['shards'][1]
    url, members = osp.join(folder, entry['name']), osp.join(folder, entry['members'])
    damage, reason = DAMAGED[damage]
    damage(members, folder)
    before, opened = tree(str(tmp_path)), open_spy(monkeypatch)
    for options in ({}, {'skip': 2, 'take': 3}, {'keep': every_third_frame}):
        samples, warnings = read_all(url, entry['members'], **options)
        assert samples == read_all(url, **options)[0] and len(samples) == min(6 - options.get(
            'skip', 0), options.get('take', 6))
        assert len(warnings) == 1 and members in warnings[0] and url in warnings[0]
        assert 'walking its tar' in warnings[0] and reason in warnings[0]
    assert tree(str(tmp_path)) == before
    assert {osp.dirname(path) for path in opened} == {osp.abspath(folder)}


def test_a_member_index_larger_than_the_limit_is_not_read_whole(tmp_path, packed, monkeypatch):
    folder, _ = folder_copy(packed, 'frames', tmp_path)
    entry = packed['frames']['shards'][0]
    monkeypatch.setattr(shards, 'MEMBERS_LIMIT', 1000)
    samples, warnings = read_all(osp.join(folder, entry['name']), entry['members'])
    assert len(samples) == 6 and len(warnings) == 1 and 'larger than 1000 bytes' in warnings[0]


@pytest.mark.parametrize('name', ['../outside.members.json', '/tmp/outside.members.json',
                                  'pipe:cat outside.members.json', '.hidden.members.json', '',
                                  7, ['a.members.json']])
def test_a_member_index_named_outside_the_shard_folder_is_not_opened(tmp_path, packed, monkeypatch,
                                                                     name):
    """Even a true member index beside the folder is not read when index.json names it so."""
    folder, _ = folder_copy(packed, 'frames', tmp_path)
    entry = packed['frames']['shards'][1]
    shutil.copyfile(osp.join(folder, entry['members']), str(tmp_path / 'outside.members.json'))
    url = osp.join(folder, entry['name'])
    opened = open_spy(monkeypatch)
    samples, warnings = read_all(url, name)
    assert samples == read_all(url)[0]
    assert len(warnings) == 1 and repr(name)[:20] in warnings[0] and 'plain file name' in warnings[0]
    assert opened == [osp.abspath(url)] * 2


# ---------------------------------------------------------------- truncated shards
def test_a_truncated_shard_with_an_index_loses_what_the_walk_loses(tiny_root, tmp_path, packed):
    folder, index = folder_copy(packed, 'frames', tmp_path)
    entry = packed['frames']['shards'][1]
    url = osp.join(folder, entry['name'])
    with open(url, 'r+b') as handle:
        handle.truncate(osp.getsize(url) // 2)
    samples, warnings = read_all(url, entry['members'])
    assert samples == read_all(url)[0] and 0 < len(samples) < 6
    assert len(warnings) == 2 and entry['members'] in warnings[0] and 'the shard is' in warnings[0]
    assert 'truncated or damaged after' in warnings[1]
    cfg = shard_config(tiny_root, tmp_path, index, index)
    loader = build_loader(cfg, build_dataset(cfg, 'val'), 'val', batch_size=4)
    begin_epoch(loader, 0)
    with shard_warnings() as logged:
        bad = [b for batch in loader for b in batch[3].tolist() if b >= 0]
    assert sorted(bad) == list(range(6 + len(samples), 12))       # the lost ones, counted
    assert any('truncated or damaged after' in record.getMessage() for record in logged)
