"""What keeps an archive from a download inside its destination and within its size: each
member checked before it is written, what a RAR tool unpacked checked before it is moved, and
one budget of bytes for a whole unpacking (archives.py's docstring says why each rule).

An archive is untrusted input. tarfile's 'data' filter alone is not enough: the symlink chains
of CVE-2025-4517 grow a path past PATH_MAX, where os.path.realpath stops resolving and the
filter lets a member through to anywhere. So the real path of every member is resolved here
strictly, through the links already unpacked, and an over-long path is refused.
"""
import os
import os.path as osp
import re
import stat
from collections import Counter

RATIO_FREE_BYTES = 1024 ** 2             # what any archive may unpack to, whatever its ratio
FALLBACK_PATH_MAX = 4096                 # Linux's, where os.pathconf cannot say


class ArchiveError(RuntimeError):
    """An archive that cannot be unpacked here; the message names it and what to do."""


class Refused(Exception):
    """Why one member may not be written; named with its archive and member by the caller."""


def format_size(count):
    """1536 -> '1.5KB', in the units (of 1024) that --max-unpacked-size takes."""
    if count < 1024:
        return f'{int(count)}B'
    for unit in ('KB', 'MB', 'GB', 'TB'):
        count /= 1024
        if count < 1024 or unit == 'TB':
            return f'{count:.1f}{unit}'


# ---------------------------------------------------------------- size limits
class UnpackBudget:
    """What one `unpack` call (outer archive and every archive inside it) may still write."""

    def __init__(self, outer, max_total_bytes, max_ratio):
        outer_size = osp.getsize(outer)
        by_ratio = int(max_ratio * outer_size) + RATIO_FREE_BYTES
        if max_total_bytes <= by_ratio:
            self.limit = max_total_bytes
            self.rule = (f'the limit of {format_size(max_total_bytes)} on the unpacked size '
                         f'(--max-unpacked-size raises it; unpack(max_total_bytes=...))')
        else:
            self.limit = by_ratio
            self.rule = (f'the limit of {max_ratio:g} times the size of {osp.basename(outer)} '
                         f'({format_size(outer_size)}), plus {format_size(RATIO_FREE_BYTES)}: '
                         f'{format_size(by_ratio)} (--max-ratio raises it; unpack(max_ratio=...))')
        self.outer = outer
        self.written = 0

    def check(self, archive, more, what):
        """Refuse if writing `more` bytes would go over the limit; `what` says whose bytes."""
        if self.written + more > self.limit:
            scope = '' if archive == self.outer else f' (with {osp.basename(self.outer)})'
            raise ArchiveError(
                f'{archive}: refused: {what} would bring what is unpacked{scope} to '
                f'{format_size(self.written + more)}, over {self.rule}. If it is a genuine '
                f'dataset archive, raise that limit.')

    def check_declared(self, archive, declared):
        """Refuse an archive whose members declare more than is left, before it writes."""
        self.check(archive, declared, f'its members, which declare {format_size(declared)},')

    def spend(self, archive, count, what):
        self.check(archive, count, what)
        self.written += count


# ---------------------------------------------------------------- where a member would go
def path_max_of(folder):
    try:
        limit = os.pathconf(folder, 'PC_PATH_MAX')
    except (OSError, ValueError, AttributeError):
        return FALLBACK_PATH_MAX
    return limit if limit > 0 else FALLBACK_PATH_MAX


def name_parts(name):
    """The '/'-separated parts of a member name, refused if absolute or if it climbs ('..',
    with '\\' taken as a separator too: Windows-made archives use it)."""
    if '\0' in name:
        raise Refused('has a NUL character in its name')
    if name.startswith(('/', '\\')):
        raise Refused('has an absolute path')
    if re.match(r'[A-Za-z]:', name):
        raise Refused('starts with a drive letter')
    if '..' in re.split(r'[/\\]', name):
        raise Refused("leaves the destination (a '..' part)")
    return [part for part in name.split('/') if part not in ('', '.')]


def resolve_strictly(start, parts, path_max):
    """The real path `parts` lead to from the real folder `start`, following the links on disk.

    Strictly: a step the system cannot resolve (too long, a loop, a dangling link) is refused,
    where os.path.realpath would go on as if it were no link. Past the first part that does
    not exist yet no link can interfere, except that a '..' there would climb out of whatever
    a later member puts in its place, so that is refused too.
    """
    current, missing = start, False
    for part in parts:
        if part in ('', '.'):
            continue
        if part == '..':
            if missing:
                raise Refused("climbs ('..') out of a folder that does not exist yet")
            current = osp.dirname(current)
            continue
        current = osp.join(current, part)
        if len(os.fsencode(current)) >= path_max:
            raise Refused(f'leads to a path longer than the system allows (PATH_MAX '
                           f'{path_max}): {current[:60]}...')
        if missing:
            continue
        try:
            os.lstat(current)
            current = osp.realpath(current, strict=True)
        except FileNotFoundError:
            if osp.islink(current):
                raise Refused(f'goes through a dangling link: {current}') from None
            missing = True
        except OSError as err:
            raise Refused(f'cannot be resolved safely ({err.strerror or err}): '
                           f'{current[:60]}...') from None
    return current


