"""Packed shards: DataTool.pack writes them (resumable, verified), ShardDataset reads them
back bit for bit, splits them over processes and workers, and survives damaged ones."""
import json
import os
import os.path as osp
import tarfile

import numpy as np
import pytest
import torch

import config
from conftest import free_port, tiny_overrides, training_run
from DataTool import pack as pack_tool
from datasets import begin_epoch, build_dataset, build_loader, video_dataset
from datasets.decoding import decode_image_bytes, load_frame_folder
from datasets.records import parse_metafile
from datasets.shards import ShardError, read_samples, shard_list
from utils.distributed import DistContext


def synthetic(tiny_root, *parts):
    return osp.join(str(tiny_root), 'synthetic', *parts)


def pack(tiny_root, out, split='train', *options):
    """DataTool.pack of the tiny set's metafile `split` ('train', 'val', 'val_video', ...)."""
    name = split.replace('_video', '_split1_video') if split.endswith('_video') else f'{split}_split1'
    meta = synthetic(tiny_root, 'MetafileSeq', f'{name}.txt')
    code = pack_tool.main(['--meta', meta, '--root', synthetic(tiny_root, 'VideoSeq'),
                           '--out', str(out)] + list(options))
    assert code == 0
    with open(osp.join(str(out), 'index.json'), encoding='utf-8') as handle:
        return json.load(handle)


def shard_config(tiny_root, tmp_path, train, val='', **extra):
    return config.build_config(tiny_overrides(tiny_root, tmp_path, **{
        'DATASET.INPUT_TYPE': 'shards', 'DATASET.SHARDS': train, 'DATASET.VAL_SHARDS': val,
        **extra}))


@pytest.fixture(scope='module')
def packed(tiny_root, tmp_path_factory):
    """The tiny set's 24 training videos in 4 shards of 6, and its 16 validation videos."""
    out = tmp_path_factory.mktemp('shards')
    return {'train': pack(tiny_root, out / 'train', 'train', '--samples-per-shard', '6'),
            'val': pack(tiny_root, out / 'val', 'val', '--shard-size', '300KB'),
            'train_index': str(out / 'train' / 'index.json'),
            'val_index': str(out / 'val' / 'index.json'), 'out': out}


def test_packing_then_reading_back_gives_the_same_bytes_and_frames(tiny_root, packed):
    index = packed['train']
    assert index['complete'] and index['samples'] == 24
    assert [shard['samples'] for shard in index['shards']] == [6, 6, 6, 6]
    records = parse_metafile(synthetic(tiny_root, 'MetafileSeq', 'train_split1.txt'))
    urls, counts, first, _ = shard_list(packed['train_index'])
    assert counts.tolist() == [6] * 4 and first.tolist() == [0, 6, 12, 18]
    number = 0
    for url in urls:
        for files in read_samples(url):
            record = records[number]
            assert files['__key__'] == f'{number:09d}'
            assert files['meta'] == {'path': record.path, 'num_frames': record.num_frames,
                                     'label': record.label, 'where': record.where,
                                     'frame_ext': 'jpg'}
            folder = synthetic(tiny_root, 'VideoSeq', record.path)
            for k in range(record.num_frames):
                with open(osp.join(folder, f'img_{k + 1:05d}.jpg'), 'rb') as handle:
                    assert files[f'{k:05d}.jpg'] == handle.read()
            decoded = decode_image_bytes(files['00003.jpg'], 'x.jpg')
            np.testing.assert_array_equal(decoded, load_frame_folder(folder, [3])[0])
            number += 1
    assert number == 24


def test_shard_clips_equal_the_frame_folder_clips(tiny_root, tmp_path, packed):
    """Validation order, sampling and transforms: the same tensors as from the folders."""
    cfg = shard_config(tiny_root, tmp_path, packed['train_index'], packed['val_index'])
    shards = build_dataset(cfg, 'val')
    folders = video_dataset(cfg, parse_metafile(cfg.DATASET.VAL_META_PATH), 'val')
    loader = build_loader(cfg, shards, 'val', batch_size=4)
    seen = []
    for clips, labels, indices, bad in loader:
        assert (bad == -1).all()
        for clip, label, index in zip(clips, labels, indices.tolist()):
            expected, expected_label, _, _ = folders[index]
            assert torch.equal(clip, expected) and int(label) == expected_label
            seen.append(index)
    assert sorted(seen) == list(range(16))


