"""DataTool: official layouts in, metafiles, frames and skip reports out."""
import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import pytest
import yaml

from DataTool.ActivityNet import activitynet
from DataTool.common import archives
from DataTool.common.archives import ArchiveError, unpack
from DataTool.Custom import custom
from DataTool.HMDB51 import hmdb51
from DataTool.Kinetics import kinetics
from DataTool.SomethingV2 import sthv2
from DataTool.UCF101 import ucf101
from datasets.records import parse_metafile, read_class_names
from datasets.video_reader import count_video_frames
from tests import dataset_layouts as layouts

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def read_meta(out, subset, split=1):
    return {r.path: r for r in parse_metafile(osp.join(out, 'meta', f'{subset}_split{split}.txt'))}


def read_skipped(out):
    with open(osp.join(out, 'skipped.txt'), encoding='utf-8') as handle:
        rows = [line.rstrip('\n').split('\t') for line in handle if not line.startswith('#')]
    return {row[1]: row[0] for row in rows}


def frame_files(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith('.jpg'))


def test_hmdb51_nested_archives_splits_and_skip_report(tmp_path):
    expected = layouts.hmdb51(str(tmp_path / 'download'), str(tmp_path / 'staging'))
    out = str(tmp_path / 'hmdb51')
    hmdb51.main(['--root', str(tmp_path / 'download'), '--out', out, '--split', '1', '2',
                 '--workers', '2', '--short-side', '32'])
    assert read_class_names(osp.join(out, 'meta', 'classInd.txt')) == layouts.HMDB_CLASSES
    train, val = read_meta(out, 'train'), read_meta(out, 'val')
    assert (len(train), len(val)) == (expected['train'], expected['val'])
    record = train['brush_hair/brush_hair_clip1_u_nm_np1_fr_goo_1']
    assert (record.label, record.num_frames) == (0, 13)
    assert val['wave/wave_clip2_u_nm_np1_fr_goo_2'].label == 2
    # frames: 1-based names, short side resized to 32 (80x60 -> 42x32)
    folder = osp.join(out, 'frames', 'brush_hair', 'brush_hair_clip1_u_nm_np1_fr_goo_1')
    assert frame_files(folder)[0] == 'img_00001.jpg' and len(frame_files(folder)) == 13
    assert cv2.imread(osp.join(folder, 'img_00013.jpg')).shape == (32, 42, 3)
    # split 2 tags other videos: the video unused in split 1 is training data there
    assert 'brush_hair/brush_hair_clip3_u_nm_np1_fr_goo_3' in read_meta(out, 'val', split=2)
    assert read_skipped(out) == {expected['missing'][0]: 'missing',
                                 expected['unreadable'][0]: 'unreadable'}
    config = yaml.safe_load(open(osp.join(out, 'dataset_split2.yaml')))['DATASET']
    assert config['TRAIN_META_PATH'].endswith(osp.join('meta', 'train_split2.txt'))
    assert config['CLASS_NUM'] == 3 and config['VIDEO_SEQ_PATH'] == osp.join(out, 'frames')


def test_rerun_skips_finished_samples(tmp_path):
    layouts.hmdb51(str(tmp_path / 'download'), str(tmp_path / 'staging'))
    out = str(tmp_path / 'hmdb51')
    args = ['--root', str(tmp_path / 'download'), '--out', out, '--workers', '1']
    hmdb51.main(args)
    frame = osp.join(out, 'frames', 'wave', 'wave_clip1_u_nm_np1_fr_goo_1', 'img_00001.jpg')
    before = os.stat(frame).st_mtime_ns
    shutil.rmtree(osp.join(out, 'frames', 'wave', 'wave_clip2_u_nm_np1_fr_goo_2'))
    hmdb51.main(args)
    assert os.stat(frame).st_mtime_ns == before                       # kept, not re-extracted
    assert len(frame_files(osp.join(out, 'frames', 'wave', 'wave_clip2_u_nm_np1_fr_goo_2'))) == 14


