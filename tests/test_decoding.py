import numpy as np
import pytest

from datasets.decoding import DecodeError, load_frame_folder, load_video, read_image
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
    with pytest.raises(DecodeError, match='video not found: .*missing.mp4'):
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
