"""Unpacking untrusted archives: hostile members are refused before anything is written outside
the destination, size limits stop bombs, and the DataTools' flags set those limits.

The hostile archives are built here with tarfile and zipfile; each test checks the message
and that nothing outside the destination changed."""
import io
import os
import os.path as osp
import re
import sys
import tarfile
import zipfile

import pytest

from DataTool.common import archive_safety, archives
from DataTool.common.archives import ArchiveError, unpack
from DataTool.common.builder import run_tool
from DataTool.HMDB51 import hmdb51
from DataTool.UCF101 import ucf101

MB = 1024 ** 2
REG, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


# ---------------------------------------------------------------- helpers
def make_tar(path, members):
    """members: (name, kind=REG, linkname='', data=b'') tuples; compressed as the suffix says."""
    path = str(path)
    mode = {'.gz': 'w:gz', '.bz2': 'w:bz2', '.xz': 'w:xz'}.get(osp.splitext(path)[1], 'w')
    with tarfile.open(path, mode) as tar:
        for name, *fields in members:
            kind, link, data = (list(fields) + [REG, '', b''][len(fields):])[:3]
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data)
            info.mode = 0o755 if kind == DIR else 0o644
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def make_zip(path, files, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, 'w', compression) as handle:
        for name, data in files.items():
            handle.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return str(path)


def fill_in(members, outside):
    """Members with '{outside}' in their names or link targets made real."""
    return [tuple(x.format(outside=outside) if isinstance(x, str) else x for x in member)
            for member in members]


@pytest.fixture
def site(tmp_path):
    """(tmp, tmp/dest where archives go, tmp/outside holding passwd that no archive may touch,
    a function listing everything outside dest with its content, to compare before/after)."""
    dest, outside = tmp_path / 'dest', tmp_path / 'outside'
    outside.mkdir()
    (outside / 'passwd').write_text('root:x:0:0\n')

    def outside_dest():
        state = {}
        for folder, dirs, files in os.walk(tmp_path):
            dirs[:] = [d for d in dirs if osp.join(folder, d) != str(dest)]
            for name in dirs + files:
                path = osp.join(folder, name)
                state[path] = ('link:' + os.readlink(path) if osp.islink(path) else
                               open(path, 'rb').read() if osp.isfile(path) else 'folder')
        return state

    return tmp_path, dest, outside, outside_dest


def refused(archive, dest, match, **limits):
    """The message of the ArchiveError that unpacking raises, checked against `match`."""
    with pytest.raises(ArchiveError, match=match) as caught:
        unpack(str(archive), str(dest), **limits)
    assert 'damaged' not in str(caught.value)
    return str(caught.value)


