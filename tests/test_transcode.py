"""Transcoding for fast decoding: the re-encoded video is what a player showed (upright, same
timestamps), seekable every GOP frames and verified; DataTool.transcode over metafiles and the
DataTools' --transcode; the training start-up hint about long keyframe intervals."""
import json
import logging
import os
import os.path as osp
from unittest import mock

import cv2
import numpy as np
import pytest
import yaml

import config
from conftest import tiny_overrides
from datasets import build_dataset, parse_metafile, warn_slow_seeking
from datasets.video_probe import probe_video, survey_packets
from datasets.video_reader import decode_timed_frames, load_video
from DataTool import transcode
from DataTool.common import transcoding
from DataTool.common.transcoding import TranscodeError, TranscodeSettings, transcode_video
from DataTool.common.video_io import write_video
from DataTool.Custom import custom
from DataTool.common.builder import run_tool
from DataTool.Synthetic.render import render_clip
from video_variants import encode

import dataset_layouts as layouts

FRAMES = 48


@pytest.fixture(scope='module')
def phone_video(tmp_path_factory):
    """A rotated, variable-frame-rate video with one keyframe (stored 170x128, shown 128x170)."""
    frames = render_clip(4, FRAMES, np.random.default_rng(0))
    times = np.concatenate([np.arange(24) * 0.04, 0.96 + np.arange(24) * 0.1])
    path = encode(tmp_path_factory.mktemp('phone') / 'phone.mp4', frames, times=times,
                  rotation=90, options={'g': '250'})
    return path, frames


def test_transcoded_video_is_upright_keeps_timestamps_and_seeks_every_gop(phone_video, tmp_path):
    source, frames = phone_video
    assert survey_packets(source).keyframe_interval == FRAMES
    dest = str(tmp_path / 'fast.mp4')
    assert transcode_video(source, dest, TranscodeSettings(short_side=64, gop=8)) == FRAMES
    info, survey = probe_video(dest), survey_packets(dest)
    assert (info.width, info.height, info.rotation) == (64, 84, 0)        # 128x170 shown, halved to even sides
    assert survey.keyframe_interval <= 8 and survey.frames == FRAMES and survey.variable_rate
    times = [t for t, _ in decode_timed_frames(dest)]
    np.testing.assert_allclose(times, [t for t, _ in decode_timed_frames(source)], atol=1e-3)
    shown = np.stack([cv2.resize(np.rot90(f, -1), (64, 84), interpolation=cv2.INTER_AREA)
                      for f in frames])
    decoded = load_video(dest, range(FRAMES))
    assert np.abs(decoded.astype(int) - shown).mean() < 4


def test_a_segment_starts_at_zero_and_holds_its_frames(phone_video, tmp_path):
    source, _ = phone_video
    dest = str(tmp_path / 'part.mp4')
    count = transcode_video(source, dest, TranscodeSettings(short_side=0, gop=4), start=0.5, end=1.3)
    in_segment = [t for t, _ in decode_timed_frames(source) if 0.5 <= t < 1.3]
    assert count == len(in_segment) == 15
    times = [t for t, _ in decode_timed_frames(dest)]
    np.testing.assert_allclose(times, np.array(in_segment) - in_segment[0], atol=1e-3)
    assert probe_video(dest).width == 128          # 0 keeps the size (as shown)


def test_failed_verification_leaves_no_file(phone_video, tmp_path, monkeypatch):
    monkeypatch.setattr(transcoding, 'count_video_frames', lambda path: FRAMES - 1)
    with pytest.raises(TranscodeError, match=f'{FRAMES} frames written but {FRAMES - 1} decode'):
        transcode_video(phone_video[0], str(tmp_path / 'bad.mp4'))
    assert os.listdir(tmp_path) == []


def test_settings_are_checked():
    with pytest.raises(ValueError, match="codec 'av2'"):
        TranscodeSettings(codec='av2')
    with pytest.raises(ValueError, match='gop must be >= 1'):
        TranscodeSettings(gop=0)


