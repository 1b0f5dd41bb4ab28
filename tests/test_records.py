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


def legacy_view(records):
    return [(r.path, r.num_frames, r.label, r.where) for r in records]


@pytest.mark.parametrize('text', [
    'a/clip one 12 3\n\n# comment\n  b/clip.mp4\t40 0\r\nc,d 7 1\n',
    'x/one,12,3\n# c\ny/two, 5 ,0\nz/with space,9,2\n',
])
def test_record_table_equals_the_old_parse_sample_for_sample(tmp_path, text):
    """RecordTable (arrays and a path buffer) against today's parser (a dataclass per line)."""
    from benchmarks.legacy_records import parse_metafile as legacy_parse
    from benchmarks.scale_bench import write_metafile as write_kinetics_like
    from datasets.records import RecordTable
    small = write(tmp_path, text)
    large = str(tmp_path / 'large.txt')
    write_kinetics_like(large, 3000)
    for path in (small, large):
        ours, old = parse_metafile(path, num_classes=700), legacy_parse(path, num_classes=700)
        assert isinstance(ours, RecordTable) and len(ours) == len(old)
        assert legacy_view(ours) == legacy_view(old)
        assert legacy_view([ours[-1]]) == legacy_view([old[-1]])
        assert [r.is_video for r in ours[:5]] == [r.is_video for r in old[:5]]
        assert ours.labels.tolist() == [r.label for r in old]
    round_trip = RecordTable.from_records(legacy_parse(small))
    assert legacy_view(round_trip) == legacy_view(legacy_parse(small))


def test_problems_are_reported_as_before_in_line_order(tmp_path):
    from benchmarks.legacy_records import check_metafile as legacy_check
    from datasets.records import check_metafile
    path = write(tmp_path, 'a 10 1\nb 10 9\nb 10 1\njust_a_path\na 5 0\nc 0 1\nd 3 -2\n'
                           'e 4 x\nb 3 3\n')
    records, problems = check_metafile(path, num_classes=4)
    old_records, old_problems = legacy_check(path, num_classes=4)
    assert problems == old_problems and len(problems) == 7
    assert 'meta.txt:5: a is listed again (first at line 1)' in problems[2]
    assert 'meta.txt:9: b is listed again (first at line 3)' in problems[6]
    assert legacy_view(records) == legacy_view(old_records)
    with pytest.raises(IndexError, match='record 2 of 2'):
        records[2]
