"""DataTool.check: every kind of broken or surprising sample named with its reason, the clean
metafiles, the report files, resuming, and training on what it cleaned."""
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest

import train
from conftest import run_main, tiny_overrides
from DataTool import check
from DataTool.common.video_io import write_video
from DataTool.Synthetic.render import render_clip
from video_variants import image_as_video, remux, truncated

SYNTHETIC = 'synthetic'


def read_lines(path):
    with open(path, encoding='utf-8') as handle:
        return [line.rstrip('\n') for line in handle]


@pytest.fixture(scope='module')
def damaged_set(tiny_root, tmp_path_factory):
    """The tiny synthetic set's videos plus one sample of each kind of trouble; returns
    (video root, train metafile, val metafile)."""
    base = tmp_path_factory.mktemp('damaged')
    root = base / 'videos'
    shutil.copytree(tiny_root / SYNTHETIC / 'VideoSeq', root)
    meta = tiny_root / SYNTHETIC / 'MetafileSeq'
    shutil.copy(meta / 'classInd.txt', base / 'classInd.txt')
    train_lines = read_lines(meta / 'train_split1_video.txt')
    val_lines = read_lines(meta / 'val_split1_video.txt')
    source = train_lines[0].split()[0]                      # move_left/train_move_left_000.mp4
    (root / 'trouble').mkdir()
    truncated(root / source, root / 'trouble' / 'cut_download.mp4')
    (root / 'trouble' / 'empty.mp4').write_bytes(b'')
    image_as_video(root / 'trouble' / 'photo.mp4', render_clip(0, 1, np.random.default_rng(0)))
    remux(root / source, root / 'trouble' / 'phone.mp4', rotation=90)
    write_video(str(root / 'trouble' / 'download.mp4'), render_clip(2, 40, np.random.default_rng(1)))
    shutil.copy(root / source, root / 'trouble' / 'copy_of_train.mp4')
    path, frames, label = train_lines[1].rsplit(maxsplit=2)
    train_lines[1] = f'{path} {int(frames) + 5} {label}'   # wrong frame counts: too many
    wrong_count = (path, int(frames))
    short, frames, label = train_lines[3].rsplit(maxsplit=2)
    train_lines[3] = f'{short} {int(frames) - 3} {label}'  # and too few
    frames = int(train_lines[0].split()[1])
    train_lines += [f'trouble/cut_download.mp4 {frames} 0', 'trouble/empty.mp4 10 0',
                    'trouble/photo.mp4 10 0', f'trouble/phone.mp4 {frames} 0',
                    'trouble/download.mp4 40 2', 'trouble/gone.mp4 12 1', 'not a sample line']
    val_lines += [f'trouble/copy_of_train.mp4 {frames} 0']
    (base / 'train.txt').write_text('\n'.join(train_lines) + '\n', encoding='utf-8')
    (base / 'val.txt').write_text('\n'.join(val_lines) + '\n', encoding='utf-8')
    return root, base / 'train.txt', base / 'val.txt', wrong_count, source


@pytest.fixture(scope='module')
def checked(damaged_set, tmp_path_factory):
    root, train_meta, val_meta, _, _ = damaged_set
    out = tmp_path_factory.mktemp('check')
    code = check.main(['--meta', str(train_meta), str(val_meta), '--root', str(root),
                       '--out', str(out), '--workers', '2'])
    with open(out / 'report.json', encoding='utf-8') as handle:
        return code, out, json.load(handle)


def problems_of(report, sample):
    return {p['problem']: p for p in report['problems'] if p['sample'] == sample}