def symlink_chain_tar(path, dest, target_folder, levels=16):
    """The CVE-2025-4517 technique. Folders with long names, each reached through a one-letter
    symlink, so 'a/b/.../p' is a short name for a real path just under PATH_MAX; in it a link
    'lll...' climbing back to dest ('../' x 16), whose own real path is over PATH_MAX; then
    'escape' -> 'a/b/.../p/lll.../..' x 17 + target_folder. os.path.realpath cannot lstat past
    PATH_MAX, takes 'lll...' for a plain name, counts 17 '..' back to dest and believes
    'escape' stays there; the system follows the link to dest and climbs 17 levels to '/', so
    'escape' leads to target_folder. Last, a file written through 'escape'."""
    os.makedirs(dest, exist_ok=True)
    real_dest = osp.realpath(dest)
    path_max = os.pathconf(real_dest, 'PC_PATH_MAX')
    name_length = min(255, (path_max - 2 - len(real_dest)) // levels - 1)
    assert len(real_dest) + levels * (name_length + 1) + 255 > path_max, 'tmp path too long'
    assert real_dest.count('/') <= levels, 'tmp path too deep'
    long_name = 'd' * name_length
    steps = 'abcdefghijklmnopqrstuvwxyz'[:levels]
    members, prefix = [], ''
    for step in steps:
        members += [(prefix + long_name, DIR), (prefix + step, SYM, long_name)]
        prefix += long_name + '/'
    climb = '/'.join(steps) + '/' + 'l' * 254
    escape = climb + '/..' * (levels + 1) + '/' + osp.realpath(target_folder).lstrip('/')
    members += [(climb, SYM, '../' * levels), ('escape', SYM, escape),
                ('escape/pwned.txt', REG, '', b'written outside\n')]
    return make_tar(path, members)


# ---------------------------------------------------------------- hostile tars
def test_symlink_chain_past_path_max_is_refused(site):
    """Unpacked with Python 3.11.7's filter='data' alone, this archive writes
    outside/pwned.txt (the code before these checks did)."""
    tmp, dest, outside, outside_dest = site
    archive = symlink_chain_tar(tmp / 'chain.tar', dest, outside)
    before = outside_dest()
    message = refused(archive, dest, r"chain.tar: refused as unsafe: member 'a/b/c/.*' leads "
                                     r'to a path longer than the system allows \(PATH_MAX')
    assert f'nothing was written outside {dest}' in message
    assert outside_dest() == before and not (outside / 'pwned.txt').exists()


@pytest.mark.parametrize('members, match', [
    ([('../escaped.txt', REG, '', b'x')], r"member '\.\./escaped\.txt' leaves the destination"),
    ([('a/../../escaped.txt', REG, '', b'x')],
     r"member 'a/\.\./\.\./escaped\.txt' leaves the destination"),
    ([('{outside}/absolute.txt', REG, '', b'x')],
     r"member '/.*/outside/absolute.txt' has an absolute path"),
    ([('link', SYM, '../outside'), ('link/through.txt', REG, '', b'x')],
     r"member 'link' is a symlink to '\.\./outside', outside the destination"),
    ([('link', SYM, '{outside}'), ('link/through.txt', REG, '', b'x')],
     r"member 'link' is a symlink to an absolute path"),
    ([('no/folder/yet', SYM, '../../../outside/passwd')],
     r"member 'no/folder/yet' is a symlink to '\.\./\.\./\.\./outside/passwd', outside"),
    ([('pw', LNK, '{outside}/passwd')],
     r"member 'pw' is a hard link to '/.*/passwd', which has an absolute path"),
    ([('pw', LNK, '../outside/passwd')],
     r"member 'pw' is a hard link to '\.\./outside/passwd', which leaves the destination"),
    ([('null', tarfile.CHRTYPE)], r"member 'null' is a device file"),
    ([('pipe', tarfile.FIFOTYPE)], r"member 'pipe' is a FIFO"),
], ids=['dotdot', 'dotdot-inside', 'absolute', 'symlink-out-then-file', 'absolute-symlink',
        'symlink-climbs', 'hardlink-absolute', 'hardlink-relative', 'device', 'fifo'])
def test_hostile_tar_member_is_refused(site, members, match):
    tmp, dest, outside, outside_dest = site
    archive = make_tar(tmp / 'hostile.tar.gz',
                       [('fine.txt', REG, '', b'ok')] + fill_in(members, outside))
    before = outside_dest()
    refused(archive, dest, r'hostile.tar.gz: refused as unsafe: ' + match)
    assert outside_dest() == before


def test_links_extracted_earlier_are_followed_when_checking_later_members(site):
    tmp, dest, _, outside_dest = site
    # 'a' is dest itself, so 'a/b' -> '..' is a link to dest's parent
    chain = make_tar(tmp / 'chain.tar', [('a', SYM, '.'), ('a/b', SYM, '..'),
                                         ('a/b/outside/x.txt', REG, '', b'x')])
    # 'l' looks inside while 's/d' does not exist; 's/d' -> '.' would then make it climb out
    later = make_tar(tmp / 'later.tar', [('s', DIR), ('l', SYM, 's/d/../..'), ('s/d', SYM, '.'),
                                         ('l/outside/x.txt', REG, '', b'x')])
    before = outside_dest()
    refused(chain, dest, r"chain.tar: refused as unsafe: member 'a/b' is a symlink to '\.\.', "
                         r'outside the destination')
    refused(later, dest, r"later.tar: refused as unsafe: member 'l' climbs \('\.\.'\) out of a "
                         r'folder that does not exist yet')
    assert outside_dest() == before


@pytest.mark.parametrize('kind', ['tar', 'zip'])
def test_link_already_in_the_destination_is_not_written_through(site, kind):
    tmp, dest, outside, outside_dest = site
    dest.mkdir()
    os.symlink('../outside', dest / 'shared')
    files = {'shared/x.txt': b'x'}
    archive = (make_tar(tmp / 'a.tar', [(name, REG, '', data) for name, data in files.items()])
               if kind == 'tar' else make_zip(tmp / 'a.zip', files))
    before = outside_dest()
    refused(archive, dest, rf"a.{kind}: refused as unsafe: member 'shared/x.txt' leaves the "
                           rf'destination through a link: it would be written to {outside}/x.txt')
    assert outside_dest() == before


# ---------------------------------------------------------------- hostile zips
@pytest.mark.parametrize('name, match', [
    ('../evil.txt', 'leaves the destination'),
    ('a/../../evil.txt', 'leaves the destination'),
    ('a\\..\\..\\evil.txt', 'leaves the destination'),
    ('/tmp/evil.txt', 'has an absolute path'),
    ('C:/evil.txt', 'starts with a drive letter'),
])
def test_zip_member_that_leaves_is_refused(site, name, match):
    tmp, dest, _, outside_dest = site
    archive = make_zip(tmp / 'evil.zip', {'fine.txt': b'ok', name: b'pwned'})
    before = outside_dest()
    refused(archive, dest, re.escape(f'evil.zip: refused as unsafe: member {name!r} {match}'))
    assert outside_dest() == before and os.listdir(dest) == ['fine.txt']


# ---------------------------------------------------------------- sizes
def test_zip_bomb_is_refused_until_the_limit_is_raised(site):
    tmp, dest, _, outside_dest = site
    archive = make_zip(tmp / 'bomb.zip', {'zeros.bin': bytes(4 * MB)})
    assert osp.getsize(archive) < 10_000                      # about 1000 times smaller
    before = outside_dest()
    refused(archive, dest, r'bomb.zip: refused: its members, which declare 4.0MB, would bring '
                           r'what is unpacked to 4.0MB, over the limit of 100 times the size of '
                           r'bomb.zip .* \(--max-ratio raises it')         # the default
    refused(archive, dest, r'over the limit of 2.0MB on the unpacked size \(--max-unpacked-size '
                           r'raises it', max_total_bytes=2 * MB, max_ratio=10_000)
    assert os.listdir(dest) == [] and outside_dest() == before      # refused before writing
    unpack(archive, str(dest), max_ratio=10_000)
    assert osp.getsize(dest / 'zeros.bin') == 4 * MB


def test_bytes_written_are_counted_when_declared_sizes_lie(site, monkeypatch):
    """The declared sizes are checked first; the bytes written are what protects the disk."""
    tmp, dest, _, outside_dest = site
    zipped = make_zip(tmp / 'liar.zip', {'small.txt': b'x' * 1000, 'zeros.bin': bytes(4 * MB)})
    tarred = make_tar(tmp / 'liar.tar.gz', [('zeros.bin', REG, '', bytes(3 * MB)),
                                            ('more.bin', REG, '', bytes(3 * MB))])
    monkeypatch.setattr(archive_safety.UnpackBudget, 'check_declared', lambda *args: None)
    before = outside_dest()
    refused(zipped, dest, r"liar.zip: refused: member 'zeros.bin' would bring what is unpacked "
                          r'to 2.0MB, over the limit of 1.5MB', max_total_bytes=3 * MB // 2,
            max_ratio=1e6)
    assert os.listdir(dest) == ['small.txt']                  # the partial file is removed
    refused(tarred, dest / 'tar', r"liar.tar.gz: refused: member 'more.bin' would bring what is "
                                  r'unpacked to 6.0MB, over the limit of 5.0MB',
            max_total_bytes=5 * MB, max_ratio=1e6)
    assert outside_dest() == before


def test_nested_archives_share_one_limit_and_a_depth(site):
    tmp, dest, _, outside_dest = site
    inner = {name: make_zip(tmp / name, {f'{name}.bin': os.urandom(40_000)}, zipfile.ZIP_STORED)
             for name in ('inner1.zip', 'inner2.zip')}
    outer = make_zip(tmp / 'outer.zip', {name: open(path, 'rb').read()
                                         for name, path in inner.items()}, zipfile.ZIP_STORED)
    level = make_zip(tmp / 'level4.zip', {'deep.txt': b'deep'})
    for depth in (3, 2, 1):
        level = make_zip(tmp / f'level{depth}.zip', {osp.basename(level): open(level, 'rb').read()})
    before = outside_dest()
    refused(outer, dest, r'inner2.zip: refused: its members, which declare 39.1KB, would bring '
                         r'what is unpacked \(with outer.zip\) to 156.\dKB, over the limit of '
                         r'146.0KB', nested=True, max_total_bytes=146 * 1024)
    refused(level, dest / 'deep', r'level4.zip: refused: an archive nested 4 levels deep in '
                                  r'.*level1.zip, and at most 3 are unpacked', nested=True)
    assert outside_dest() == before
    unpack(outer, str(tmp / 'roomy'), nested=True, max_total_bytes=200 * 1024)
    assert sorted(os.listdir(tmp / 'roomy')) == ['.unpacked_outer.zip', 'inner1.zip.bin',
                                                 'inner2.zip.bin']
    unpack(level, str(tmp / 'deeper'), nested=True, max_depth=4)
    assert (tmp / 'deeper' / 'deep.txt').read_bytes() == b'deep'


# ---------------------------------------------------------------- what must still work
def test_benign_archive_with_inner_links_unpacks_at_its_exact_size(site):
    tmp, dest, _, outside_dest = site
    archive = make_tar(tmp / 'good.tar.bz2', [
        ('.', DIR),
        ('early', SYM, 'v2/b.txt'),                  # to a file that comes later
        ('v1', DIR),
        ('v1/a.txt', REG, '', b'a' * 1000),
        ('v2/b.txt', REG, '', b'b' * 24),            # its folder has no member
        ('latest', SYM, 'v2'),
        ('v2/to_a', SYM, '../v1/a.txt'),
        ('latest/hard.txt', LNK, 'v1/a.txt'),
        ('latest/new.txt', REG, '', b'c' * 10),      # written through an inner link
    ])
    zipped = make_zip(tmp / 'good.zip', {'folder/': b'', 'folder/x.txt': b'x', 'y.txt': b'y'})
    before = outside_dest()
    unpack(archive, str(dest), max_total_bytes=1034, max_ratio=1e-9)
    assert (dest / 'early').read_bytes() == b'b' * 24
    assert (dest / 'latest' / 'to_a').read_bytes() == b'a' * 1000
    assert os.stat(dest / 'v2' / 'hard.txt').st_ino == os.stat(dest / 'v1' / 'a.txt').st_ino
    assert (dest / 'v2' / 'new.txt').read_bytes() == b'c' * 10
    unpack(zipped, str(dest / 'z'), max_total_bytes=2)
    assert (dest / 'z' / 'folder' / 'x.txt').read_bytes() == b'x'
    os.remove(dest / 'z' / 'y.txt')
    unpack(zipped, str(dest / 'z'), max_total_bytes=2)       # the marker: not unpacked again
    assert not (dest / 'z' / 'y.txt').exists() and outside_dest() == before


@pytest.mark.parametrize('kind', ['truncated tar.gz', 'corrupt zip data'])
def test_damaged_archive_is_damaged_not_refused(site, kind):
    tmp, dest, _, outside_dest = site
    if kind == 'truncated tar.gz':
        archive = make_tar(tmp / 'cut.tar.gz', [('a.bin', REG, '', os.urandom(50_000))])
        data = open(archive, 'rb').read()[:25_000]
    else:
        archive = make_zip(tmp / 'bad.zip', {'a.txt': b'hello world ' * 5000})
        data = bytearray(open(archive, 'rb').read())
        data[40:60] = b'\xff' * 20                 # inside the deflate stream
    open(archive, 'wb').write(bytes(data))
    before = outside_dest()
    with pytest.raises(ArchiveError, match=r'(cut.tar.gz|bad.zip): damaged or incomplete '
                                           r'archive .*; download it again'):
        unpack(archive, str(dest))
    assert outside_dest() == before


def test_tar_needs_a_python_with_extraction_filters(site, monkeypatch, capsys):
    tmp, dest, _, outside_dest = site
    monkeypatch.delattr(tarfile, 'data_filter')
    archive = make_tar(tmp / 'a.tar', [('a.txt', REG, '', b'a')])
    (tmp / 'root').mkdir()
    make_tar(tmp / 'root' / 'UCF101TrainTestSplits-RecognitionTask.tar',
             [('ucfTrainTestlist/classInd.txt', REG, '', b'1 A\n')])
    before = outside_dest()
    with pytest.raises(ArchiveError, match=r'cannot unpack .*a.tar safely: this Python .* has no '
                                           r'tarfile extraction filters; use Python 3.8.17\+, '
                                           r'3.9.17\+, 3.10.12\+, 3.11.4\+ or 3.12\+'):
        unpack(archive, str(dest))
    assert not (dest / 'a.txt').exists()
    code = run_tool(ucf101.main, ['--root', str(tmp / 'root'), '--out', str(dest / 'o')])
    assert code == 2 and 'use Python 3.8.17+, 3.9.17+' in capsys.readouterr().err
    assert outside_dest() == before


# ---------------------------------------------------------------- RAR, through a tool
FAKE_RAR_TOOL = ('import sys, tarfile; '
                 "tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='fully_trusted')")


@pytest.fixture
def fake_rar_tool(monkeypatch):
    """A 'RAR tool' that unpacks a tar as told, links and all, as unrar would a hostile rar."""
    monkeypatch.setattr(archives, 'find_rar_tool',
                        lambda: (sys.executable, ['-c', FAKE_RAR_TOOL, '{archive}', '{dest}']))


@pytest.mark.parametrize('members, match', [
    ([('top', SYM, '../outside')],        # inside dest, but not once moved out of its folder
     r"refused as unsafe: member 'top' is a symlink to '\.\./outside', outside the destination"),
    ([('abs', SYM, '/etc')], r"refused as unsafe: member 'abs' is a symlink to an absolute path"),
    ([('pw', LNK, '{outside}/passwd')],
     r"refused as unsafe: member 'pw' is a hard link to a file outside"),
    ([('pipe', tarfile.FIFOTYPE)],
     r"refused as unsafe: member 'pipe' is a device file, FIFO or socket"),
    ([('big.bin', REG, '', bytes(2 * MB))],
     r'refused: its members, 2.0MB unpacked, would bring .* over the limit of 1.0MB'),
], ids=['symlink-out', 'absolute-symlink', 'hardlink-out', 'fifo', 'too-big'])
def test_rar_is_checked_before_it_is_moved_into_place(site, fake_rar_tool, members, match):
    tmp, dest, outside, outside_dest = site
    archive = tmp / 'hostile.rar'
    os.rename(make_tar(tmp / 'hostile.tar', [('fine.txt', REG, '', b'ok')]
                       + fill_in(members, outside)), archive)
    before = outside_dest()
    refused(archive, dest, 'hostile.rar: ' + match, max_total_bytes=MB)
    assert os.listdir(dest) == [] and outside_dest() == before


def test_rar_content_is_moved_into_place(site, fake_rar_tool):
    tmp, dest, _, outside_dest = site
    archive = tmp / 'good.rar'
    os.rename(make_tar(tmp / 'good.tar', [('v1/a.txt', REG, '', b'a'), ('latest', SYM, 'v1')]),
              archive)
    (dest / 'v1').mkdir(parents=True)
    (dest / 'v1' / 'mine.txt').write_text('kept')
    before = outside_dest()
    unpack(str(archive), str(dest), max_total_bytes=1)
    assert (dest / 'latest' / 'a.txt').read_bytes() == b'a' and (dest / 'v1' / 'mine.txt').exists()
    assert sorted(os.listdir(dest)) == ['.unpacked_good.rar', 'latest', 'v1']
    assert outside_dest() == before


# ---------------------------------------------------------------- the DataTools' flags
def test_datatool_flags_reach_unpack(tmp_path, monkeypatch):
    calls = []

    def record(archive, dest, **options):
        calls.append(options)
        raise ArchiveError('recorded')
    monkeypatch.setattr(hmdb51, 'unpack', record)
    (tmp_path / 'test_train_splits.zip').write_bytes(b'')
    base = ['--root', str(tmp_path), '--out', str(tmp_path / 'o')]
    for argv in (base, base + ['--max-unpacked-size', '2TB', '--max-ratio', '250']):
        assert run_tool(hmdb51.main, argv) == 2
    assert calls == [{'nested': True, 'max_total_bytes': 1024 ** 4, 'max_ratio': 100.0},
                     {'nested': True, 'max_total_bytes': 2 * 1024 ** 4, 'max_ratio': 250.0}]


def test_datatool_limit_refusal_exits_2_naming_the_flag(site, capsys):
    tmp, dest, _, outside_dest = site
    (tmp / 'root').mkdir()
    lines = ''.join(f'ApplyEyeMakeup/v_ApplyEyeMakeup_g{g:02d}_c01.avi 1\n' for g in range(400))
    make_zip(tmp / 'root' / 'UCF101TrainTestSplits-RecognitionTask.zip',
             {'ucfTrainTestlist/trainlist01.txt': lines.encode()})
    before = outside_dest()
    code = run_tool(ucf101.main, ['--root', str(tmp / 'root'), '--out', str(dest),
                                  '--max-unpacked-size', '8KB'])
    error = capsys.readouterr().err
    assert code == 2
    assert (f'RecognitionTask.zip: refused: its members, which declare '
            f'{archives.format_size(len(lines))}') in error
    assert 'over the limit of 8.0KB on the unpacked size (--max-unpacked-size raises it' in error
    assert not [names for _, _, names in os.walk(dest) if names]       # no file written
    assert outside_dest() == before
