"""predict.py with hostile names: a file name that is not UTF-8 is predicted and written as
printable text (the run does not abort), and class names that a spreadsheet would run as
formulas are escaped in the CSV files (and only there)."""
import csv
import json
import os
import os.path as osp
import shutil

import pytest

import predict
from conftest import run_main, save_random_checkpoint, tiny_overrides
from utils.safe_text import from_spreadsheet_cell, printable_path, spreadsheet_cell

HOSTILE_CLASSES = ['=HYPERLINK("http://x","y")', '+1+1', '-2', '@SUM(A1)', '-cmd|\' /C calc\'!A0', 'plain',
                   'a-b', '=']


@pytest.fixture
def two_videos(tiny_root, tmp_path):
    """A folder with a UTF-8 name and a name with a 0xff byte; a TSN checkpoint (random
    weights) whose classInd.txt holds formula-like class names."""
    meta = osp.join(str(tiny_root), 'synthetic', 'MetafileSeq', 'val_split1_video.txt')
    with open(meta, encoding='utf-8') as handle:
        first, second = [line.rsplit(maxsplit=2)[0] for line in handle if line.strip()][:2]
    folder = os.fsencode(str(tmp_path / 'incoming'))
    os.makedirs(folder)
    source = osp.join(str(tiny_root), 'synthetic', 'VideoSeq')
    shutil.copy(osp.join(source, first), folder + b'/good.mp4')
    shutil.copy(osp.join(source, second), folder + b'/caf\xe9 \xff.mp4')     # Latin-1, not UTF-8
    metafiles = tmp_path / 'meta'
    metafiles.mkdir()
    (metafiles / 'classInd.txt').write_text(
        ''.join(f'{i} {name}\n' for i, name in enumerate(HOSTILE_CLASSES)), encoding='utf-8')
    overrides = tiny_overrides(tiny_root, tmp_path, **{
        'DATASET.INPUT_TYPE': 'video', 'VAL.NUM_SEGMENTS': 2,
        'DATASET.VAL_META_PATH': str(metafiles / 'val.txt')})
    save_random_checkpoint(overrides)
    return os.fsdecode(folder), overrides


def test_a_name_that_is_not_utf8_is_predicted_and_written_printably(two_videos, tmp_path):
    folder, overrides = two_videos
    out = tmp_path / 'out'
    assert run_main(predict, overrides, ['--input', folder, '--out', str(out), '--topk', '8']) == 0
    with open(out / 'predictions.jsonl', encoding='utf-8') as handle:
        rows = [json.loads(line) for line in handle]
    assert sorted(osp.basename(row['path']) for row in rows) == ['caf\\xe9 \\xff.mp4', 'good.mp4']
    assert all(sorted(name for name, _ in row['top']) == sorted(HOSTILE_CLASSES) for row in rows)
    with open(out / 'predictions.csv', encoding='utf-8', newline='') as handle:
        table = list(csv.DictReader(handle))
    cells = {row[f'class{rank}'] for row in table for rank in range(1, 9)}
    assert cells == {"'" + name if name[0] in '=+-@' else name for name in HOSTILE_CLASSES}
    assert {from_spreadsheet_cell(cell) for cell in cells} == set(HOSTILE_CLASSES)
    # a rerun recognises both files as done, the odd name included
    assert run_main(predict, overrides, ['--input', folder, '--out', str(out), '--topk', '8']) == 0
    with open(out / 'log' / 'predict.log', encoding='utf-8') as handle:
        assert '2 done by an earlier run, 0 to predict' in handle.read()


def test_an_unreadable_file_with_an_odd_name_is_listed(two_videos, tmp_path):
    folder, overrides = two_videos
    with open(os.fsencode(folder) + b'/=broken \xfe.mp4', 'wb') as handle:
        handle.write(b'\x00\x00\x00\x18ftypmp42 but nothing else')
    out = tmp_path / 'out'
    assert run_main(predict, overrides, ['--input', folder, '--out', str(out)]) == 0
    with open(out / 'unreadable.csv', encoding='utf-8', newline='') as handle:
        rows = list(csv.DictReader(handle))
    assert [osp.basename(row['path']) for row in rows] == ['=broken \\xfe.mp4']


def test_spreadsheet_cells_and_printable_paths():
    assert [spreadsheet_cell(v) for v in ('=1+2', '+x', '-y', '@z', '\tt', '\rr', 'ok', 3, -1.5)] == \
        ["'=1+2", "'+x", "'-y", "'@z", "'\tt", "'\rr", 'ok', 3, -1.5]
    assert from_spreadsheet_cell("'=1") == '=1' and from_spreadsheet_cell("'quoted") == "'quoted"
    assert printable_path(os.fsdecode(b'/a/\xff\xfeb.mp4')) == '/a/\\xff\\xfeb.mp4'
    assert printable_path('/a/\u00e9t\u00e9.mp4') == '/a/\u00e9t\u00e9.mp4'
    assert printable_path('\ud800') == '\\ud800'