def test_training_order_per_process_and_worker(tiny_root, tmp_path, packed):
    """2 processes x 2 workers over 24 samples in 4 shards: each process takes 12 (each worker
    6: a batch of 4 and one of 2), the union is every sample once, the order changes with the epoch, and a resumed
    epoch yields exactly the samples not yet seen."""
    cfg = shard_config(tiny_root, tmp_path, packed['train_index'], **{'DATASET.NUM_WORKERS': 2,
                                                                      'DATASET.SHUFFLE_BUFFER': 4})
    orders = {}
    for epoch in (0, 1):
        union = []
        for rank in (0, 1):
            loader = build_loader(cfg, build_dataset(cfg, 'train'), 'train', batch_size=4,
                                  num_replicas=2, rank=rank)
            begin_epoch(loader, epoch)
            assert len(loader) == 4
            batches = [indices.tolist() for _, _, indices, _ in loader]
            assert [len(batch) for batch in batches] == [4, 4, 2, 2]
            orders[epoch, rank] = batches
            union += sum(batches, [])
        assert sorted(union) == list(range(24))
    assert orders[0, 0] != orders[1, 0]
    loader = build_loader(cfg, build_dataset(cfg, 'train'), 'train', batch_size=4, num_replicas=2,
                          rank=1)
    begin_epoch(loader, 1, skip_samples=4)        # one step done before the interruption
    resumed = [indices.tolist() for _, _, indices, _ in loader]
    assert len(loader) == 3 and len(resumed) == 3
    assert sorted(sum(resumed, []) + orders[1, 1][0]) == sorted(sum(orders[1, 1], []))


def test_uneven_counts_still_give_every_process_the_same_steps(tiny_root, tmp_path, packed):
    """16 samples in shards of different sizes over 3 processes: ceil(16/3)=6 positions each
    (the last wrapping to the start): two steps each, no sample twice within a process."""
    counts = [shard['samples'] for shard in packed['val']['shards']]
    assert len(set(counts)) > 1                     # --shard-size made them uneven
    cfg = shard_config(tiny_root, tmp_path, packed['val_index'])
    for rank in range(3):
        loader = build_loader(cfg, build_dataset(cfg, 'train'), 'train', batch_size=4,
                              num_replicas=3, rank=rank)
        begin_epoch(loader, 0)
        indices = sum((batch[2].tolist() for batch in loader), [])
        assert len(loader) == 2 and len(indices) == 6 and len(set(indices)) == 6


def damaged_copy(packed, tmp_path, damage):
    """A copy of the training shards with damage(path) applied to the second shard."""
    out = tmp_path / 'damaged'
    out.mkdir()
    for name in os.listdir(str(packed['out'] / 'train')):
        with open(str(packed['out'] / 'train' / name), 'rb') as source:
            (out / name).write_bytes(source.read())
    damage(str(out / 'train_split1-000001.tar'))
    return str(out / 'index.json')


def truncate(path):
    size = osp.getsize(path)
    with open(path, 'r+b') as handle:
        handle.truncate(size // 2)


def corrupt_first_jpeg(path):
    """Overwrite the middle of sample 6's frames with zeros (its JPEGs no longer decode)."""
    with tarfile.open(path) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith('000000006.')]
    with open(path, 'r+b') as handle:
        for member in members:
            if member.name.endswith('.jpg'):
                handle.seek(member.offset_data + 20)
                handle.write(b'\0' * (member.size - 40))


@pytest.fixture
def dlac_log(caplog):
    """caplog for DLAC's loggers, which do not propagate to the root once a run set them up."""
    import logging
    logger = logging.getLogger('dlac')
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.mark.parametrize('damage, lost', [(truncate, None), (corrupt_first_jpeg, {6})])
def test_damaged_shards_are_survived_and_counted(tiny_root, tmp_path, packed, dlac_log, damage, lost):
    caplog = dlac_log
    index = damaged_copy(packed, tmp_path, damage)
    cfg = shard_config(tiny_root, tmp_path, index, index)
    for split in ('val', 'train'):
        loader = build_loader(cfg, build_dataset(cfg, split), split, batch_size=4)
        begin_epoch(loader, 0)
        indices, bad = [], []
        for _, _, batch_indices, batch_bad in loader:
            indices += batch_indices.tolist()
            bad += [b for b in batch_bad.tolist() if b >= 0]
        assert len(indices) == 24                       # the counts never change
        if lost is None:                                # the truncated shard lost its tail
            assert set(bad) and set(bad) <= set(range(6, 12)) and len(set(bad)) == len(bad)
            assert 'truncated or damaged after' in caplog.text
        else:
            assert set(bad) == lost and 'cannot decode JPEG' in caplog.text
        if split == 'val':
            assert sorted(indices) == list(range(24))   # flagged for leaving out of the metrics
        else:
            assert not set(bad) & set(indices)          # trained on stand-ins instead