def test_hmdb51_video_mode_points_at_the_unpacked_videos(tmp_path):
    layouts.hmdb51(str(tmp_path / 'download'), str(tmp_path / 'staging'))
    out = str(tmp_path / 'hmdb51')
    hmdb51.main(['--root', str(tmp_path / 'download'), '--out', out, '--mode', 'video',
                 '--workers', '1'])
    config = yaml.safe_load(open(osp.join(out, 'dataset_split1.yaml')))['DATASET']
    train = read_meta(out, 'train')
    record = train['brush_hair/brush_hair_clip1_u_nm_np1_fr_goo_1.avi']
    video = osp.join(config['VIDEO_SEQ_PATH'], record.path)
    assert record.num_frames == 13 == count_video_frames(video)
    assert config['INPUT_TYPE'] == 'video' and not osp.isdir(osp.join(out, 'frames'))
    assert read_skipped(out)['cartwheel/cartwheel_clip1_u_nm_np1_fr_goo_1'] == 'unreadable'


def test_ucf101_zero_based_labels_and_handstand_quirk(tmp_path):
    expected = layouts.ucf101(str(tmp_path / 'download'))
    out = str(tmp_path / 'ucf101')
    ucf101.main(['--root', str(tmp_path / 'download'), '--out', out, '--workers', '1',
                 '--short-side', '32'])
    assert read_class_names(osp.join(out, 'meta', 'classInd.txt')) == layouts.UCF_CLASSES
    train, val = read_meta(out, 'train'), read_meta(out, 'val')
    assert (len(train), len(val)) == (expected['train'], expected['val'])
    handstand = train['HandstandPushups/v_HandStandPushups_g03_c01']
    assert (handstand.label, handstand.num_frames) == (1, 13)
    assert val['HandstandPushups/v_HandStandPushups_g01_c01'].label == 1     # from the folder
    assert {r.label for r in val.values()} == {0, 1, 2}
    assert read_skipped(out) == {}


def test_ucf101_label_that_contradicts_the_folder_names_the_line(tmp_path):
    layouts.ucf101(str(tmp_path / 'download'))
    list_path = tmp_path / 'download' / 'ucfTrainTestlist' / 'trainlist01.txt'
    lines = list_path.read_text().splitlines()
    lines[1] = lines[1].rsplit(' ', 1)[0] + ' 3'
    list_path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(Exception, match=r'trainlist01.txt:2: label 3 does not match'):
        ucf101.main(['--root', str(tmp_path / 'download'), '--out', str(tmp_path / 'o')])


def test_kinetics_quoted_labels_and_missing_clips(tmp_path):
    expected = layouts.kinetics(str(tmp_path / 'k'))
    out = str(tmp_path / 'out')
    kinetics.main(['--root', str(tmp_path / 'k'), '--out', out, '--workers', '2',
                   '--mode', 'video'])
    assert read_class_names(osp.join(out, 'meta', 'classInd.txt')) == layouts.KINETICS_LABELS
    train, val = read_meta(out, 'train'), read_meta(out, 'val')
    assert (len(train), len(val)) == (expected['train'], expected['val'])
    football = train['train/passing American football (in game)/yt10-AbC__000000_000010.mp4']
    assert (football.label, football.num_frames) == (1, 8)
    skipped = read_skipped(out)
    assert skipped == {'abseiling/yt01-AbC__000010_000020': 'missing',
                       'zumba/yt22-AbC__000020_000030': 'missing',
                       'passing_American_football_in_game/yt12-AbC__000020_000030': 'empty'}
    # the cached frame counts make a rerun skip decoding, and give the same metafile
    before = open(osp.join(out, 'meta', 'train_split1.txt')).read()
    kinetics.main(['--root', str(tmp_path / 'k'), '--out', out, '--mode', 'video'])
    assert open(osp.join(out, 'meta', 'train_split1.txt')).read() == before


