"""Pack a metafile's samples into WebDataset tar shards, for DATASET.INPUT_TYPE shards.

    python -m DataTool.pack --meta META --root DIR --out DIR [--mode frames|video]
                            [--shard-size 1GB] [--samples-per-shard N]

--root is the folder the metafile's paths are relative to (DATASET.VIDEO_SEQ_PATH). Writes,
under --out (one folder per split):
    <prefix>-000000.tar ...   per sample K (its number in the packed set, 9 digits):
                              K.json {"path", "num_frames", "label", "where", "frame_ext" or
                              "video_ext"}, K.cls (the label), and K.00000.jpg ... (frames
                              mode: every frame, 0-based) or K.mp4 (video mode: the file's bytes)
    <prefix>-000000.members.json ...  each shard's member index: every member's name, tar
                              header offset and size, by sample, and the shard's size (a
                              local shard is read by seeking straight to the members wanted)
    index.json                the shards with their sample counts and member index names, and
                              the packing settings
    skipped.txt               samples left out (a missing frame or file): `<line>\t<path>\t<why>`
Each shard is written to a temporary name, read back and compared member by member (the
member index's offsets too), its member index written to a temporary name and renamed, then
the shard renamed and recorded in index.json: an interrupted run, started again with the same
command, goes on after the last finished shard. Then train with
    DATASET.INPUT_TYPE shards DATASET.SHARDS <out>/index.json
"""
import argparse
import glob
import hashlib
import io
import json
import os
import os.path as osp
import re
import sys
import tarfile

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from datasets.records import MetafileError, parse_metafile  # noqa: E402
from datasets.shards import (INDEX_FORMAT, INDEX_NAME, MEMBERS_FORMAT,  # noqa: E402
                             MEMBERS_SUFFIX, member_index_name)
from utils.progress import progress  # noqa: E402

SIZE_UNITS = {'': 1, 'B': 1, 'KB': 1024, 'MB': 1024 ** 2, 'GB': 1024 ** 3, 'TB': 1024 ** 4}


class PackError(ValueError):
    """Settings or an output folder that cannot be used; the message says which."""


def parse_size(text):
    """'1GB' -> 1073741824 (units of 1024)."""
    match = re.fullmatch(r'\s*(\d+(?:\.\d+)?)\s*([KMGT]?B?)\s*', text.upper())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f'expected a size such as 1GB, 500MB or 4096, got {text!r}')
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2)])


def sample_members(record, root, mode, img_format, frame_start):
    """[(extension, bytes)] of one record's files; raises OSError naming what is missing."""
    path = osp.join(root, record.path)
    if mode == 'video':
        with open(path, 'rb') as handle:
            return [(osp.splitext(path)[1].lstrip('.').lower(), handle.read())]
    members = []
    for k in range(record.num_frames):
        with open(osp.join(path, img_format.format(k + frame_start)), 'rb') as handle:
            members.append((f'{k:05d}{osp.splitext(img_format)[1].lower()}', handle.read()))
    return members