def test_packing_resumes_after_an_interruption(tiny_root, tmp_path, packed, monkeypatch):
    out = tmp_path / 'resumed'
    finish = pack_tool.ShardWriter.finish
    calls = []

    def failing_finish(writer):
        calls.append(writer.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return finish(writer)
    monkeypatch.setattr(pack_tool.ShardWriter, 'finish', failing_finish)
    with pytest.raises(KeyboardInterrupt):
        pack(tiny_root, out, 'train', '--samples-per-shard', '6')
    with open(str(out / 'index.json'), encoding='utf-8') as handle:
        partial = json.load(handle)
    assert not partial['complete'] and len(partial['shards']) == 2 and partial['next_record'] == 12
    monkeypatch.setattr(pack_tool.ShardWriter, 'finish', finish)
    resumed = pack(tiny_root, out, 'train', '--samples-per-shard', '6')
    for ours, reference in zip(resumed['shards'], packed['train']['shards']):
        with open(str(out / ours['name']), 'rb') as a, \
                open(str(packed['out'] / 'train' / reference['name']), 'rb') as b:
            assert a.read() == b.read()
    assert not [name for name in os.listdir(str(out)) if name.endswith('.tmp')]
    other = pack_tool.main(['--meta', synthetic(tiny_root, 'MetafileSeq', 'val_split1.txt'),
                            '--root', synthetic(tiny_root, 'VideoSeq'), '--out', str(out)])
    assert other == 2                                  # another packing's folder is refused


def test_missing_frames_are_skipped_and_listed(tiny_root, tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('move_left/train_move_left_000 12 0\nno/such/folder 10 1\n', encoding='utf-8')
    code = pack_tool.main(['--meta', str(meta), '--root', synthetic(tiny_root, 'VideoSeq'),
                           '--out', str(tmp_path / 'out')])
    assert code == 0
    with open(str(tmp_path / 'out' / 'skipped.txt'), encoding='utf-8') as handle:
        rows = [line.split('\t') for line in handle.read().splitlines()[1:]]
    assert [row[:2] for row in rows] == [[f'{meta}:2', 'no/such/folder']]
    assert 'FileNotFoundError' in rows[0][2]


def test_bad_shard_settings_are_named(tiny_root, tmp_path, packed):
    with pytest.raises(ShardError, match='does not list 1 of the shards'):
        shard_list(osp.join(str(packed['out'] / 'train'), 'other-{000000..000000}.tar'))
    with pytest.raises(ShardError, match='needs DATASET.SHARD_INDEX'):
        shard_list('pipe:cat /x/train-{0..3}.tar')
    with pytest.raises(ShardError, match='cannot read the shard index'):
        shard_list(str(tmp_path / 'nothing' / 'index.json'))
    cfg = shard_config(tiny_root, tmp_path, str(tmp_path / 'missing' / 'index.json'))
    from datasets import MetafileError, check_data
    with pytest.raises(MetafileError, match='missing/index.json'):
        check_data(cfg)


def test_a_pipe_url_pattern_reads_the_same_samples(tiny_root, tmp_path, packed):
    folder = str(packed['out'] / 'train')
    spec = f'pipe:cat {folder}/train_split1-{{000000..000003}}.tar'
    cfg = shard_config(tiny_root, tmp_path, spec, spec,
                       **{'DATASET.SHARD_INDEX': packed['train_index']})
    loader = build_loader(cfg, build_dataset(cfg, 'val'), 'val', batch_size=6)
    assert sorted(sum((batch[2].tolist() for batch in loader), [])) == list(range(24))


class RecordingLoader:
    """A loader that notes the sample indices of every batch it hands out."""

    def __init__(self, loader):
        self.loader, self.dataset, self.indices = loader, loader.dataset, []

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            self.indices += batch[2].tolist()
            yield batch


def ddp_on_shards_process(rank, port, tiny_root, train_index, snapshot, out_path):
    """One of two gloo DDP processes training TSN for 2 epochs on shards, 2 loader workers."""
    from models import build_model
    from utils.distributed import replica_max_abs_diff
    from engine.optimizer import build_optimizer
    from engine.train_step import train_one_epoch
    torch.distributed.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                                         world_size=2)
    ctx = DistContext(rank, 2, rank, torch.device('cpu'), 'gloo')
    cfg = shard_config(tiny_root, snapshot, train_index, **{
        'DATASET.NUM_WORKERS': 2, 'TRAIN.BASE_BATCH_SIZE': 3, 'DATASET.SCALE_SIZE': 36,
        'DATASET.CROP_SIZE': 32, 'NUM_THREADS': 1})
    torch.manual_seed(0)
    bare = build_model(cfg)
    start = [p.detach().clone() for p in bare.parameters()]
    model = torch.nn.parallel.DistributedDataParallel(bare)
    optimizer = build_optimizer(bare, cfg, cfg.TRAIN.BASE_LR)
    loader = build_loader(cfg, build_dataset(cfg, 'train'), 'train', num_replicas=2, rank=rank)
    seen, losses = [], []
    for epoch in (0, 1):
        begin_epoch(loader, epoch)
        recording = RecordingLoader(loader)
        run = training_run(cfg, bare, recording, optimizer, cfg.TRAIN.BASE_LR, ctx=ctx,
                           train_forward=model)
        loss, _, steps = train_one_epoch(run, epoch, 0, None, None)
        gathered = [None, None]
        torch.distributed.all_gather_object(gathered, (recording.indices, steps))
        seen.append(gathered)
        losses.append(loss)
    moved = max((p.detach() - s).abs().max().item() for p, s in zip(bare.parameters(), start))
    difference = replica_max_abs_diff(bare, ctx)
    if rank == 0:
        with open(out_path, 'w', encoding='utf-8') as handle:
            json.dump({'seen': seen, 'losses': losses, 'moved': moved, 'difference': difference},
                      handle)
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_ddp_on_shards_sees_every_sample_once_and_trains(tiny_root, tmp_path, packed):
    """24 samples in 4 shards, 2 processes x 2 workers: every sample exactly once per epoch,
    the same steps on both processes (each worker: a batch of 3 and one of 3), in sync."""
    out = tmp_path / 'result.json'
    torch.multiprocessing.spawn(ddp_on_shards_process, nprocs=2, args=(
        free_port(), str(tiny_root), packed['train_index'], str(tmp_path), str(out)))
    result = json.loads(out.read_text())
    for epoch in result['seen']:
        (rank0, steps0), (rank1, steps1) = epoch
        assert sorted(rank0 + rank1) == list(range(24))
        assert steps0 == steps1 == 4
    assert result['seen'][0][0][0] != result['seen'][1][0][0]      # a new order each epoch
    assert all(np.isfinite(result['losses'])) and result['moved'] > 1e-4
    assert result['difference'] == 0.0


@pytest.mark.slow
def test_train_py_on_shards_resumes_mid_epoch_like_an_uninterrupted_run(tiny_root, tmp_path, packed,
                                                                         monkeypatch):
    """SIGTERM at step 3 of epoch 2, then the same command: the same weights and losses as
    one uninterrupted run (the resumed epoch re-enters the same shard order)."""
    import train
    from conftest import run_main
    small = {'DATASET.INPUT_TYPE': 'shards', 'DATASET.SHARDS': packed['train_index'],
             'DATASET.VAL_SHARDS': packed['val_index'], 'DATASET.SCALE_SIZE': 36,
             'DATASET.CROP_SIZE': 32, 'TRAIN.BASE_BATCH_SIZE': 4, 'TRAIN.EPOCHS': 3,
             'TRAIN.LR_STEPS': [2], 'VAL.NUM_SEGMENTS': 3, 'VAL.BATCH_SIZE': 3, 'NUM_THREADS': 1}

    def last(snapshot):
        return torch.load(osp.join(str(snapshot), 'ar_output', 'tsn', 'synthetic_rgb_resnet18',
                                   'checkpoints', 'last.pth'), weights_only=True)
    assert run_main(train, tiny_overrides(tiny_root, tmp_path / 'straight', **small)) == 0
    overrides = tiny_overrides(tiny_root, tmp_path / 'interrupted', **small)
    monkeypatch.setenv('DLAC_FAULT_INJECT', 'sigterm:0:2:3')
    with pytest.raises(SystemExit) as stop:
        run_main(train, overrides)
    assert stop.value.code == 0 and (last(tmp_path / 'interrupted')['step']) == 3
    monkeypatch.delenv('DLAC_FAULT_INJECT')
    assert run_main(train, overrides) == 0
    ours, theirs = last(tmp_path / 'interrupted'), last(tmp_path / 'straight')
    for key, value in theirs['model'].items():
        torch.testing.assert_close(ours['model'][key], value, atol=1e-6, rtol=1e-6)
    assert [row['train_loss'] for row in ours['history']] == pytest.approx(
        [row['train_loss'] for row in theirs['history']], abs=1e-6)
    assert all(row['val_top1'] is not None for row in ours['history'])


def test_a_subset_of_the_shards_keeps_the_packed_sample_numbers(tiny_root, tmp_path, packed):
    folder = str(packed['out'] / 'train')
    spec = osp.join(folder, 'train_split1-{000001..000002}.tar')
    cfg = shard_config(tiny_root, tmp_path, spec, spec)
    dataset = build_dataset(cfg, 'val')
    assert dataset.describe(7) == f'sample 1 of {folder}/train_split1-000001.tar'
    loader = build_loader(cfg, dataset, 'val', batch_size=6)
    batches = list(loader)
    assert sorted(sum((batch[2].tolist() for batch in batches), [])) == list(range(6, 18))
    assert all((batch[3] == -1).all() for batch in batches)


@pytest.mark.parametrize('tar_format', [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_our_tar_reader_reads_what_tarfile_writes(tmp_path, tar_format):
    """Long names (GNU 'L' members, pax 'path=' records), folders and links are handled."""
    import io
    from datasets.shards import _read_exactly, _skip_bytes, _padded, tar_members
    path = str(tmp_path / 'x.tar')
    names = ['a.json', 'dir/' + 'b' * 60 + '/' + 'c' * 60 + '.00000.jpg', 'short.cls']
    with tarfile.open(path, 'w', format=tar_format) as archive:
        folder = tarfile.TarInfo('folder')
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for i, name in enumerate(names):
            if tar_format == tarfile.USTAR_FORMAT and len(name) > 100:
                name = name[-90:]
                names[i] = name
            info = tarfile.TarInfo(name)
            data = bytes(range(i * 7 % 256)) * 3
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    found = []
    with open(path, 'rb') as handle:
        for name, size in tar_members(handle, path):
            found.append((name, _read_exactly(handle, size, path)))
            _skip_bytes(handle, _padded(size) - size)
    with tarfile.open(path) as archive:
        expected = [(m.name, archive.extractfile(m).read()) for m in archive if m.isfile()]
    assert found == expected and [name for name, _ in found] == names


def test_webdataset_itself_reads_our_shards(packed):
    import webdataset
    urls, _, _, _ = shard_list(packed['train_index'])
    first = next(iter(webdataset.WebDataset(urls[1], shardshuffle=False)))
    assert first['__key__'] == '000000006'
    assert json.loads(first['json'])['num_frames'] == sum(1 for k in first if k.endswith('.jpg'))
    assert int(first['cls']) == json.loads(first['json'])['label']


def test_video_mode_shards_give_the_clips_of_the_video_files(tiny_root, tmp_path):
    """--mode video packs each file's bytes; clips decoded from them equal those from the files."""
    index = pack(tiny_root, tmp_path / 'videos', 'val_video', '--shard-size', '2MB')
    assert index['mode'] == 'video' and index['samples'] == 16
    spec = str(tmp_path / 'videos' / 'index.json')
    cfg = shard_config(tiny_root, tmp_path, spec, spec, **{'DATASET.INPUT_TYPE': 'shards'})
    videos = video_dataset(cfg, parse_metafile(synthetic(tiny_root, 'MetafileSeq', 'val_split1_video.txt')),
                           'val')
    loader = build_loader(cfg, build_dataset(cfg, 'val'), 'val', batch_size=4)
    seen = 0
    for clips, labels, indices, bad in loader:
        assert (bad == -1).all()
        for clip, label, index in zip(clips, labels, indices.tolist()):
            expected, expected_label, _, _ = videos[index]
            assert torch.equal(clip, expected) and int(label) == expected_label
            seen += 1
    assert seen == 16


BAD_SAMPLE_JSON = {6: {'label': 99}, 7: {'label': 'abc'}, 8: {'frame_ext': None},
                   9: {'num_frames': 0}, 10: {'num_frames': 'x'}, 11: [1, 2, 3]}


def rewrite_sample_json(path, changes=BAD_SAMPLE_JSON):
    """Sample number -> the fields to change in its K.json (None: remove the field; a
    non-dict: the whole JSON), the shard otherwise as packed."""
    import io
    with tarfile.open(path) as archive:
        members = [(member, archive.extractfile(member).read()) for member in archive]
    with tarfile.open(path, 'w', format=tarfile.USTAR_FORMAT) as archive:
        for member, data in members:
            number = int(member.name.split('.')[0])
            if member.name.endswith('.json') and number in changes:
                change = changes[number]
                meta = json.loads(data)
                if isinstance(change, dict):
                    meta.update(change)
                    meta = {k: v for k, v in meta.items() if v is not None}
                else:
                    meta = change
                data = json.dumps(meta).encode()
                member.size = len(data)
            archive.addfile(member, io.BytesIO(data))


def test_bad_sample_json_is_replaced_and_counted_and_never_reaches_the_loss(tiny_root, tmp_path,
                                                                            packed, dlac_log):
    """label 99 with DATASET.CLASS_NUM 8, label 'abc', no frame_ext, num_frames 0 or 'x', a
    JSON list: each sample is flagged like an unreadable one, and every label that comes out
    is one of the 8 classes."""
    index = damaged_copy(packed, tmp_path, rewrite_sample_json)
    cfg = shard_config(tiny_root, tmp_path, index, index)
    assert cfg.DATASET.CLASS_NUM == 8
    for split in ('val', 'train'):
        loader = build_loader(cfg, build_dataset(cfg, split), split, batch_size=4)
        begin_epoch(loader, 0)
        indices, labels, bad = [], [], []
        for _, batch_labels, batch_indices, batch_bad in loader:
            indices += batch_indices.tolist()
            labels += batch_labels.tolist()
            bad += [b for b in batch_bad.tolist() if b >= 0]
        assert len(indices) == 24 and sorted(bad) == sorted(BAD_SAMPLE_JSON)
        assert all(label in range(8) for label in labels)
        if split == 'train':
            assert not set(bad) & set(indices)
    for reason in ('label 99', "label 'abc'", 'frame_ext', 'num_frames 0', "num_frames 'x'",
                   'not a JSON object'):
        assert reason in dlac_log.text


def test_any_error_decoding_a_sample_is_counted_not_fatal(tiny_root, tmp_path, packed, monkeypatch):
    """Not only DecodeError: whatever a decoder raises on a sample's bytes flags the sample."""
    from datasets import shards
    decode = shards.decode_image_bytes

    def failing(data, name, *args):
        if name.startswith('sample 3 of') and name.split(' (')[0].endswith('-000000.tar'):
            raise ZeroDivisionError('a decoder bug')
        return decode(data, name, *args)
    monkeypatch.setattr(shards, 'decode_image_bytes', failing)
    cfg = shard_config(tiny_root, tmp_path, packed['train_index'], packed['train_index'])
    loader = build_loader(cfg, build_dataset(cfg, 'val'), 'val', batch_size=6)
    bad = [b for batch in loader for b in batch[3].tolist() if b >= 0]
    assert bad == [3]


def test_check_data_names_the_missing_shard_files(tiny_root, tmp_path, packed):
    from datasets import MetafileError, check_data
    index = damaged_copy(packed, tmp_path, os.remove)
    os.remove(osp.join(osp.dirname(index), 'train_split1-000003.tar'))
    cfg = shard_config(tiny_root, tmp_path, index, packed['val_index'])
    with pytest.raises(MetafileError) as refused:
        check_data(cfg)
    message = str(refused.value)
    assert 'train_split1-000001.tar' in message and 'train_split1-000003.tar' in message
    assert '2 of the 4 shard files' in message and index in message
    check_data(shard_config(tiny_root, tmp_path, packed['train_index'], packed['val_index']))
