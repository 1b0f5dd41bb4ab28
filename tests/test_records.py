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


# ---------------------------------------------------------------- what a metafile may not hold
def write_bytes(tmp_path, data, name='meta.txt'):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def checked(tmp_path, text, num_classes=None, name='meta.txt'):
    """check_metafile of `text` (str: written as UTF-8; bytes: as is) -> (rows, problems)."""
    from datasets.records import check_metafile
    path = (write_bytes(tmp_path, text, name) if isinstance(text, bytes)
            else write(tmp_path, text, name))
    records, problems = check_metafile(path, num_classes)
    return [(r.path, r.num_frames, r.label) for r in records], problems


@pytest.mark.parametrize('line, message', [
    ('clip 2147483648 1', 'meta.txt:2: num_frames 2147483648 is too large (at most 2147483647)'),
    ('clip 4294967297 1', 'meta.txt:2: num_frames 4294967297 is too large'),     # wraps to 1
    ('clip 10 2147483649', 'meta.txt:2: label 2147483649 is too large (at most 2147483647)'),
    ('clip 99999999999999999999 1', 'meta.txt:2: num_frames 99999999999999999999 is too large'),
    ('clip 5 -99999999999999999999', 'meta.txt:2: label must be >= 0, got -99999999999999999999'),
    ('clip,4294967297,1', 'meta.txt:2: num_frames 4294967297 is too large'),   # CSV, slow path
    ('clip 1' + '0' * 5000 + ' 1', 'meta.txt:2: num_frames 1000000'),       # past int()'s limit
], ids=['2**31', '2**32+1', 'label 2**31+1', 'past int64', 'label past -int64', 'csv',
        '5001 digits'])
def test_numbers_past_int32_are_problems_not_wrapped(tmp_path, line, message):
    separator = ',' if ',' in line else ' '
    rows, problems = checked(tmp_path, f'good{separator}10{separator}1\n{line}\n')
    assert rows == [('good', 10, 1)]
    assert len(problems) == 1 and message in problems[0], problems
    assert 'too large' in problems[0] or 'must be >= 0' in problems[0]


def test_the_largest_int32_values_are_accepted(tmp_path):
    rows, problems = checked(tmp_path, 'a 2147483647 2147483647\n')
    assert rows == [('a', 2147483647, 2147483647)] and problems == []


def test_record_table_refuses_values_that_do_not_fit_its_arrays():
    import numpy as np
    from datasets.records import RecordTable
    with pytest.raises(ValueError, match='num_frames 2147483648 does not fit int32'):
        RecordTable.build(['a'], np.array([2 ** 31], dtype=np.int64), [0])
    with pytest.raises(ValueError, match='label 4294967297 does not fit int32'):
        RecordTable.build(['a'], [3], [2 ** 32 + 1])
    with pytest.raises(ValueError, match=r'label 100000000000000000000 does not fit int32'):
        RecordTable.build(['a'], [3], [10 ** 20])
    assert RecordTable.build(['a'], [2 ** 31 - 1], [0])[0].num_frames == 2 ** 31 - 1


def test_a_byte_that_is_not_utf8_names_its_line_and_the_rest_is_still_checked(tmp_path):
    rows, problems = checked(tmp_path, b'good 10 1\nbad\xff 10 1\nother 3 9\n\xe9t\xe9 4 0\n'
                                       b'fine \xc3\xa9 5 0\n', num_classes=4)
    assert rows == [('good', 10, 1), ('fine \u00e9', 5, 0)]
    assert problems[0].endswith('meta.txt:2: not UTF-8 text (byte 0xff at column 4)')
    assert problems[1].endswith('meta.txt:3: label 9 is out of range for DATASET.CLASS_NUM=4')
    assert problems[2].endswith('meta.txt:4: not UTF-8 text (byte 0xe9 at column 1)')
    with pytest.raises(MetafileError, match='meta.txt:2: not UTF-8 text'):
        parse_metafile(str(tmp_path / 'meta.txt'))