def test_every_trouble_is_named_with_its_reason(checked, damaged_set):
    code, _, report = checked
    _, train_meta, val_meta, (wrong_path, real_frames), source = damaged_set
    assert code == 0
    expect = {
        'trouble/cut_download.mp4': ('truncated', 'unusable', 'truncated'),
        'trouble/empty.mp4': ('empty', 'unusable', '0 bytes'),
        'trouble/photo.mp4': ('not_a_video', 'unusable', 'still image'),
        'trouble/gone.mp4': ('missing', 'unusable', 'not found'),
        wrong_path: ('frame_count', 'corrected', f'the video has {real_frames}'),
        read_lines(train_meta)[3].split()[0]: ('frame_count', 'corrected', 'the metafile says'),
        'trouble/phone.mp4': ('rotated', 'note', 'turned 90 degrees'),
        'trouble/download.mp4': ('long_keyframe_interval', 'warning', '40 frames apart'),
        'trouble/copy_of_train.mp4': ('duplicate_across_splits', 'warning', source),
    }
    for sample, (kind, severity, words) in expect.items():
        found = problems_of(report, sample)
        assert kind in found, (sample, found)
        assert found[kind]['severity'] == severity and words in found[kind]['reason'], found[kind]
    bad_line = [p for p in report['problems'] if p['problem'] == 'bad_line']
    assert len(bad_line) == 1 and bad_line[0]['metafile'] == str(train_meta)
    assert bad_line[0]['line'] == len(read_lines(train_meta))
    duplicate = problems_of(report, 'trouble/copy_of_train.mp4')['duplicate_across_splits']
    assert duplicate['metafile'] == str(val_meta) and 'train.txt:1' in duplicate['reason']
    # the healthy samples have no problem
    flagged = {p['sample'] for p in report['problems']}
    assert not flagged & {line.split()[0] for line in read_lines(val_meta)[:-1]}


def test_clean_metafiles_leave_out_unusable_and_correct_counts(checked, damaged_set):
    _, out, report = checked
    _, train_meta, val_meta, (wrong_path, real_frames), _ = damaged_set
    clean_train = read_lines(out / 'clean_train.txt')
    paths = [line.rsplit(maxsplit=2)[0] for line in clean_train]
    for gone in ('cut_download', 'empty', 'photo', 'gone'):
        assert f'trouble/{gone}.mp4' not in paths
    assert 'trouble/phone.mp4' in paths and 'trouble/download.mp4' in paths
    assert f'{wrong_path} {real_frames} 0' in clean_train
    assert len(clean_train) == len(read_lines(train_meta)) - 5
    assert read_lines(out / 'clean_val.txt') == read_lines(val_meta)   # the copy is kept...
    summary = report['summary']
    assert summary['unusable'] == {'truncated': 1, 'empty': 1, 'not_a_video': 1, 'missing': 1}
    assert summary['samples_per_class']['train.txt']['2'] == 3 + 1      # with download.mp4
    with open(out / 'report.png', 'rb') as handle:
        assert handle.read(8) == b'\x89PNG\r\n\x1a\n'
    assert osp.getsize(out / 'report.png') > 20_000


def test_drop_duplicates_and_the_advice(damaged_set, tmp_path, capsys):
    root, train_meta, val_meta, _, _ = damaged_set
    assert check.main(['--meta', str(train_meta), str(val_meta), '--root', str(root),
                       '--out', str(tmp_path), '--workers', '1', '--drop-duplicates']) == 0
    printed = capsys.readouterr().out
    assert 'trouble/copy_of_train.mp4' not in '\n'.join(read_lines(tmp_path / 'clean_val.txt'))
    assert len(read_lines(tmp_path / 'clean_val.txt')) == len(read_lines(val_meta)) - 1
    assert '5 samples cannot be used' in printed
    assert '1 video with keyframes every 40 frames' in printed
    assert 'python -m DataTool.transcode --meta' in printed
    assert '2 wrong frame counts:' in printed and '1 sample in two splits' in printed
    assert '1 video shown rotated' in printed


def test_a_rerun_continues_from_the_results(checked, damaged_set, monkeypatch, capsys, tmp_path):
    """Only what changed is checked again: here one line's frame count."""
    _, out, report = checked
    root, train_meta, val_meta, _, _ = damaged_set
    with open(out / check.RESULTS, encoding='utf-8') as handle:
        done = len(handle.readlines())
    lines = read_lines(train_meta)
    path, frames, label = lines[2].rsplit(maxsplit=2)
    lines[2] = f'{path} {int(frames) + 1} {label}'
    edited = tmp_path / 'train.txt'
    edited.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    checked_again = []
    real = check.check_sample
    monkeypatch.setattr(check, 'check_sample', lambda job: checked_again.append(job[1]) or real(job))
    assert check.main(['--meta', str(edited), str(val_meta), '--root', str(root),
                       '--out', str(out), '--workers', '1']) == 0
    assert checked_again == [str(root / path)]
    assert f'{done - 1} samples were checked by an earlier run' in capsys.readouterr().out
    with open(out / 'report.json', encoding='utf-8') as handle:
        again = json.load(handle)['problems']
    assert [p for p in again if p['sample'] == path][0]['reason'].startswith(
        f'the metafile says {int(frames) + 1} frames')
    assert len(again) == len(report['problems']) + 1


