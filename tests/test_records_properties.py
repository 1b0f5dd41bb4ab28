"""Metafile parsing against generated input: any bytes give records or problems that name the
file (never another exception), and any well-formed file reads back as written."""
import io

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from datasets.records import MetafileError, check_metafile, parse_metafile, read_class_names

BOUNDED = settings(max_examples=200, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])
INT32_MAX = 2 ** 31 - 1

# Lines near the format, then broken at random: pure random bytes rarely get past the first
# field, these reach the number, separator and path checks.
NEAR_LINES = st.lists(st.one_of(
    st.tuples(st.text(max_size=12), st.integers(-5, 2 ** 33), st.integers(-5, 2 ** 33),
              st.sampled_from([' ', ',', '\t', ' , ', '  '])).map(
        lambda t: f'{t[0]}{t[3]}{t[1]}{t[3]}{t[2]}'),
    st.sampled_from(['', '#', '# c', ',,', '\ufeff', '\r', '+5', '1_0', '\u0661']),
    st.text(max_size=20)), max_size=8).map('\n'.join)


@st.composite
def noisy_bytes(draw):
    data = draw(NEAR_LINES).encode('utf-8')
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=3)) + data[at:]
    return draw(st.sampled_from([b'', b'\xef\xbb\xbf', b'\xff\xfe'])) + data


@BOUNDED
@given(data=st.one_of(st.binary(max_size=200), noisy_bytes()))
@example(data=b'\xef\xbb\xbf')
@example(data=b'a 10 1\n\x00')
@example(data=b',5,1')
def test_any_bytes_give_records_or_problems_naming_the_file(tmp_path, data):
    path = tmp_path / 'meta.txt'
    path.write_bytes(data)
    records, problems = check_metafile(str(path), num_classes=7)
    assert all(isinstance(p, str) and p.startswith(str(path)) for p in problems)
    assert all(r.where.startswith(f'{path}:') and r.path and 0 < r.num_frames <= INT32_MAX
               and 0 <= r.label < 7 for r in records)
    assert problems or len(records)
    assert all(len(p) < len(str(path)) + 400 for p in problems)
    try:
        assert len(parse_metafile(str(path), num_classes=7)) == len(records) and not problems
    except MetafileError as err:
        assert problems and str(path) in str(err)
    try:
        read_class_names(str(path))
    except MetafileError as err:
        assert str(path) in str(err)


# ---------------------------------------------------------------- well-formed files read back
PATH_CHARACTERS = st.characters(blacklist_categories=('Cc', 'Cs'), blacklist_characters='\ufeff')
PATHS = st.text(PATH_CHARACTERS, min_size=1, max_size=30).filter(
    lambda p: p == p.strip() and not p.startswith('#') and len(p.encode('utf-8')) <= 4096)
SAMPLES = st.lists(st.tuples(PATHS, st.integers(1, INT32_MAX), st.integers(0, INT32_MAX)),
                   min_size=1, max_size=8, unique_by=lambda sample: sample[0])


@st.composite
def metafile(draw):
    """(bytes, samples): the samples written in one form, with blank and comment lines, a BOM,
    CRLF or LF line ends and leading or trailing whitespace, as editors and tools leave them."""
    samples = draw(SAMPLES)
    comma = draw(st.booleans())
    gap = st.sampled_from([',', ' ,', ', ', ' , '] if comma else [' ', '\t', '  ', ' \t'])
    margin = st.sampled_from(['', ' ', '\t'])
    end = draw(st.sampled_from(['\n', '\r\n']))
    text = io.StringIO()
    for path, frames, label in samples:
        if draw(st.booleans()):
            text.write(draw(st.sampled_from(['', '# a comment, 1 2', '   ', '#x 3 4'])) + end)
        text.write(f'{draw(margin)}{path}{draw(gap)}{frames}{draw(gap)}{label}{draw(margin)}{end}')
    bom = draw(st.sampled_from(['', '\ufeff']))
    return (bom + text.getvalue()).encode('utf-8'), samples


@BOUNDED
@given(written=metafile())
@example(written=('a,1,2 10 3\n'.encode(), [('a,1,2', 10, 3)]))      # commas in a spaced file
@example(written=('x 5,12,3\n'.encode(), [('x 5', 12, 3)]))          # spaces in a CSV file
def test_well_formed_files_read_back_as_written(tmp_path, written):
    data, samples = written
    path = tmp_path / 'meta.txt'
    path.write_bytes(data)
    records, problems = check_metafile(str(path))
    assert problems == []
    assert [(r.path, r.num_frames, r.label) for r in records] == samples


@BOUNDED
@given(names=st.lists(st.text(PATH_CHARACTERS, min_size=1, max_size=20).filter(
    lambda n: n == n.strip()), min_size=1, max_size=6), first=st.sampled_from([0, 1]))
def test_class_index_reads_back_as_written(tmp_path, names, first):
    path = tmp_path / 'classInd.txt'
    path.write_bytes(''.join(f'{first + i} {name}\n' for i, name in enumerate(names)).encode())
    assert read_class_names(str(path)) == names