def test_utf16_metafiles_are_named_as_such(tmp_path):
    rows, problems = checked(tmp_path, 'a 10 1\nb 4 0\n'.encode('utf-16'))
    assert rows == [] and len(problems) == 1
    assert 'meta.txt:1: UTF-16 text' in problems[0] and 'save it as UTF-8' in problems[0]


def test_class_index_that_is_not_utf8_names_its_line(tmp_path):
    path = write_bytes(tmp_path, b'0 a\n1 caf\xe9\n', 'classInd.txt')
    with pytest.raises(MetafileError,
                       match=r'classInd.txt:2: not UTF-8 text \(byte 0xe9 at column 6\)'):
        read_class_names(path)


def test_a_byte_order_mark_is_not_part_of_the_first_path(tmp_path):
    bom = '\ufeff'
    assert checked(tmp_path, bom + 'a/clip 10 1\nb 3 0\n') == ([('a/clip', 10, 1), ('b', 3, 0)], [])
    assert checked(tmp_path, bom + 'a/clip,10,1\nb c,3,0\n') == (
        [('a/clip', 10, 1), ('b c', 3, 0)], [])
    assert checked(tmp_path, bom + '# made in Excel\na 10 1\n') == ([('a', 10, 1)], [])
    class_index = write(tmp_path, bom + '0 walk\n1 run\n', 'classInd.txt')
    assert read_class_names(class_index) == ['walk', 'run']


def test_a_byte_order_mark_inside_the_file_is_a_problem(tmp_path):
    """Two files joined with `cat`, the second written by Notepad: the mark would start a path."""
    rows, problems = checked(tmp_path, '\ufeffa 10 1\n\ufeffb 3 0\n')
    assert rows == [('a', 10, 1)]
    assert problems == [f'{tmp_path / "meta.txt"}:2: byte-order mark '
                        f"'\\ufeff' at column 1"]


@pytest.mark.parametrize('line, shown, column', [
    ('cl\x00ip 10 1', r"'\x00'", 3),           # NUL: a C string would end the path there
    ('clip\x1b[0m 10 1', r"'\x1b'", 5),        # a terminal colour code pasted in
    ('a\rb 10 1', r"'\r'", 2),                 # a bare carriage return mid-line
    ('clip\x0b 10 1', r"'\x0b'", 5),           # vertical tab: whitespace to str.split()
    ('clip\x1c10 1', r"'\x1c'", 5),            # file separator: whitespace to str.split()
    ('clip\x85 10 1', r"'\x85'", 5),           # C1 control (NEL)
    ('\x1c\x1d', r"'\x1c'", 1),                # str.strip() would make this a blank line
    ('# a comment with a \x00', r"'\x00'", 20),
    ('clip 10 1\x7f', r"'\x7f'", 10),          # DEL
])
def test_control_characters_are_problems(tmp_path, line, shown, column):
    rows, problems = checked(tmp_path, f'good 10 1\n{line}\n')
    assert rows == [('good', 10, 1)]
    assert problems == [f'{tmp_path / "meta.txt"}:2: control character {shown} at column {column}']
    with pytest.raises(MetafileError, match='meta.txt:2: control character'):
        parse_metafile(str(tmp_path / 'meta.txt'))


def test_tabs_and_windows_line_ends_are_not_control_problems(tmp_path):
    assert checked(tmp_path, 'a b\t10\t1\r\nc 3 0\r\n') == ([('a b', 10, 1), ('c', 3, 0)], [])
    assert checked(tmp_path, 'a 10 1\r\nc 3 0\r') == ([('a', 10, 1), ('c', 3, 0)], [])


def test_class_index_with_a_control_character_is_a_problem(tmp_path):
    path = write(tmp_path, '0 walk\n1 ru\x00n\n', 'classInd.txt')
    with pytest.raises(MetafileError,
                       match=r"classInd.txt:2: control character '\\x00' at column 5"):
        read_class_names(path)


LONG = 10_000_000


