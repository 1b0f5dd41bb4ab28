import pytest

from datasets.records import MetafileError, parse_metafile, read_class_names


def write(tmp_path, text, name='meta.txt'):
    path = tmp_path / name
    path.write_text(text, encoding='utf-8')
    return str(path)


def test_parses_from_the_right_so_paths_may_hold_spaces(tmp_path):
    path = write(tmp_path, 'a/clip one 12 3\n\n# comment\nb/clip.mp4 40 0\n')
    records = parse_metafile(path, num_classes=4)
    assert [(r.path, r.num_frames, r.label) for r in records] == [('a/clip one', 12, 3),
                                                                  ('b/clip.mp4', 40, 0)]
    assert not records[0].is_video and records[1].is_video


@pytest.mark.parametrize('line, message', [
    ('just_a_path\n', "meta.txt:2: expected '<path> <num_frames> <label>'"),
    ('clip 12 x\n', 'meta.txt:2: num_frames and label must be integers'),
    ('clip 0 1\n', 'meta.txt:2: num_frames must be positive'),
    ('clip 10 -1\n', 'meta.txt:2: label must be >= 0'),
    ('clip 10 4\n', 'meta.txt:2: label 4 is out of range for DATASET.CLASS_NUM=4'),
])
def test_bad_line_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path, 'good 10 1\n' + line)
    with pytest.raises(MetafileError) as info:
        parse_metafile(path, num_classes=4)
    assert message in str(info.value)


def test_missing_and_empty_metafiles(tmp_path):
    with pytest.raises(MetafileError, match='metafile not found'):
        parse_metafile(str(tmp_path / 'nope.txt'))
    with pytest.raises(MetafileError, match='no samples'):
        parse_metafile(write(tmp_path, '\n'))


def test_class_index(tmp_path):
    path = write(tmp_path, '1 b class\n0 a\n', 'classInd.txt')
    assert read_class_names(path) == ['a', 'b class']