def tar_bytes(members):
    """Bytes the members take in a tar: a 512-byte header each, data padded to 512."""
    return sum(512 + -(-len(data) // 512) * 512 for _, data in members)


TAR_END = 10240        # end-of-archive blocks, padded to tarfile's record size


class ShardWriter:
    """One shard at a time: written to '<name>.tmp', read back and checked, its member index
    written (also by a temporary name), then renamed."""

    def __init__(self, out, prefix, number):
        self.name = f'{prefix}-{number:06d}.tar'
        self.path = osp.join(out, self.name)
        self.partial = self.path + '.tmp'
        self.members_path = osp.join(out, member_index_name(self.name))
        self.archive = tarfile.open(self.partial, 'w', format=tarfile.USTAR_FORMAT)
        self.digests, self.samples, self.bytes = [], 0, TAR_END
        self.layout = {'samples': [], 'extensions': [], 'offsets': [], 'sizes': []}

    def add(self, key, members):
        for extension, data in members:
            info = tarfile.TarInfo(f'{key}.{extension}')
            info.size, info.mode, info.mtime = len(data), 0o444, 0
            self.archive.addfile(info, io.BytesIO(data))
            header = self.archive.offset - tar_bytes([(extension, data)])  # its data's header
            self.digests.append((info.name, hashlib.sha1(data).hexdigest(), header))
            self.layout['extensions'].append(extension)
            self.layout['offsets'].append(header)
            self.layout['sizes'].append(len(data))
        self.layout['samples'].append([key, len(members)])
        self.bytes += tar_bytes(members)
        self.samples += 1

    def finish(self):
        """Close, read back, compare every member and its offset, write the member index,
        rename; the index entry."""
        self.archive.close()
        with tarfile.open(self.partial, 'r') as archive:
            found = [(member.name, hashlib.sha1(archive.extractfile(member).read()).hexdigest(),
                      member.offset) for member in archive if member.isfile()]
        if found != self.digests:
            bad = next((i for i, (a, b) in enumerate(zip(found, self.digests)) if a != b),
                       min(len(found), len(self.digests)))
            raise OSError(f'{self.partial}: reading back differs from what was written at '
                          f'member {bad} of {len(self.digests)}; the disk may be failing')
        _write_synced(self.members_path, {'format': MEMBERS_FORMAT, 'shard': self.name,
                                          'shard_bytes': osp.getsize(self.partial), **self.layout})
        with open(self.partial, 'rb') as handle:
            os.fsync(handle.fileno())
        os.replace(self.partial, self.path)
        return {'name': self.name, 'samples': self.samples, 'bytes': osp.getsize(self.path),
                'members': osp.basename(self.members_path)}


def _write_synced(path, data):
    """Compact JSON at `path`, by a synced temporary file: a reader never meets half of it."""
    with open(path + '.tmp', 'w', encoding='utf-8') as handle:
        json.dump(data, handle, separators=(',', ':'))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(path + '.tmp', path)


def _settings(args):
    stat = os.stat(args.meta)
    return {'metafile': osp.abspath(args.meta), 'metafile_size': stat.st_size,
            'metafile_mtime': int(stat.st_mtime), 'root': osp.abspath(args.root),
            'mode': args.mode, 'shard_size': args.shard_size,
            'samples_per_shard': args.samples_per_shard, 'prefix': args.prefix,
            'img_format': args.img_format, 'frame_start': args.frame_start}


def _write_json(path, data):
    with open(path + '.tmp', 'w', encoding='utf-8') as handle:
        json.dump(data, handle, indent=1)
    os.replace(path + '.tmp', path)


def _start_or_resume(args):
    """The index to continue (a fresh one when --out holds no packing); refuses another's."""
    index_path = osp.join(args.out, INDEX_NAME)
    settings = _settings(args)
    if osp.isfile(index_path):
        with open(index_path, encoding='utf-8') as handle:
            index = json.load(handle)
        if index.get('settings') != settings:
            changed = sorted(k for k in settings if index.get('settings', {}).get(k) != settings[k])
            raise PackError(f'{args.out} holds shards packed with other settings ({", ".join(changed)} '
                            f'differ); pack into an empty folder, or delete {index_path}')
        return index
    return {'format': INDEX_FORMAT, 'mode': args.mode, 'settings': settings, 'shards': [],
            'samples': 0, 'next_record': 0, 'skipped': [], 'complete': False}


def pack(args):
    os.makedirs(args.out, exist_ok=True)
    records = parse_metafile(args.meta)
    if args.mode is None:
        args.mode = 'video' if records[0].is_video else 'frames'
    index = _start_or_resume(args)
    index_path = osp.join(args.out, INDEX_NAME)
    if index['complete']:
        print(f'{args.out}: already packed ({index["samples"]} samples in '
              f'{len(index["shards"])} shards)')
        return index
    for pattern in ('*.tar.tmp', f'*{MEMBERS_SUFFIX}.tmp'):
        for stale in glob.glob(osp.join(args.out, pattern)):
            os.remove(stale)
    if index['next_record']:
        print(f'resuming after {len(index["shards"])} finished shards '
              f'({index["samples"]} samples, record {index["next_record"]} of {len(records)})')
    writer, skipped = None, list(index['skipped'])
    for position in progress(range(index['next_record'], len(records)), desc='packing',
                             total=len(records) - index['next_record'], unit='video'):
        record = records[position]
        try:
            members = sample_members(record, args.root, args.mode, args.img_format, args.frame_start)
        except OSError as err:
            skipped.append([record.where, record.path, f'{type(err).__name__}: {err.strerror or err}'])
            continue
        meta = {'path': record.path, 'num_frames': record.num_frames, 'label': record.label,
                'where': record.where,
                ('video_ext' if args.mode == 'video' else 'frame_ext'): members[0][0].rpartition('.')[2]}
        members = [('json', json.dumps(meta).encode('utf-8')), ('cls', str(record.label).encode())] + members
        if writer is not None and (writer.bytes + tar_bytes(members) > args.shard_size
                                   or writer.samples == args.samples_per_shard):
            _publish(index, index_path, writer, position, skipped)
            writer = None
        if writer is None:
            writer = ShardWriter(args.out, args.prefix, len(index['shards']))
        writer.add(f'{index["samples"] + writer.samples:09d}', members)
    if writer is not None:
        _publish(index, index_path, writer, len(records), skipped)
    index['complete'], index['next_record'] = True, len(records)
    _write_json(index_path, index)
    _write_skipped(args.out, skipped)
    if not index['samples']:
        raise PackError(f'no sample of {args.meta} could be packed; see {args.out}/skipped.txt')
    return index


def _publish(index, index_path, writer, next_record, skipped):
    """A finished shard enters the index, with the position to resume from."""
    entry = writer.finish()
    entry['first'] = index['samples']
    index['shards'].append(entry)
    index['samples'] += entry['samples']
    index['next_record'], index['skipped'] = next_record, list(skipped)
    _write_json(index_path, index)


def _write_skipped(out, skipped):
    with open(osp.join(out, 'skipped.txt'), 'w', encoding='utf-8') as handle:
        handle.write('# metafile line\tpath\treason\n')
        for row in skipped:
            handle.write('\t'.join(row) + '\n')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--meta', required=True, help='the metafile to pack')
    parser.add_argument('--root', required=True,
                        help="the folder the metafile's paths are relative to (VIDEO_SEQ_PATH)")
    parser.add_argument('--out', required=True, help='folder for the shards and index.json')
    parser.add_argument('--mode', choices=('frames', 'video'),
                        help='pack frame folders or video files (default: what the paths are)')
    parser.add_argument('--shard-size', type=parse_size, default=parse_size('1GB'),
                        help='largest shard (a sample larger than this gets a shard of its own)')
    parser.add_argument('--samples-per-shard', type=int, default=0,
                        help='also at most this many samples a shard (0: no limit)')
    parser.add_argument('--prefix', help='shard name prefix (default: the metafile name)')
    parser.add_argument('--img-format', default='img_{:05d}.jpg', help='DATASET.IMG_FORMAT')
    parser.add_argument('--frame-start', type=int, choices=(0, 1), default=1,
                        help='DATASET.FRAME_START: number of the first frame file')
    args = parser.parse_args(argv)
    args.prefix = args.prefix or osp.splitext(osp.basename(args.meta))[0]
    try:
        index = pack(args)
    except (PackError, MetafileError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if index['skipped']:
        print(f'skipped {len(index["skipped"])} samples; listed in {args.out}/skipped.txt')
    print(f'{index["samples"]} samples in {len(index["shards"])} shards under {args.out}; train with\n'
          f'  DATASET.INPUT_TYPE shards DATASET.SHARDS {osp.abspath(osp.join(args.out, INDEX_NAME))}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
