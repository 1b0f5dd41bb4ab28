import json
import os.path as osp
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT
from datasets.decoding import count_video_frames, load_frame_folder, load_video
from datasets.records import parse_metafile, read_class_names
from DataTool.Synthetic.pairs_table import table_rows
from DataTool.Synthetic.render import CLASS_NAMES, TIME_REVERSED_PAIRS, pair_report, render_clip
from DataTool.Synthetic.synthetic import generate, is_complete
from utils.file_lock import file_lock


def test_pairs_differ_only_in_frame_order():
    """move_left is move_right played backwards, shrink is grow played backwards: only the
    order of the frames separates the classes of a pair."""
    for a, b in [(0, 1), (2, 3)]:
        forward = render_clip(a, 20, np.random.default_rng(7))
        backward = render_clip(b, 20, np.random.default_rng(7))
        assert np.array_equal(forward, backward[::-1])
        assert not np.array_equal(forward, backward)
    assert set(TIME_REVERSED_PAIRS) == {(0, 1), (2, 3), (4, 5)}


def test_every_class_renders_visible_motion():
    for label in range(len(CLASS_NAMES)):
        frames = render_clip(label, 16, np.random.default_rng(label))
        assert frames.shape == (16, 128, 170, 3) and frames.dtype == np.uint8
        assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).max() > 100 or label == 7
        assert np.abs(np.diff(frames.astype(int), axis=0)).max() > 100


def test_generated_layout_metafiles_and_containers(tiny_root):
    out = osp.join(tiny_root, 'synthetic')
    meta = osp.join(out, 'MetafileSeq')
    assert read_class_names(osp.join(meta, 'classInd.txt')) == list(CLASS_NAMES)
    frames = parse_metafile(osp.join(meta, 'train_split1.txt'), len(CLASS_NAMES))
    videos = parse_metafile(osp.join(meta, 'train_split1_video.txt'), len(CLASS_NAMES))
    assert len(frames) == len(videos) == 3 * len(CLASS_NAMES)
    assert len(parse_metafile(osp.join(meta, 'val_split1.txt'))) == 2 * len(CLASS_NAMES)
    assert {osp.splitext(r.path)[1] for r in videos} == {'.mp4', '.avi', '.mkv', '.webm'}
    assert sorted({r.label for r in frames}) == list(range(len(CLASS_NAMES)))
    root = osp.join(out, 'VideoSeq')
    for frame_record, video_record in zip(frames, videos):
        assert frame_record.num_frames == video_record.num_frames
        assert 12 <= frame_record.num_frames <= 16
        last = frame_record.num_frames
        assert osp.isfile(osp.join(root, frame_record.path, f'img_{last:05d}.jpg'))
        assert not osp.exists(osp.join(root, frame_record.path, f'img_{last + 1:05d}.jpg'))
    sample = videos[3]
    assert count_video_frames(osp.join(root, sample.path)) == sample.num_frames


