"""Unpacking the archives datasets ship in (.zip, .tar[.gz|.bz2|.xz], .rar), nested ones too.

Zip and tar go through the standard library. RAR needs an outside program (the format's
decoder is not free software); the first of unrar, 7z, bsdtar or unar found on PATH is used,
and when there is none the error says what to install. HMDB51 ships a rar of rars: `unpack`
with `nested=True` unpacks every archive found inside as well, into the folder it sits in.

A download is untrusted input, so nothing is written outside the destination, ever:
- every zip and tar member is checked before it is written, in archive order, against what
  is already on disk: a relative name without '..'; the real path it would be written to
  (links already unpacked followed, strictly: a path the system cannot resolve is refused, not
  guessed at) inside the destination; links that point inside; no device file or FIFO.
  tarfile's 'data' filter runs as well (archive_safety says why it is not enough alone);
- a RAR tool unpacks into a fresh folder inside the destination, which is walked (links not
  followed) before anything is moved into place;
- the whole unpacking (outer archive and every archive inside it) may write at most
  `max_total_bytes`, and at most `max_ratio` times the outer archive's size (plus 1MB, so that
  a tiny archive of text is never refused); checked on the sizes the members declare before
  anything is written, then on the bytes written. Datasets' videos and JPEG frames are
  compressed already (they unpack to about their archive's size), annotation text to 5-20
  times it; a zip bomb to thousands of times.
"""
import os
import os.path as osp
import platform
import shutil
import subprocess
import tarfile
import zipfile
import zlib

from DataTool.common.archive_safety import (ArchiveError, Refused, UnpackBudget, check_tar_member,
                                            check_unpacked_folder, format_size, member_target,
                                            path_max_of, unsafe_member_error)

TAR_SUFFIXES = ('.tar', '.tar.gz', '.tgz', '.tar.bz2', '.tbz2', '.tar.xz', '.txz')
ARCHIVE_SUFFIXES = ('.zip', '.rar') + TAR_SUFFIXES

DEFAULT_MAX_TOTAL_BYTES = 1024 ** 4      # 1TB: more than Kinetics-700 unpacked
DEFAULT_MAX_RATIO = 100.0                # unpacked size / archive size
DEFAULT_MAX_DEPTH = 3                    # archives within archives (HMDB51 needs 2)
TAR_FILTER_PYTHONS = '3.8.17+, 3.9.17+, 3.10.12+, 3.11.4+ or 3.12+'
STAGING_PREFIX = '.unpacking-'           # RAR tools unpack here, inside the destination
TAR_FILTER_ERROR = getattr(tarfile, 'FilterError', ())   # () where there are no filters

# program -> arguments (archive and destination filled in)
RAR_TOOLS = (
    ('unrar', ['x', '-o+', '-idq', '{archive}', '{dest}' + os.sep]),
    ('7z', ['x', '-y', '-bd', '-o{dest}', '{archive}']),
    ('7za', ['x', '-y', '-bd', '-o{dest}', '{archive}']),
    ('bsdtar', ['-xf', '{archive}', '-C', '{dest}']),
    ('unar', ['-f', '-q', '-o', '{dest}', '{archive}']),
)
RAR_INSTALL_HINT = ('install one of: unrar (Debian/Ubuntu: apt install unrar; macOS: brew install '
                    'rar), 7z (apt install p7zip-full p7zip-rar), bsdtar (apt install '
                    'libarchive-tools) or unar (apt install unar)')

__all__ = ['ArchiveError', 'archive_stem', 'find_archive', 'find_rar_tool', 'format_size',
           'is_archive', 'unpack']


def is_archive(path):
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def archive_stem(path):
    """'brush_hair.rar' -> 'brush_hair', 'x.tar.gz' -> 'x'."""
    name = osp.basename(path)
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name


def find_archive(folder, stem):
    """`folder/stem.<any archive suffix>` if there is one, else None."""
    for suffix in ARCHIVE_SUFFIXES:
        path = osp.join(folder, stem + suffix)
        if osp.isfile(path):
            return path
    return None


def find_rar_tool():
    """(program path, argument template) of the first RAR tool on PATH, else None."""
    for program, arguments in RAR_TOOLS:
        found = shutil.which(program)
        if found:
            return found, arguments
    return None


# ---------------------------------------------------------------- zip and tar
def _unpack_zip(archive, dest, budget):
    """Member by member, each checked, and copied by hand to count the bytes written."""
    real_dest = osp.realpath(dest)
    path_max = path_max_of(real_dest)
    with zipfile.ZipFile(archive) as handle:
        members = handle.infolist()
        budget.check_declared(archive, sum(info.file_size for info in members))
        for info in members:
            try:
                target = member_target(info.filename, real_dest, path_max)
            except Refused as why:
                raise unsafe_member_error(archive, info.filename, dest, why) from None
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(osp.dirname(target), exist_ok=True)
            _copy_counted(handle, info, target, archive, budget)


def _copy_counted(handle, info, target, archive, budget):
    """Copy one zip member, stopping before the write that would pass the budget (the sizes a
    zip declares are not what protects the disk: these are)."""
    try:
        with handle.open(info) as source, open(target, 'wb') as sink:
            while True:
                chunk = source.read(1 << 20)
                if not chunk:
                    break
                budget.spend(archive, len(chunk), f'member {info.filename!r}')
                sink.write(chunk)
    except BaseException:
        if osp.isfile(target):
            os.remove(target)
        raise


