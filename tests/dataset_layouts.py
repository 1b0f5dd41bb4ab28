"""Tiny copies of the official dataset layouts (../shared/formats/DATASETS.md), with short
rendered videos, for the DataTool tests. Each builder returns what the test should expect."""
import csv
import json
import os
import os.path as osp
import zipfile

import numpy as np

from DataTool.common.video_io import write_video

WIDTH, HEIGHT = 80, 60          # stored size; tools resize the short side


def render(path, num_frames=12, seed=0, fps=10):
    """A square moving over a coloured background: a real encoded video of num_frames."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 255, 3, dtype=np.uint8)
    frames = np.empty((num_frames, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(num_frames):
        frames[t] = background
        x = 4 + 3 * t % (WIDTH - 20)
        frames[t, 20:36, x:x + 16] = 255 - background
    write_video(path, frames, fps=fps)
    return path


def corrupt(path):
    """A file with a video's name and no video in it."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as handle:
        handle.write(b'\x00\x01not a video' * 50)
    return path


def zip_folder(folder, archive, arcname_root=''):
    """Pack `folder` (as `arcname_root/<its contents>`) into `archive`."""
    with zipfile.ZipFile(archive, 'w') as handle:
        for current, _, names in os.walk(folder):
            for name in names:
                path = osp.join(current, name)
                handle.write(path, osp.join(arcname_root, osp.relpath(path, folder)))
    return archive


# ---------------------------------------------------------------- HMDB51
HMDB_CLASSES = ['brush_hair', 'cartwheel', 'wave']


def hmdb51(root, staging):
    """hmdb51_org.zip holding one zip per class (the official rar of rars, as zips) and
    test_train_splits.zip. Per class 4 videos: split 1 tags 2 train, 1 test, 1 unused; one
    train video of 'wave' is missing from the download and one of 'cartwheel' is corrupt."""
    os.makedirs(root, exist_ok=True)
    video_dir = osp.join(staging, 'videos')
    split_dir = osp.join(staging, 'splits', 'testTrainMulti_7030_splits')
    os.makedirs(split_dir)
    for label, name in enumerate(HMDB_CLASSES):
        files = [f'{name}_clip{k}_u_nm_np1_fr_goo_{k}.avi' for k in range(4)]
        for k, file_name in enumerate(files):
            path = osp.join(video_dir, name, file_name)
            if name == 'wave' and k == 0:
                continue
            if name == 'cartwheel' and k == 1:
                corrupt(path)
            else:
                render(path, 12 + k, seed=10 * label + k)
        for split in (1, 2, 3):
            tags = np.roll([1, 1, 2, 0], split - 1)
            with open(osp.join(split_dir, f'{name}_test_split{split}.txt'), 'w') as handle:
                handle.writelines(f'{f} {tag} \n' for f, tag in zip(files, tags))
        zip_folder(osp.join(video_dir, name), osp.join(video_dir, f'{name}.zip'), name)
    with zipfile.ZipFile(osp.join(root, 'hmdb51_org.zip'), 'w') as handle:
        for name in HMDB_CLASSES:
            handle.write(osp.join(video_dir, f'{name}.zip'), f'{name}.zip')
    zip_folder(osp.join(staging, 'splits'), osp.join(root, 'test_train_splits.zip'))
    return {'train': 2 * 3 - 2, 'val': 3, 'missing': ['wave/wave_clip0_u_nm_np1_fr_goo_0'],
            'unreadable': ['cartwheel/cartwheel_clip1_u_nm_np1_fr_goo_1']}


# ---------------------------------------------------------------- UCF101
UCF_CLASSES = ['ApplyEyeMakeup', 'HandstandPushups', 'YoYo']


def ucf101(root):
    """UCF-101/<Class>/v_<Class>_gGG_cCC.avi with HandstandPushups' `v_HandStandPushups_` file
    names, and ucfTrainTestlist/ (classInd 1-based, train lists with labels, test lists
    without). Groups 1-2 are test, 3-4 train, one clip per group."""
    list_dir = osp.join(root, 'ucfTrainTestlist')
    os.makedirs(list_dir)
    with open(osp.join(list_dir, 'classInd.txt'), 'w') as handle:
        handle.writelines(f'{i} {name}\n' for i, name in enumerate(UCF_CLASSES, start=1))
    train, test = [], []
    for label, name in enumerate(UCF_CLASSES):
        file_class = 'HandStandPushups' if name == 'HandstandPushups' else name
        for group in range(1, 5):
            file_name = f'v_{file_class}_g{group:02d}_c01.avi'
            render(osp.join(root, 'UCF-101', name, file_name), 10 + group, seed=label * 7 + group)
            if group <= 2:
                test.append(f'{name}/{file_name}\n')
            else:
                train.append(f'{name}/{file_name} {label + 1}\n')
    for split in (1, 2, 3):
        with open(osp.join(list_dir, f'trainlist0{split}.txt'), 'w') as handle:
            handle.writelines(train)
        with open(osp.join(list_dir, f'testlist0{split}.txt'), 'w') as handle:
            handle.writelines(test)
    return {'train': 6, 'val': 6, 'frames': {'HandstandPushups/v_HandStandPushups_g03_c01': 13}}


# ---------------------------------------------------------------- Kinetics
KINETICS_LABELS = ['abseiling', 'passing American football (in game)', 'zumba']