def long_gop_video(path, label, frames=40, seed=0):
    write_video(str(path), render_clip(label, frames, np.random.default_rng(seed)))  # 1 keyframe
    return path


@pytest.fixture
def download(tmp_path):
    """A metafile pair over long-GOP videos, a frame folder, a path out of the root and an
    empty file."""
    root = tmp_path / 'root'
    (root / 'a').mkdir(parents=True)
    for index in range(3):
        long_gop_video(root / 'a' / f'v{index}.mp4', index, seed=index)
    (root / 'a' / 'v0.avi').write_bytes((root / 'a' / 'v0.mp4').read_bytes())  # same stem
    (root / 'a' / 'empty.mp4').write_bytes(b'')
    (root / 'frames').mkdir()
    (tmp_path / 'outside.mp4').write_bytes((root / 'a' / 'v0.mp4').read_bytes())
    (root / 'train.txt').write_text('a/v0.mp4 40 0\na/v1.mp4 40 1\na/v0.avi 40 2\nframes 3 0\n'
                                    '../outside.mp4 40 1\na/empty.mp4 40 0\n')
    (root / 'val.txt').write_text('a/v2.mp4 40\na/v0.mp4 40\n')           # unlabelled
    (root / 'classInd.txt').write_text('0 a\n1 b\n2 c\n')
    return root


def test_tool_writes_videos_and_metafiles_and_resumes(download, tmp_path, monkeypatch, capsys):
    out = tmp_path / 'fast'
    args = ['--meta', str(download / 'train.txt'), str(download / 'val.txt'), '--root',
            str(download), '--out', str(out), '--short-side', '64', '--workers', '2']
    assert transcode.main(args) == 0
    assert (out / 'train.txt').read_text().splitlines() == [
        'a/v0.mp4 40 0', 'a/v1.mp4 40 1', 'a/v0.avi.mp4 40 2']
    assert (out / 'val.txt').read_text().splitlines() == ['a/v2.mp4 40', 'a/v0.mp4 40']
    assert (out / 'classInd.txt').read_text() == '0 a\n1 b\n2 c\n'
    assert sorted(os.listdir(tmp_path)) == ['fast', 'outside.mp4', 'root']
    for record in parse_metafile(str(out / 'train.txt')):
        video = str(out / record.path)
        assert survey_packets(video).keyframe_interval <= 8 and probe_video(video).height == 64
        assert load_video(video, [0, 20, 39]).shape == (3, 64, 84, 3)
    report = json.loads((out / 'transcode_report.json').read_text())
    assert report['videos'] == 4 and report['failed'] == 1
    assert report['failures'][0]['source'].endswith('empty.mp4')
    assert 'empty' in report['failures'][0]['reason']
    assert report['output_bytes'] > 0 and report['size_ratio'] == pytest.approx(
        report['output_bytes'] / report['source_bytes'])
    left_out = [item['reason'] for item in report['left_out'][str(download / 'train.txt')]]
    assert left_out == ['a frame folder: nothing to transcode', '../outside.mp4 leaves --root']
    assert (out / 'transcode_failed.txt').read_text().startswith(str(download / 'a' / 'empty.mp4'))
    printed = capsys.readouterr().out
    assert 'transcoded 4 videos' in printed and '1 videos failed' in printed
    # a rerun re-encodes nothing that was done (only the failed file is tried again)
    tried = []

    def refuse(source, *args, **kwargs):
        tried.append(source)
        raise RuntimeError('not again')
    monkeypatch.setattr(transcode, 'transcode_video', refuse)
    assert transcode.main(args[:-1] + ['1']) == 0
    assert [osp.basename(path) for path in tried] == ['empty.mp4']
    assert (out / 'train.txt').read_text().splitlines()[0] == 'a/v0.mp4 40 0'


def test_tool_refuses_bad_arguments(download, tmp_path):
    for extra in (['--gop', '0'], ['--out', str(download)]):
        args = ['--meta', str(download / 'train.txt'), '--root', str(download),
                '--out', str(tmp_path / 'o')] + extra
        with pytest.raises(SystemExit) as stop:
            transcode.main(args)
        assert stop.value.code == 2