def _checked_tar_members(archive, members, dest, budget):
    """Yield the members one at a time, each checked just before tarfile extracts it, so the
    links extracted so far are on disk to be followed; count the bytes each one wrote."""
    real_dest = osp.realpath(dest)
    path_max = path_max_of(real_dest)
    written = None                          # the regular file extracted last
    for member in members:
        if written:
            budget.spend(archive, _file_size(written[0]), f'member {written[1]!r}')
            written = None
        try:
            target = check_tar_member(member, real_dest, path_max)
        except Refused as why:
            raise unsafe_member_error(archive, member.name, dest, why) from None
        if member.isreg():
            budget.check(archive, member.size, f'member {member.name!r}')
            written = target, member.name
        yield member
    if written:
        budget.spend(archive, _file_size(written[0]), f'member {written[1]!r}')


def _file_size(path):
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return 0


def _unpack_tar(archive, dest, budget):
    if not hasattr(tarfile, 'data_filter'):
        raise ArchiveError(f'cannot unpack {archive} safely: this Python '
                           f'({platform.python_version()}) has no tarfile extraction filters; '
                           f'use Python {TAR_FILTER_PYTHONS}, or unpack it yourself into {dest} '
                           f'and run again.')
    with tarfile.open(archive) as handle:
        members = handle.getmembers()
        budget.check_declared(archive, sum(member.size for member in members if member.isreg()))
        handle.extractall(dest, members=_checked_tar_members(archive, members, dest, budget),
                          filter='data')


# ---------------------------------------------------------------- RAR, through a tool
def _unpack_rar(archive, dest, budget):
    """The tool unpacks into a fresh folder inside `dest`, moved into place once checked."""
    tool = find_rar_tool()
    if tool is None:
        raise ArchiveError(f'cannot unpack {archive}: no RAR tool found; {RAR_INSTALL_HINT}. '
                           f'Or unpack it yourself into {dest} and run again.')
    staging = osp.join(dest, STAGING_PREFIX + osp.basename(archive))
    shutil.rmtree(staging, ignore_errors=True)      # left by an interrupted run: unchecked
    os.makedirs(staging)
    try:
        program, template = tool
        command = [program] + [part.format(archive=archive, dest=staging) for part in template]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ArchiveError(f'cannot unpack {archive} with {osp.basename(program)} '
                               f'(exit {result.returncode}): {result.stderr.strip()[-500:]}')
        check_unpacked_folder(archive, staging, dest, budget)
        _move_into(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into(source, dest):
    """Move the content of `source` into `dest`, replacing what is there (never writing
    through a link found in `dest`)."""
    for name in os.listdir(source):
        moving, there = osp.join(source, name), osp.join(dest, name)
        if osp.isdir(moving) and not osp.islink(moving) and osp.isdir(there) \
                and not osp.islink(there):
            _move_into(moving, there)
            continue
        if osp.isdir(there) and not osp.islink(there):
            shutil.rmtree(there)
        elif osp.lexists(there):
            os.unlink(there)
        os.replace(moving, there)


# ---------------------------------------------------------------- one archive, and nesting
def _unpack_one(archive, dest, budget):
    os.makedirs(dest, exist_ok=True)
    lower = archive.lower()
    try:
        if lower.endswith('.zip'):
            _unpack_zip(archive, dest, budget)
        elif lower.endswith(TAR_SUFFIXES):
            _unpack_tar(archive, dest, budget)
        elif lower.endswith('.rar'):
            _unpack_rar(archive, dest, budget)
        else:
            raise ArchiveError(f'{archive}: not an archive DLAC can unpack ({ARCHIVE_SUFFIXES})')
    except TAR_FILTER_ERROR as err:     # the second line of defence caught what ours missed
        raise unsafe_member_error(archive, err.tarinfo.name, dest, f"is refused by tarfile's data filter "
                                                        f'({err})') from err
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as err:
        raise ArchiveError(f'{archive}: damaged or incomplete archive ({err}); '
                           f'download it again') from err


def unpack(archive, dest, nested=False, max_total_bytes=DEFAULT_MAX_TOTAL_BYTES,
           max_ratio=DEFAULT_MAX_RATIO, max_depth=DEFAULT_MAX_DEPTH):
    """Unpack `archive` into `dest` once: a marker file makes a rerun skip it.

    Args:
        nested: then unpack every archive found inside into its own folder, and delete those
            inner copies (they are ours, not the user's download), up to `max_depth` levels of
            archives (the outer one is level 1).
        max_total_bytes: the most the whole unpacking may write, inner archives included.
        max_ratio: the most it may write per byte of `archive` (beyond the first megabyte).
    Raises ArchiveError naming the archive: damaged, unsafe (a member that would be written
    outside `dest`, a link out, a device file) or over a limit.
    """
    if not osp.isfile(archive):
        raise ArchiveError(f'archive not found: {archive}')
    marker = osp.join(dest, f'.unpacked_{osp.basename(archive)}')
    if osp.isfile(marker):
        return dest
    budget = UnpackBudget(archive, max_total_bytes, max_ratio)
    _unpack_one(archive, dest, budget)
    depth = 1
    while nested:
        inner = sorted(osp.join(folder, name) for folder, _, names in os.walk(dest)
                       for name in names if is_archive(name)
                       and osp.abspath(osp.join(folder, name)) != osp.abspath(archive))
        if not inner:
            break
        depth += 1
        if depth > max_depth:
            raise ArchiveError(f'{inner[0]}: refused: an archive nested {depth} levels deep in '
                               f'{archive}, and at most {max_depth} are unpacked (a dataset '
                               f'needs 2; deeper nesting is a zip bomb or a mistake)')
        for path in inner:
            _unpack_one(path, osp.dirname(path), budget)
            os.remove(path)
    with open(marker, 'w', encoding='utf-8') as handle:
        handle.write(archive)
    return dest