def kinetics(root):
    """annotations/{train,validate,test}.csv with a quoted label and an is_cc column; clips
    in train/<label>/ folders and flat under val/. Two listed clips were never downloaded and
    one downloaded as a 0-byte file."""
    os.makedirs(osp.join(root, 'annotations'))
    header = ['label', 'youtube_id', 'time_start', 'time_end', 'split', 'is_cc']
    rows = {'train': [], 'validate': []}
    for label, name in enumerate(KINETICS_LABELS):
        for k in range(3):
            subset = 'validate' if k == 2 else 'train'
            youtube_id = f'yt{label}{k}-AbC_'
            start = 10 * k
            rows[subset].append([name, youtube_id, start, start + 10, subset, 0])
            stem = f'{youtube_id}_{start:06d}_{start + 10:06d}'
            if (label, k) in ((0, 1), (2, 2)):
                continue            # never downloaded
            folder = osp.join(root, 'train', name) if subset == 'train' else osp.join(root, 'val')
            if (label, k) == (1, 2):
                os.makedirs(folder, exist_ok=True)
                open(osp.join(folder, stem + '.mp4'), 'wb').close()
                continue
            render(osp.join(folder, stem + '.mp4'), 8 + k, seed=label * 5 + k)
    for subset, subset_rows in rows.items():
        with open(osp.join(root, 'annotations', f'{subset}.csv'), 'w', newline='') as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL)
            writer.writerow(header)
            for row in subset_rows:
                writer.writerow(row)
    with open(osp.join(root, 'annotations', 'test.csv'), 'w') as handle:
        handle.write('youtube_id,time_start,time_end,split\nzzz,0,10,test\n')
    return {'train': 5, 'val': 1, 'missing': 2, 'empty': 1}


# ---------------------------------------------------------------- Something-Something V2
STHV2_LABELS = {'Pushing something from left to right': '0',
                'Pushing something from right to left': '1',
                'Holding something next to something': '2'}


def sthv2(root):
    """The labels/train/validation/test JSON files and 20bn-something-something-v2/<id>.webm."""
    video_dir = osp.join(root, '20bn-something-something-v2')
    templates = {'0': 'Pushing [something] from left to right',
                 '1': 'Pushing [something] from right to left',
                 '2': 'Holding [something] next to [something]'}
    entries = {'train': [], 'validation': []}
    video_id = 1000
    for index, template in templates.items():
        for k in range(3):
            subset = 'validation' if k == 2 else 'train'
            video_id += 7
            entries[subset].append({'id': str(video_id), 'label': f'example {video_id}',
                                    'template': template, 'placeholders': ['a cup']})
            render(osp.join(video_dir, f'{video_id}.webm'), 9, seed=video_id, fps=12)
    with open(osp.join(root, 'something-something-v2-labels.json'), 'w') as handle:
        json.dump(STHV2_LABELS, handle)
    for subset, items in entries.items():
        with open(osp.join(root, f'something-something-v2-{subset}.json'), 'w') as handle:
            json.dump(items, handle)
    with open(osp.join(root, 'something-something-v2-test.json'), 'w') as handle:
        json.dump([{'id': '99999'}], handle)
    return {'train': 6, 'val': 3, 'entries': entries}


# ---------------------------------------------------------------- ActivityNet
def activitynet(root, fps=10):
    """activity_net.v1-3.min.json and v_<id>.mp4 of 4 s at 10 fps. Training video 'aaa' has
    two segments, 'bbb' one that runs past the end (clipped), validation 'ccc' one segment and
    one that starts after the end (empty); the testing video is not used."""
    database = {
        'aaa': {'subset': 'training', 'duration': 4.0, 'url': 'https://youtu.be/aaa',
                'resolution': '80x60', 'annotations': [
                    {'segment': [0.5, 1.5], 'label': 'Drinking coffee'},
                    {'segment': [2.0, 3.5], 'label': 'Walking the dog'}]},
        'bbb': {'subset': 'training', 'duration': 4.0, 'url': 'https://youtu.be/bbb',
                'resolution': '80x60', 'annotations': [
                    {'segment': [3.0, 9.0], 'label': 'Walking the dog'}]},
        'ccc': {'subset': 'validation', 'duration': 4.0, 'url': 'https://youtu.be/ccc',
                'resolution': '80x60', 'annotations': [
                    {'segment': [1.0, 3.0], 'label': 'Drinking coffee'},
                    {'segment': [5.0, 6.0], 'label': 'Drinking coffee'}]},
        'ddd': {'subset': 'testing', 'duration': 4.0, 'url': 'https://youtu.be/ddd',
                'resolution': '80x60', 'annotations': []},
    }
    for video_id in database:
        render(osp.join(root, 'videos', f'v_{video_id}.mp4'), 4 * fps, seed=len(video_id), fps=fps)
    with open(osp.join(root, 'activity_net.v1-3.min.json'), 'w') as handle:
        json.dump({'version': 'VERSION 1.3', 'taxonomy': [], 'database': database}, handle)
    return {'frames': {'v_aaa_0': 10, 'v_aaa_1': 15, 'v_bbb_0': 10, 'v_ccc_0': 20},
            'labels': {'v_aaa_0': 0, 'v_aaa_1': 1, 'v_bbb_0': 1, 'v_ccc_0': 0},
            'empty': ['v_ccc_1']}


# ---------------------------------------------------------------- a folder of videos
def custom(root, classes=('cat', 'dog'), per_class=5):
    for label, name in enumerate(classes):
        for k in range(per_class):
            render(osp.join(root, name, f'{name}{k}.mp4'), 8, seed=label * 10 + k)
    return {'classes': list(classes), 'per_class': per_class}