def test_datatool_transcode_option(tmp_path, capsys):
    layouts.custom(str(tmp_path / 'videos'))
    out = tmp_path / 'out'
    assert run_tool(custom.main, ['--root', str(tmp_path / 'videos'), '--out', str(out),
                                  '--mode', 'video', '--transcode', '--gop', '0']) == 2
    assert '--gop/--crf/--codec: gop must be >= 1' in capsys.readouterr().err
    custom.main(['--root', str(tmp_path / 'videos'), '--out', str(out), '--mode', 'video',
                 '--workers', '1', '--transcode', '--gop', '4', '--short-side', '48'])
    settings = yaml.safe_load((out / 'dataset_split1.yaml').read_text())['DATASET']
    assert settings['VIDEO_SEQ_PATH'] == str(out / 'videos')
    records = parse_metafile(settings['TRAIN_META_PATH'])
    assert len(records) == 8
    for record in records:
        video = osp.join(settings['VIDEO_SEQ_PATH'], record.path)
        assert survey_packets(video).keyframe_interval <= 4 and probe_video(video).height == 48
        assert survey_packets(video).frames == record.num_frames


def test_training_start_warns_about_long_keyframe_intervals(download, tmp_path):
    logger = logging.getLogger('dlac.data')
    records = parse_metafile(str(download / 'val.txt'), labelled=False)
    with mock.patch.object(logger, 'warning') as warning:
        warn_slow_seeking(records, str(download), 'val.txt')
    message = warning.call_args[0][0] % warning.call_args[0][1:]
    assert 'keyframes up to 40 frames apart (the first 2 looked at)' in message
    assert 'python -m DataTool.transcode --meta val.txt' in message
    out = tmp_path / 'fast'
    transcode.main(['--meta', str(download / 'val.txt'), '--root', str(download), '--out',
                    str(out), '--workers', '1'])
    with mock.patch.object(logger, 'warning') as warning:
        warn_slow_seeking(parse_metafile(str(out / 'val.txt'), labelled=False), str(out), 'v')
    assert warning.call_count == 0


def test_the_training_set_is_the_one_looked_at(download, tiny_root, tmp_path):
    """build_dataset('train') runs the hint (and 'val' does not: once per run is enough)."""
    overrides = tiny_overrides(tiny_root, tmp_path, **{
        'DATASET.INPUT_TYPE': 'video', 'DATASET.VIDEO_SEQ_PATH': str(download),
        'DATASET.TRAIN_META_PATH': str(download / 'train.txt')})
    cfg = config.build_config(overrides)
    with mock.patch('datasets.warn_slow_seeking') as hint:
        build_dataset(cfg, 'train')
        build_dataset(cfg, 'val')
    assert hint.call_count == 1 and hint.call_args[0][1:] == (str(download), str(download / 'train.txt'))


def test_packet_survey_gives_the_longest_keyframe_run(tmp_path):
    path = str(tmp_path / 'gop30.mp4')
    write_video(path, render_clip(1, 45, np.random.default_rng(2)), fps=25, gop=30)
    survey = survey_packets(path)
    assert (survey.frames, survey.declared, survey.keyframes, survey.keyframe_interval) == (45, 45, 2, 30)
    assert not survey.variable_rate and not survey.truncated
    assert survey.min_gap == survey.max_gap == pytest.approx(0.04)


def test_write_video_options_replace_the_defaults(tmp_path):
    frames = render_clip(1, 24, np.random.default_rng(3))
    default, coarse = str(tmp_path / 'default.mp4'), str(tmp_path / 'coarse.mp4')
    write_video(default, frames)
    write_video(coarse, frames, options={'crf': '40'})
    assert os.path.getsize(coarse) < 0.7 * os.path.getsize(default)   # crf 16 -> 40
    assert survey_packets(coarse).frames == 24
