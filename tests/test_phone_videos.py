"""Phone footage through every command: predict and demo see rotated video upright and time
variable frame rate video by its timestamps, files that are no usable video get plain words
(the same in predict and demo), reruns never mix rows made differently, and a folder of
.MOV files goes DataTool Custom -> train -> evaluate -> predict -> demo."""
import csv
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

import config
import demo
import evaluate
import predict
import train
from conftest import run_main
from datasets.video_reader import DecodeError, decode_timed_frames
from DataTool.Custom import custom
from utils.whole_video import frame_span
from test_export_demo import small_experiment
from video_variants import (audio_only, camera_frames, encode, image_as_video, remux, truncated)

pytestmark = pytest.mark.slow

FAST_THEN_SLOW = [i / 28 for i in range(16)] + [16 / 28 + (i + 1) / 8 for i in range(16)]


def experiment_args(cfg):
    """small_experiment's KEY VALUE pairs (its checkpoint carries no config)."""
    return ['SNAPSHOT_ROOT', cfg.SNAPSHOT_ROOT, 'EXP_TAG', 'small', 'DATASET.CLASS_NUM', '4',
            'DATASET.SCALE_SIZE', '56', 'DATASET.CROP_SIZE', '48', 'VAL.NUM_SEGMENTS', '3']


@pytest.fixture(scope='module')
def footage():
    return camera_frames(32)


@pytest.fixture
def phone_folder(tmp_path, footage):
    """Videos as phones and downloads hand them over, and files that are not usable videos."""
    folder = tmp_path / 'incoming'
    folder.mkdir()
    plain = encode(folder / 'plain.mkv', footage, 'ffv1', 'bgr0')           # lossless
    remux(plain, folder / 'rotated.mkv', rotation=90)                       # stored sideways
    encode(folder / 'upright.mkv', np.ascontiguousarray(np.rot90(footage, k=-1, axes=(1, 2))),
           'ffv1', 'bgr0')                                                  # what a player shows
    encode(folder / 'IMG_0042.MOV', footage, times=FAST_THEN_SLOW, rotation=90)
    encode(folder / 'one_frame.mp4', footage[:1])
    bad = folder / 'bad'
    bad.mkdir()
    open(bad / 'empty.mp4', 'wb').close()
    audio_only(bad / 'song.mp4')
    image_as_video(bad / 'photo.mp4', footage)
    truncated(encode(tmp_path / 'whole.mp4', camera_frames(120)), bad / 'cut.mp4')
    return folder


def read_rows(out):
    with open(osp.join(str(out), 'predictions.jsonl'), encoding='utf-8') as handle:
        return {osp.basename(row['path']): row for row in map(json.loads, handle)}


def test_predict_sees_phone_video_as_a_player_shows_it(tmp_path, phone_folder, capsys):
    _, cfg = small_experiment(tmp_path, 'tsn')
    out = tmp_path / 'predict'
    def args(*extra):
        return ['--input', str(phone_folder), '--out', str(out)] + list(extra) + experiment_args(cfg)
    assert predict.main(args('--topk', '4')) == 0
    rows = read_rows(out)
    assert set(rows) == {'plain.mkv', 'rotated.mkv', 'upright.mkv', 'IMG_0042.MOV', 'one_frame.mp4'}
    scores = {name: dict(row['top']) for name, row in rows.items()}
    def distance(a, b):
        return max(abs(scores[a][name] - scores[b][name]) for name in scores[a])
    assert distance('rotated.mkv', 'upright.mkv') <= 2e-6               # the same pictures
    assert distance('rotated.mkv', 'plain.mkv') > 1e-4                  # not sideways
    assert rows['plain.mkv']['duration'] == pytest.approx(32 / 12, abs=0.01)
    assert rows['IMG_0042.MOV']['duration'] == pytest.approx(16 / 28 + 16 / 8 + 1 / 8, abs=0.01)
    assert all(row['seconds'] > 0 for row in rows.values())
    with open(out / 'unreadable.csv', encoding='utf-8', newline='') as handle:
        reasons = {osp.basename(row['path']): row['reason'] for row in csv.DictReader(handle)}
    assert reasons == {'empty.mp4': 'is empty (0 bytes)',
                       'song.mp4': 'has no video stream (audio only)',
                       'photo.mp4': 'is a still image (MJPEG), not a video',
                       'cut.mp4': reasons['cut.mp4']}
    assert reasons['cut.mp4'].startswith('damaged or truncated')
    log = (out / 'log' / 'predict.log').read_text(encoding='utf-8')
    assert 'one_frame.mp4 has 1 frame, fewer than the 3' in log

    capsys.readouterr()
    assert predict.main(args('--topk', '3')) == 2                         # other settings
    message = capsys.readouterr().err
    assert str(out) in message and "topk: 4 there, 3 now" in message
    assert predict.main(args('--topk', '4')) == 0 and len(read_rows(out)) == 5   # the same: resumes
    assert predict.main(args('--topk', '3', '--overwrite')) == 0
    assert all(len(row['top']) == 3 for row in read_rows(out).values())