@pytest.mark.parametrize('line, problem', [
    ('x' * LONG, "expected '<path> <num_frames> <label>', got 'xxx"),
    ('clip ' + 'y' * LONG + ' 1', 'num_frames and label must be integers, got'),
    ('clip 3 ' + '5' * LONG, 'label 555'),
    ('clip ' + '7' * 4000 + ' 1', 'num_frames 777'),
    ('p' * LONG + ' 3 1', 'the path is 10000000 bytes long'),
], ids=['no numbers', 'frames text', 'label digits', '4000 digits', 'path'])
def test_a_huge_line_is_quoted_short(tmp_path, line, problem):
    rows, problems = checked(tmp_path, f'good 10 1\n{line}\n')
    assert rows == [('good', 10, 1)] and len(problems) == 1
    assert problem in problems[0]
    assert len(problems[0]) < 400, problems[0][:500]


def test_quoting_cuts_at_200_characters_and_says_how_long_the_text_was():
    from datasets.metafile_text import excerpt
    assert excerpt('short') == "'short'"
    assert excerpt('a' * 200) == repr('a' * 200)
    assert excerpt('a' * 201) == repr('a' * 200) + '... (201 characters)'
    assert excerpt('b' * 300, quoted=False) == 'b' * 200 + '... (300 characters)'


def test_a_long_path_listed_twice_is_quoted_short(tmp_path):
    long_path = 'dir/' + 'v' * 3000
    rows, problems = checked(tmp_path, f'{long_path} 10 1\n{long_path} 10 1\n')
    assert len(rows) == 1 and len(problems) == 1
    assert problems[0].endswith('... (3004 characters) is listed again (first at line 1)')
    assert len(problems[0]) < 400


# ---------------------------------------------------------------- numbers: plain digits only
@pytest.mark.parametrize('line, problem', [
    ('clip +5 1', "num_frames and label must be integers, got '+5' and '1' (plain digits 0-9"),
    ('clip 1_000 1', "num_frames and label must be integers, got '1_000' and '1' (plain digits"),
    ('clip 12 1_0', "got '12' and '1_0' (plain digits"),
    ('clip \u0661\u0662 1', "got '\u0661\u0662' and '1' (plain digits"),    # Arabic-Indic 12
    ('clip 12 \uff13', "got '12' and '\uff13' (plain digits"),               # full-width 3
    ('clip,+5,1', "got '+5' and '1' (plain digits"),
    ('clip -0 1', 'num_frames must be positive, got -0'),
    ('clip 0x10 1', "num_frames and label must be integers, got '0x10' and '1'"),
    ('clip 1.0 1', "num_frames and label must be integers, got '1.0' and '1'"),
])
def test_numbers_python_accepts_but_no_datatool_writes_are_problems(tmp_path, line, problem):
    good = 'good,10,1' if ',' in line else 'good 10 1'
    rows, problems = checked(tmp_path, f'{good}\n{line}\n')
    assert rows == [('good', 10, 1)] and len(problems) == 1
    assert problem in problems[0]


def test_a_minus_zero_label_is_label_zero_and_leading_zeros_are_read_as_decimal(tmp_path):
    """Decisions: -0 is 0 (the same class, no doubt which); 010 is ten, never octal."""
    assert checked(tmp_path, 'a 10 -0\nb 010 007\n') == ([('a', 10, 0), ('b', 10, 7)], [])


@pytest.mark.parametrize('line', [',,', ' , , ', ',', '\t \t'])
def test_a_line_of_only_separators(tmp_path, line):
    rows, problems = checked(tmp_path, f'good,10,1\n{line}\nnext,3,0\n')
    assert rows == [('good', 10, 1), ('next', 3, 0)]
    if line.strip():
        assert len(problems) == 1 and problems[0].startswith(f'{tmp_path / "meta.txt"}:2: ')
    else:
        assert problems == []          # only whitespace: a blank line


def test_an_empty_path_is_a_problem(tmp_path):
    rows, problems = checked(tmp_path, 'a,10,1\n,5,1\n  ,5,1\n')
    assert rows == [('a', 10, 1)]
    assert [p.split(': ', 1)[1] for p in problems] == ['the path is empty'] * 2