def test_kinetics_class_count_check_exits_2(tmp_path):
    layouts.kinetics(str(tmp_path / 'k'))
    result = subprocess.run([sys.executable, '-m', 'DataTool.Kinetics.kinetics', '--root',
                             str(tmp_path / 'k'), '--out', str(tmp_path / 'o'), '--version', '400'],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert 'train.csv names 3 classes, expected 400' in result.stderr


def test_sthv2_labels_from_templates_and_webm(tmp_path):
    expected = layouts.sthv2(str(tmp_path / 's'))
    out = str(tmp_path / 'out')
    sthv2.main(['--root', str(tmp_path / 's'), '--out', out, '--workers', '1',
                '--short-side', '48'])
    assert read_class_names(osp.join(out, 'meta', 'classInd.txt')) == list(layouts.STHV2_LABELS)
    train, val = read_meta(out, 'train'), read_meta(out, 'val')
    assert (len(train), len(val)) == (expected['train'], expected['val'])
    for entry in expected['entries']['validation']:
        template = entry['template'].replace('[', '').replace(']', '')
        assert val[entry['id']].label == int(layouts.STHV2_LABELS[template])
        assert val[entry['id']].num_frames == 9
    assert cv2.imread(osp.join(out, 'frames', '1007', 'img_00009.jpg')).shape == (48, 64, 3)


@pytest.mark.parametrize('mode', ['frames', 'video'])
def test_activitynet_one_sample_per_segment_cut_by_time(tmp_path, mode):
    expected = layouts.activitynet(str(tmp_path / 'a'))
    out = str(tmp_path / 'out')
    activitynet.main(['--root', str(tmp_path / 'a'), '--out', out, '--workers', '1',
                      '--mode', mode])
    records = {**read_meta(out, 'train'), **read_meta(out, 'val')}
    suffix = '.mp4' if mode == 'video' else ''
    assert {name: records[name + suffix].num_frames for name in expected['frames']} == expected['frames']
    assert {name: records[name + suffix].label for name in expected['labels']} == expected['labels']
    assert len(records) == 4 and read_skipped(out) == {'v_ccc_1': 'empty'}
    if mode == 'video':
        config = yaml.safe_load(open(osp.join(out, 'dataset_split1.yaml')))['DATASET']
        clip = osp.join(config['VIDEO_SEQ_PATH'], 'v_aaa_1.mp4')
        assert count_video_frames(clip) == 15


def test_custom_random_split_and_given_lists(tmp_path):
    layouts.custom(str(tmp_path / 'videos'))
    out = str(tmp_path / 'out')
    custom.main(['--root', str(tmp_path / 'videos'), '--out', out, '--val-ratio', '0.4',
                 '--mode', 'video', '--workers', '1'])
    train, val = read_meta(out, 'train'), read_meta(out, 'val')
    assert (len(train), len(val)) == (6, 4) and not set(train) & set(val)
    assert {r.label for r in val.values()} == {0, 1}
    (tmp_path / 'train.txt').write_text('cat/cat0.mp4\ndog/dog1.mp4 1\n')
    (tmp_path / 'val.txt').write_text('# mine\ndog/dog2.mp4\n')
    custom.main(['--root', str(tmp_path / 'videos'), '--out', out, '--mode', 'video',
                 '--train-list', str(tmp_path / 'train.txt'), '--val-list', str(tmp_path / 'val.txt')])
    assert sorted((r.path, r.label) for r in read_meta(out, 'train').values()) == [
        ('cat/cat0.mp4', 0), ('dog/dog1.mp4', 1)]
    (tmp_path / 'val.txt').write_text('bird/b.mp4\n')
    with pytest.raises(Exception, match=r"val.txt:1: expected '<class name>/<video>'"):
        custom.main(['--root', str(tmp_path / 'videos'), '--out', out,
                     '--train-list', str(tmp_path / 'train.txt'), '--val-list', str(tmp_path / 'val.txt')])


def test_rar_without_a_rar_tool_says_what_to_install(tmp_path, monkeypatch):
    rar = tmp_path / 'hmdb51_org.rar'
    rar.write_bytes(b'Rar!\x1a\x07\x00')
    monkeypatch.setattr(archives.shutil, 'which', lambda program: None)
    with pytest.raises(ArchiveError, match=r'hmdb51_org.rar: no RAR tool found; install one of: '
                                           r'unrar .*7z .*bsdtar'):
        unpack(str(rar), str(tmp_path / 'out'))


def test_damaged_zip_is_named(tmp_path):
    archive = tmp_path / 'UCF101TrainTestSplits-RecognitionTask.zip'
    archive.write_bytes(b'PK\x03\x04 truncated')
    with pytest.raises(ArchiveError, match=r'RecognitionTask.zip: damaged or incomplete'):
        unpack(str(archive), str(tmp_path / 'out'))


def test_missing_download_exits_2_naming_what_is_missing(tmp_path):
    os.makedirs(tmp_path / 'empty')
    result = subprocess.run([sys.executable, 'DataTool/HMDB51/hmdb51.py', '--root',
                             str(tmp_path / 'empty'), '--out', str(tmp_path / 'o')],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert 'no split files' in result.stderr and 'test_train_splits.rar' in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize('tool, build_layout, preset, mode', [
    ('DataTool.UCF101.ucf101', layouts.ucf101, 'ucf101_tsn_bninception_rgb', 'frames'),
    ('DataTool.SomethingV2.sthv2', layouts.sthv2, 'sthv2_mfnet3d_rgb', 'video'),
])
def test_training_on_a_tool_output_with_a_preset(tmp_path, tool, build_layout, preset, mode):
    """The preset and the tool's dataset file are all train.py and evaluate.py need; the
    other keys only make the run small enough for a test."""
    build_layout(str(tmp_path / 'download'))
    out = str(tmp_path / 'out')
    subprocess.run([sys.executable, '-m', tool, '--root', str(tmp_path / 'download'),
                    '--out', out, '--mode', mode, '--workers', '1', '--short-side', '64'],
                   cwd=REPO, check=True, timeout=300)
    small = ['SNAPSHOT_ROOT', str(tmp_path / 'runs'), 'TRAIN.EPOCHS', '1',
             'TRAIN.BASE_BATCH_SIZE', '2', 'DATASET.NUM_WORKERS', '0', 'DATASET.SCALE_SIZE', '64',
             'DATASET.CROP_SIZE', '64', 'DATA.NUM_SEGMENTS', '2', 'DATA.CLIP_LEN', '4',
             'VAL.NUM_SEGMENTS', '2', 'VAL.NUM_CLIPS', '1', 'VAL.NUM_CROPS', '1', 'NUM_THREADS', '2']
    configs = ['--cfg', f'experiments/{preset}.yaml', '--cfg', osp.join(out, 'dataset_split1.yaml')]
    for script in ('Script/run_train_dp_m.sh', 'Script/run_evaluate_m.sh'):
        result = subprocess.run(['bash', script] + configs + small, cwd=REPO, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    tag = yaml.safe_load(open(osp.join(REPO, 'experiments', f'{preset}.yaml')))
    exp = tmp_path / 'runs' / 'ar_output' / tag['MODEL_NAME'] / tag['EXP_TAG']
    saved = yaml.safe_load(open(exp / 'config.yaml'))
    assert saved['DATASET']['CLASS_NUM'] == 3 and saved['DATASET']['INPUT_TYPE'] == mode
    assert saved['DATASET']['FLIP'] == (preset.startswith('ucf101'))
    assert (exp / 'checkpoints' / 'best.pth').is_file() and (exp / 'eval' / 'report.json').is_file()


def test_flow_extraction_writes_flow_metafiles_and_config(tmp_path):
    layouts.custom(str(tmp_path / 'videos'), per_class=3)
    out = str(tmp_path / 'out')
    args = ['--root', str(tmp_path / 'videos'), '--out', out, '--val-ratio', '0.34',
            '--workers', '1', '--short-side', '32', '--flow']
    custom.main(args)
    frames, flows = read_meta(out, 'train'), {r.path: r for r in parse_metafile(
        osp.join(out, 'meta', 'train_split1_flow.txt'))}
    assert set(frames) == set(flows) and len(flows) == 4
    for path, record in flows.items():
        assert record.num_frames == frames[path].num_frames - 1 == 7
        folder = osp.join(out, 'frames', path)
        assert len([f for f in os.listdir(folder) if f.startswith('flow_x_')]) == 7
        assert cv2.imread(osp.join(folder, 'flow_y_00007.jpg'), cv2.IMREAD_UNCHANGED).shape == (32, 42)
    config = yaml.safe_load(open(osp.join(out, 'dataset_split1_flow.yaml')))
    assert config['MODALITY'] == 'Flow'
    assert config['DATASET']['TRAIN_META_PATH'].endswith('train_split1_flow.txt')
    with pytest.raises(Exception, match='--flow extracts flow frames: it needs --mode frames'):
        custom.main(args + ['--mode', 'video'])


def test_activitynet_untrimmed_one_sample_per_video(tmp_path):
    layouts.activitynet(str(tmp_path / 'a'))
    out = str(tmp_path / 'out')
    activitynet.main(['--root', str(tmp_path / 'a'), '--out', out, '--workers', '1', '--mode', 'video',
                      '--untrimmed'])
    records = {**read_meta(out, 'train'), **read_meta(out, 'val')}
    # aaa: 1.0 s of coffee, 1.5 s of the dog; bbb: the dog (clipped to 1 s); ccc: coffee
    assert {osp.basename(name): (r.label, r.num_frames) for name, r in records.items()} == {
        'v_aaa.mp4': (1, 40), 'v_bbb.mp4': (1, 40), 'v_ccc.mp4': (0, 40)}