def test_demo_shows_a_phone_video_upright_and_keeps_its_timing(tmp_path, phone_folder):
    _, cfg = small_experiment(tmp_path, 'tsn')
    video = str(phone_folder / 'IMG_0042.MOV')
    result = demo.run_demo(cfg, video, window=8, stride=4, timeline=True)
    assert (result['width'], result['height'], result['rotation']) == (64, 96, 90)
    assert result['variable_frame_rate'] and result['output_fps'] == pytest.approx(28, abs=1)   # ms timestamps
    times = [seconds for seconds, _ in decode_timed_frames(video)]
    for window in result['windows']:
        assert window['start_time'] == pytest.approx(times[window['start_frame']], abs=1e-3)
    assert result['windows'][-1]['end_time'] == pytest.approx(times[-1] + 1 / 8, abs=1e-3)
    capture = cv2.VideoCapture(osp.join(config.exp_dir(cfg), 'demo', 'output.avi'))
    ok, first = capture.read()
    count = 1 + sum(1 for _ in iter(lambda: capture.read()[0], False))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    assert ok and first.shape[:2] == (96, 64)                           # portrait, as shown
    assert count == result['output_frames']
    assert count / fps == pytest.approx(times[-1] + 1 / 8, abs=0.1)     # the source's duration
    segments = json.load(open(osp.join(config.exp_dir(cfg), 'demo', 'segments.json')))['segments']
    assert segments[-1]['end_time'] == pytest.approx(times[-1] + 1 / 8, abs=1e-3)


@pytest.mark.parametrize('name, words', [('cut.mp4', 'damaged or truncated'),
                                         ('photo.mp4', 'is a still image'),
                                         ('song.mp4', 'has no video stream'),
                                         ('', 'is a folder, not a video file')])
def test_demo_refuses_what_predict_lists_as_unreadable(tmp_path, phone_folder, capsys, name, words):
    _, cfg = small_experiment(tmp_path, 'tsn')
    video = str(phone_folder / 'bad' / name) if name else str(phone_folder)
    assert demo.main(['--video', video] + experiment_args(cfg)) == 2
    assert words in capsys.readouterr().err
    assert not osp.exists(osp.join(config.exp_dir(cfg), 'demo', 'output.avi'))
    if name == 'cut.mp4':                   # even called directly, nothing half-rendered
        with pytest.raises(DecodeError, match='damaged or truncated'):
            demo.run_demo(cfg, video)


def test_predict_untrimmed_counts_windows_and_times_them(tmp_path, phone_folder):
    _, cfg = small_experiment(tmp_path, 'tsn')
    out = tmp_path / 'untrimmed'
    assert predict.main(['--input', str(phone_folder / 'IMG_0042.MOV'), '--out', str(out),
                         '--untrimmed', '--window', '8', '--stride', '4'] + experiment_args(cfg)) == 0
    with open(out / 'windows.jsonl', encoding='utf-8') as handle:
        windows = json.loads(handle.readline())
    times = [seconds for seconds, _ in decode_timed_frames(str(phone_folder / 'IMG_0042.MOV'))]
    assert windows['starts'] == [0, 4, 8, 12, 16, 20, 24]
    assert windows['start_times'] == pytest.approx([times[s] for s in windows['starts']], abs=1e-3)
    log = (out / 'log' / 'predict.log').read_text(encoding='utf-8')
    assert 'IMG_0042.MOV: 7 windows of 8 frames every 4' in log
    assert 'to predict with windows over each whole video' in log