def test_a_path_longer_than_a_file_system_takes_is_a_problem(tmp_path):
    """Linux's PATH_MAX is 4096 bytes: a longer path cannot be opened, and is likely garbage."""
    ok, long = 'd/' + 'a' * 4094, 'd/' + '\u00e9' * 2048      # 4096 bytes; 4098 bytes
    rows, problems = checked(tmp_path, f'{ok} 10 1\n{long} 10 1\n')
    assert rows == [(ok, 10, 1)]
    assert problems == [f'{tmp_path / "meta.txt"}:2: the path is 4098 bytes long; a file system '
                        f'takes at most 4096']


def test_csv_whose_first_line_is_a_comment_or_a_header(tmp_path):
    assert checked(tmp_path, '# path,frames,label\na b,10,1\nc,3,0\n', name='m.csv') == (
        [('a b', 10, 1), ('c', 3, 0)], [])
    rows, problems = checked(tmp_path, 'path,num_frames,label\na b,10,1\nc,3,0\n', name='m.csv')
    assert rows == [('a b', 10, 1), ('c', 3, 0)]         # the header does not make it whitespace
    assert problems == [f"{tmp_path / 'm.csv'}:1: num_frames and label must be integers, "
                        f"got 'num_frames' and 'label'"]


def test_parse_line_says_the_same_as_check_metafile():
    from datasets.records import parse_line
    assert parse_line('a b 3 1\n', 'm.txt', 4).where == 'm.txt:4'
    for line, problem in [('a 2147483648 1', 'm.txt:1: num_frames 2147483648 is too large'),
                          ('a\x00 3 1', "m.txt:1: control character '\\x00' at column 2"),
                          ('a +3 1', "got '+3' and '1' (plain digits"),
                          ('x' * 1000, '... (1000 characters)')]:
        with pytest.raises(MetafileError) as info:
            parse_line(line, 'm.txt', 1)
        assert problem in str(info.value) and len(str(info.value)) < 400


def test_an_unreadable_metafile_is_a_problem_not_an_exception(tmp_path, monkeypatch):
    """As root (CI containers) chmod cannot make a file unreadable: the read itself fails."""
    from datasets import metafile_text
    from datasets.records import check_metafile

    def refuse(*args, **kwargs):
        raise PermissionError(13, 'Permission denied')
    path = write(tmp_path, 'a 10 1\n')
    monkeypatch.setattr(metafile_text, 'open', refuse, raising=False)
    records, problems = check_metafile(path)
    assert len(records) == 0 and problems == [f'{path}: cannot be read (Permission denied)']
    with pytest.raises(MetafileError, match='cannot be read'):
        read_class_names(path)


# ---------------------------------------------------------------- classInd.txt
@pytest.mark.parametrize('text, problem', [
    ('0 walk\n1 run\n0 jump\n', 'classInd.txt:3: index 0 is listed again (first at line 1)'),
    ('0 walk\n1 run\n3 jump\n', 'indices must run from 0 (or 1) without a gap: 2 is missing'),
    ('0 walk\n+1 run\n', "classInd.txt:2: expected '<index> <class name>', got '+1 run'"),
    ('0 walk\n\u0661 run\n', "classInd.txt:2: expected '<index> <class name>'"),
    ('0 walk\n1\n', "classInd.txt:2: expected '<index> <class name>', got '1'"),
])
def test_class_index_problems(tmp_path, text, problem):
    with pytest.raises(MetafileError) as info:
        read_class_names(write(tmp_path, text, 'classInd.txt'))
    assert problem in str(info.value)


def test_class_index_from_one_and_with_tabs(tmp_path):
    """UCF101's own classInd.txt numbers from 1; a tab is a separator like a space."""
    assert read_class_names(write(tmp_path, '1 Apply Eye\n2\tBand\n', 'classInd.txt')) == [
        'Apply Eye', 'Band']