def test_frames_and_video_agree(tiny_root):
    root = osp.join(tiny_root, 'synthetic', 'VideoSeq')
    frames = parse_metafile(osp.join(tiny_root, 'synthetic', 'MetafileSeq', 'val_split1.txt'))
    videos = parse_metafile(osp.join(tiny_root, 'synthetic', 'MetafileSeq', 'val_split1_video.txt'))
    for frame_record, video_record in list(zip(frames, videos))[:4]:
        indices = [0, frame_record.num_frames // 2, frame_record.num_frames - 1]
        from_jpeg = load_frame_folder(osp.join(root, frame_record.path), indices).astype(float)
        from_video = load_video(osp.join(root, video_record.path), indices).astype(float)
        assert from_jpeg.shape == from_video.shape == (3, 128, 170, 3)
        assert np.abs(from_jpeg - from_video).mean() < 3.0   # JPEG re-encoding only


def test_deterministic_and_reused(tmp_path):
    first, second = tmp_path / 'a', tmp_path / 'b'
    for out in (first, second):
        generate(str(out), seed=3, videos_per_class=(1, 1), frame_range=(8, 8), show_progress=False)
    image_a = load_frame_folder(str(first / 'VideoSeq' / 'grow' / 'train_grow_000'), [0, 7])
    image_b = load_frame_folder(str(second / 'VideoSeq' / 'grow' / 'train_grow_000'), [0, 7])
    assert np.array_equal(image_a, image_b)
    assert is_complete(str(first), seed=3, videos_per_class=(1, 1), frame_range=(8, 8))
    assert not is_complete(str(first), seed=4, videos_per_class=(1, 1), frame_range=(8, 8))


def test_pair_report_separates_family_and_order():
    confusion = np.zeros((8, 8), dtype=int)
    confusion[0, 0], confusion[0, 1], confusion[1, 1] = 5, 5, 10      # half the lefts wrong
    confusion[2, 2], confusion[3, 3] = 10, 10
    confusion[4, 5], confusion[5, 4] = 10, 10                         # rotations all swapped
    confusion[6, 6], confusion[7, 6] = 10, 10
    report = pair_report(confusion)
    assert report['pairs']['move_left/move_right'] == {'family_accuracy': 100.0,
                                                       'within_pair_accuracy': 75.0}
    assert report['pairs']['rotate_clockwise/rotate_counterclockwise']['within_pair_accuracy'] == 0
    assert report['non_paired_top1'] == 50.0
    assert report['paired_top1'] == (5 + 10 + 10 + 10) / 60 * 100
    assert report['mean_within_pair_accuracy'] == (75.0 + 100.0 + 0.0) / 3


def test_pair_report_follows_the_class_names_and_leaves_other_sets_out():
    """Pairs found by name: the same confusion with the labels permuted gives the same report;
    another set's classes (a 10-class set named 'synthetic', say) give none."""
    confusion = np.zeros((8, 8), dtype=int)
    confusion[0, 0], confusion[0, 1], confusion[1, 1] = 5, 5, 10
    confusion[4, 5], confusion[5, 4], confusion[6, 6], confusion[7, 7] = 10, 10, 10, 10
    order = [7, 3, 0, 5, 1, 6, 2, 4]                       # new label -> old label
    names = [CLASS_NAMES[old] for old in order]
    permuted = confusion[np.ix_(order, order)]
    assert pair_report(permuted, names) == pair_report(confusion)
    assert pair_report(np.eye(10, dtype=int), [f'class_{i}' for i in range(10)]) is None
    assert pair_report(confusion, list(CLASS_NAMES[:7]) + ['other']) is None


def test_pairs_table_reads_reports_and_last_epoch(tmp_path):
    folder = tmp_path / 'i3d' / 'pairs'
    (folder / 'eval').mkdir(parents=True)
    report = {'top1': 93.75, 'backbone': 'resnet18', 'views': '3 clips x 1 crops', 'checkpoint_epoch': 12,
              'synthetic_pairs': {'paired_top1': 91.67, 'mean_within_pair_accuracy': 91.0,
                                  'non_paired_top1': 100.0}}
    (folder / 'eval' / 'report.json').write_text(json.dumps(report))
    (folder / 'training_policy.json').write_text(json.dumps(
        {'per_epoch': [{'epoch': 1, 'val_top1': 50.0}, {'epoch': 2, 'val_top1': 87.5}, {'epoch': 3}]}))
    rows = table_rows([str(folder)])
    assert rows[2] == '| i3d/pairs | resnet18 | 93.8 | 91.7 | 91.0 | 100.0 | 3 clips x 1 crops | 12 | 87.5 |'

    del report['synthetic_pairs']
    (folder / 'eval' / 'report.json').write_text(json.dumps(report))
    with pytest.raises(SystemExit, match='report.json: no synthetic_pairs section'):
        table_rows([str(folder)])


RENDER_TINY = '''
import logging, sys
sys.path.insert(0, sys.argv[2])
import config
from DataTool.Synthetic.synthetic import ensure_synthetic
cfg = config.default_config()
cfg.DATASET.ROOT_PATH = sys.argv[1]
cfg.DATASET.SYNTHETIC_VIDEOS_PER_CLASS, cfg.DATASET.SYNTHETIC_FRAMES = [1, 1], [4, 4]
logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stdout, force=True)
ensure_synthetic(cfg, logging.getLogger('render'))
'''


@pytest.mark.slow
def test_processes_asking_at_once_render_the_set_once_without_a_collective(tmp_path):
    """DDP processes all call ensure_synthetic: a lock file makes one render while the others
    wait on the lock (no barrier whose timeout rendering could outlast), then find it done."""
    logs = [tmp_path / f'process{n}.log' for n in range(2)]
    with file_lock(str(tmp_path / 'synthetic.lock')):       # held until both are waiting
        processes = [subprocess.Popen([sys.executable, '-c', RENDER_TINY, str(tmp_path), ROOT],
                                      stdout=open(log, 'w'), stderr=subprocess.STDOUT)
                     for log in logs]
        deadline = time.time() + 120
        while time.time() < deadline and not all(
                log.exists() and 'waiting for another process' in log.read_text() for log in logs):
            assert all(p.poll() is None for p in processes), [log.read_text() for log in logs]
            time.sleep(0.1)
    assert [p.wait(timeout=300) for p in processes] == [0, 0]
    texts = [log.read_text() for log in logs]
    assert all('waiting for another process to finish preparing' in text for text in texts)
    assert sum(text.count('rendering the synthetic dataset') for text in texts) == 1, texts
    assert is_complete(str(tmp_path / 'synthetic'), 0, (1, 1), (4, 4))