def test_frame_folders_sampled_and_fully_decoded(tmp_path, tiny_root):
    """A broken frame among the sampled ones (the last) is found by the quick check; one
    between them only with --full."""
    root = tmp_path / 'frames'
    shutil.copytree(tiny_root / SYNTHETIC / 'VideoSeq' / 'grow', root / 'grow')
    folders = sorted(p.name for p in (root / 'grow').iterdir() if p.is_dir())[:3]
    counts = [len([f for f in os.listdir(root / 'grow' / name) if f.startswith('img_')])
              for name in folders]
    for name, frame in ((folders[1], 3), (folders[2], counts[2])):   # 3: no segment centre
        broken = root / 'grow' / name / f'img_{frame:05d}.jpg'
        broken.write_bytes(broken.read_bytes()[:200])
    meta = tmp_path / 'train.txt'
    meta.write_text(''.join(f'grow/{name} {count} 2\n' for name, count in zip(folders, counts)))
    assert check.main(['--meta', str(meta), '--root', str(root), '--out', str(tmp_path / 'quick'),
                       '--workers', '1', '--frames', '2']) == 0
    assert read_lines(tmp_path / 'quick' / 'clean_train.txt') == read_lines(meta)[:2]
    assert check.main(['--meta', str(meta), '--root', str(root), '--out', str(tmp_path / 'full'),
                       '--workers', '1', '--full']) == 0
    with open(tmp_path / 'full' / 'report.json', encoding='utf-8') as handle:
        found = json.load(handle)['problems']
    assert [(p['sample'], p['problem']) for p in found] == [
        (f'grow/{folders[1]}', 'decode_failed'), (f'grow/{folders[2]}', 'decode_failed')]
    assert 'img_00003.jpg' in found[0]['reason']
    assert read_lines(tmp_path / 'full' / 'clean_train.txt') == read_lines(meta)[:1]


def test_bad_arguments_exit_2(tmp_path):
    with pytest.raises(SystemExit) as stop:
        check.main(['--meta', str(tmp_path / 'nothing.txt'), '--root', str(tmp_path),
                    '--out', str(tmp_path / 'out')])
    assert stop.value.code == 2


@pytest.mark.slow
def test_the_clean_metafiles_train(checked, damaged_set, tiny_root, tmp_path):
    root = damaged_set[0]
    _, out, _ = checked
    overrides = tiny_overrides(tiny_root, tmp_path, **{
        'DATASET.INPUT_TYPE': 'video', 'DATASET.VIDEO_SEQ_PATH': str(root),
        'DATASET.TRAIN_META_PATH': str(out / 'clean_train.txt'),
        'DATASET.VAL_META_PATH': str(out / 'clean_val.txt'), 'TRAIN.EPOCHS': 1,
        'DATASET.MAX_BAD_FRACTION': 0.0})
    assert run_main(train, overrides) == 0


def test_an_unforeseen_failure_is_the_samples_not_the_checks(tmp_path, monkeypatch):
    from DataTool.common import sample_check
    (tmp_path / 'a.mp4').write_bytes(b'x' * 100)
    monkeypatch.setattr(sample_check, 'survey_packets',
                        lambda path: (_ for _ in ()).throw(PermissionError(13, 'Permission denied')))
    result = sample_check.check_sample(('k', str(tmp_path / 'a.mp4'), 10, {'full': False, 'frames': 8}))
    assert result['problems'] == [{'severity': 'unusable', 'problem': 'unreadable',
                                   'reason': 'PermissionError: [Errno 13] Permission denied'}]
