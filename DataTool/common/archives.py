"""Unpacking the archives datasets ship in (.zip, .tar[.gz|.bz2|.xz], .rar), nested ones too.

Zip and tar go through the standard library. RAR needs an outside program (the format's
decoder is not free software); the first of unrar, 7z, bsdtar or unar found on PATH is used,
and when there is none the error says what to install. HMDB51 ships a rar of rars: `unpack`
with `nested=True` unpacks every archive found inside as well, into the folder it sits in.
"""
import os
import os.path as osp
import shutil
import subprocess
import tarfile
import zipfile

TAR_SUFFIXES = ('.tar', '.tar.gz', '.tgz', '.tar.bz2', '.tbz2', '.tar.xz', '.txz')
ARCHIVE_SUFFIXES = ('.zip', '.rar') + TAR_SUFFIXES

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


class ArchiveError(RuntimeError):
    """An archive that cannot be unpacked here; the message names it and what to do."""


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


def _unpack_rar(archive, dest):
    tool = find_rar_tool()
    if tool is None:
        raise ArchiveError(f'cannot unpack {archive}: no RAR tool found; {RAR_INSTALL_HINT}. '
                           f'Or unpack it yourself into {dest} and run again.')
    program, template = tool
    command = [program] + [part.format(archive=archive, dest=dest) for part in template]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ArchiveError(f'cannot unpack {archive} with {osp.basename(program)} '
                           f'(exit {result.returncode}): {result.stderr.strip()[-500:]}')


def _unpack_one(archive, dest):
    os.makedirs(dest, exist_ok=True)
    lower = archive.lower()
    try:
        if lower.endswith('.zip'):
            with zipfile.ZipFile(archive) as handle:
                handle.extractall(dest)
        elif lower.endswith(TAR_SUFFIXES):
            with tarfile.open(archive) as handle:
                handle.extractall(dest, filter='data')
        elif lower.endswith('.rar'):
            _unpack_rar(archive, dest)
        else:
            raise ArchiveError(f'{archive}: not an archive DLAC can unpack ({ARCHIVE_SUFFIXES})')
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        raise ArchiveError(f'{archive}: damaged or incomplete archive ({err}); '
                           f'download it again') from err


def unpack(archive, dest, nested=False):
    """Unpack `archive` into `dest` once: a marker file makes a rerun skip it.

    nested: then unpack every archive found inside into its own folder, and delete those
    inner copies (they are ours, not the user's download).
    """
    if not osp.isfile(archive):
        raise ArchiveError(f'archive not found: {archive}')
    marker = osp.join(dest, f'.unpacked_{osp.basename(archive)}')
    if osp.isfile(marker):
        return dest
    _unpack_one(archive, dest)
    while nested:
        inner = sorted(osp.join(folder, name) for folder, _, names in os.walk(dest)
                       for name in names if is_archive(name))
        if not inner:
            break
        for path in inner:
            _unpack_one(path, osp.dirname(path))
            os.remove(path)
    with open(marker, 'w', encoding='utf-8') as handle:
        handle.write(archive)
    return dest