def is_inside(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def member_target(name, real_dest, path_max, replaces_link=False):
    """The real path a member called `name` would be written to, refused outside real_dest.

    replaces_link: the member is a symlink, and tarfile replaces whatever sits at its path
    (a link there included), so only its folder is followed.
    """
    parts = name_parts(name)
    if len(os.fsencode(osp.join(real_dest, name))) >= path_max:
        raise Refused(f'has a path longer than the system allows (PATH_MAX {path_max})')
    if replaces_link and parts:
        target = osp.join(resolve_strictly(real_dest, parts[:-1], path_max), parts[-1])
    else:
        target = resolve_strictly(real_dest, parts, path_max)
    if len(os.fsencode(target)) >= path_max:
        raise Refused(f'leads to a path longer than the system allows (PATH_MAX {path_max}): '
                       f'{target[:60]}...')
    if not is_inside(target, real_dest):
        raise Refused(f'leaves the destination through a link: it would be written to {target}')
    return target


def check_tar_member(member, real_dest, path_max):
    """The real path `member` writes to; Refused unless it and any link target stay inside."""
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        kind = ('a device file' if member.ischr() or member.isblk()
                else 'a FIFO' if member.isfifo() else f'of special type {member.type!r}')
        raise Refused(f'is {kind}: a dataset holds only files, folders and links')
    target = member_target(member.name, real_dest, path_max, replaces_link=member.issym())
    if not member.isdir() and target == real_dest:
        raise Refused('has an empty name')
    if member.issym():
        if member.linkname.startswith(('/', '\\')) or re.match(r'[A-Za-z]:', member.linkname):
            raise Refused(f'is a symlink to an absolute path, {member.linkname!r}')
        pointed = resolve_strictly(osp.dirname(target), member.linkname.split('/'), path_max)
        if not is_inside(pointed, real_dest):
            raise Refused(f'is a symlink to {member.linkname!r}, outside the destination')
    elif member.islnk():
        try:
            member_target(member.linkname, real_dest, path_max)
        except Refused as why:
            raise Refused(f'is a hard link to {member.linkname!r}, which {why}') from None
    return target


def unsafe_member_error(archive, name, dest, why, done=None):
    done = done or f'Unpacking stopped; nothing was written outside {dest}.'
    return ArchiveError(f'{archive}: refused as unsafe: member {name!r} {why}. {done}')


# ---------------------------------------------------------------- what a tool unpacked
def check_unpacked_folder(archive, folder, dest, budget):
    """Refuse what a tool unpacked into `folder` if a link leads out of it, a file is linked
    to one outside, something is neither file, folder nor link, or it is over the budget."""
    real_root = osp.realpath(folder)
    path_max = path_max_of(real_root)
    found, links_of, total = Counter(), {}, 0
    done = f'What the RAR tool unpacked is deleted unused; nothing was moved into {dest}.'

    def cannot_walk(err):
        raise unsafe_member_error(archive, osp.relpath(err.filename, real_root), dest,
                       f'cannot be checked ({err.strerror})', done)

    for current, dirs, files in os.walk(real_root, onerror=cannot_walk):   # links not entered
        for name in dirs + files:
            path = osp.join(current, name)
            member = osp.relpath(path, real_root)
            info = os.lstat(path)
            try:
                if stat.S_ISLNK(info.st_mode):
                    link = os.readlink(path)
                    if osp.isabs(link):
                        raise Refused(f'is a symlink to an absolute path, {link!r}')
                    if not is_inside(resolve_strictly(current, link.split('/'), path_max), real_root):
                        raise Refused(f'is a symlink to {link!r}, outside the destination')
                elif stat.S_ISREG(info.st_mode):
                    key = info.st_dev, info.st_ino
                    found[key] += 1
                    if found[key] == 1:
                        links_of[key] = member, info.st_nlink
                        total += info.st_size
                elif not stat.S_ISDIR(info.st_mode):
                    raise Refused('is a device file, FIFO or socket: a dataset holds only '
                                   'files, folders and links')
            except Refused as why:
                raise unsafe_member_error(archive, member, dest, why, done) from None
    for key, (member, link_count) in links_of.items():
        if found[key] < link_count:
            raise unsafe_member_error(archive, member, dest, 'is a hard link to a file outside the '
                                                  'destination', done)
    budget.spend(archive, total, f'its members, {format_size(total)} unpacked,')