# ---------------------------------------------------------------- the whole cycle
def phone_copy(source, target, rotation, times):
    """`source` as a phone stores it: pictures turned against `rotation` (so a player, turning
    them back, shows the original), variable frame rate timestamps."""
    frames = np.stack([frame for _, frame in decode_timed_frames(source)])
    stored = np.ascontiguousarray(np.rot90(frames, k=rotation // 90, axes=(1, 2)))
    return encode(target, stored, times=times[:len(frames)], rotation=rotation)


def test_a_folder_of_phone_videos_through_every_command(tiny_root, tmp_path, capsys):
    classes = ('blink', 'grow')
    videos = tmp_path / 'my_phone'
    originals = {}
    for label, name in enumerate(classes):
        source = osp.join(str(tiny_root), 'synthetic', 'VideoSeq', name)
        (videos / name).mkdir(parents=True)
        for number, file in enumerate(sorted(f for f in os.listdir(source) if osp.isfile(osp.join(source, f)))[:4]):
            target = videos / name / f'IMG_{label}{number:03d}.MOV'
            phone_copy(osp.join(source, file), target, 90 if number % 2 else 270,
                       [i / 30 for i in range(8)] + [8 / 30 + (i + 1) / 10 for i in range(40)])
            originals[target.name] = osp.join(source, file)
    image_as_video(videos / classes[0] / 'IMG_9999.MOV', camera_frames(1))
    (videos / classes[1] / 'notes.txt').write_text('the videos of Sunday\n', encoding='utf-8')

    out = tmp_path / 'data'
    assert custom.main(['--root', str(videos), '--out', str(out), '--val-ratio', '0.5',
                        '--mode', 'frames', '--short-side', '0', '--workers', '1']) is None
    printed = capsys.readouterr().out
    assert 'skipped 1 file that is not a usable video' in printed and 'notes.txt: not a video' in printed
    assert 'skipped 1 samples (1 unreadable)' in printed         # the photo named IMG_9999.MOV
    skipped = (out / 'skipped.txt').read_text(encoding='utf-8')
    assert 'IMG_9999' in skipped and 'is a still image' in skipped
    frames_root = out / 'frames' / classes[0]
    first = sorted(os.listdir(frames_root))[0]
    extracted = cv2.imread(str(frames_root / first / 'img_00001.jpg'))
    original = next(frame for _, frame in decode_timed_frames(originals[first + '.MOV'], fmt='bgr24'))
    assert extracted.shape == original.shape                              # upright, not sideways
    assert np.abs(extracted.astype(int) - original).mean() < 8

    snapshot = tmp_path / 'output'
    common = ['SNAPSHOT_ROOT', str(snapshot), 'EXP_TAG', 'phone', 'DATASET.SCALE_SIZE', '64',
              'DATASET.CROP_SIZE', '56', 'DATA.NUM_SEGMENTS', '2', 'VAL.NUM_SEGMENTS', '3',
              'TRAIN.EPOCHS', '1', 'TRAIN.BASE_BATCH_SIZE', '2', 'VAL.BATCH_SIZE', '2',
              'DATASET.NUM_WORKERS', '0', 'NUM_THREADS', '2']
    assert run_main(train, ['--cfg', str(out / 'dataset_split1.yaml')] + common) == 0
    best = osp.join(str(snapshot), 'ar_output', 'tsn', 'phone', 'checkpoints', 'best.pth')
    assert run_main(evaluate, ['--checkpoint', best]) == 0
    predicted = tmp_path / 'predicted'
    assert run_main(predict, ['--checkpoint', best, '--input', str(videos), '--out',
                              str(predicted)]) == 0
    rows = read_rows(predicted)
    assert len(rows) == 8 and all(row['top'][0][0] in classes for row in rows.values())
    times = [seconds for seconds, _ in decode_timed_frames(str(videos / classes[0] / 'IMG_0001.MOV'))]
    assert rows['IMG_0001.MOV']['duration'] == pytest.approx(frame_span(times, 0, len(times))[1], abs=0.01)
    result = demo.run_demo(_trained_config(best), str(videos / classes[0] / 'IMG_0001.MOV'),
                           checkpoint=best, window=4, stride=2, out_dir=str(tmp_path / 'shown'))
    height, width = original.shape[:2]
    assert (result['width'], result['height'], result['variable_frame_rate']) == (width, height, True)
    assert [w['start_time'] for w in result['windows']] == pytest.approx(
        [times[w['start_frame']] for w in result['windows']], abs=1e-3)
    assert result['windows'][-1]['start_time'] > result['windows'][-1]['start_frame'] / 30 + 0.1


def _trained_config(checkpoint):
    """The config demo.py builds from `--checkpoint` alone."""
    parser = config.build_parser('demo')
    parser.add_argument('--checkpoint')
    cfg, _ = config.parse_config(['--checkpoint', checkpoint], parser=parser, exp_type='E',
                                 trained=config.trained_source)
    return cfg
