"""The text rules that metafiles and classInd.txt share, and why each: a line that breaks one
is a problem 'file:line: what' for the caller to report, and the other lines are still checked.
- UTF-8 text; a leading byte-order mark (Notepad, Excel) is dropped, not glued to the first path.
- No control characters but tab: a NUL ends a path in C, and \\v, \\f, \\x1c-\\x1f are whitespace
  to str.split(), so they would split or vanish silently. A bare '\\r' is one too ('\\r\\n' ends
  a line).
- Numbers in plain digits 0-9 (a '-' in front is read, to say it is negative): int() also takes
  '+5', '1_000' and other scripts' digits, which no DataTool writes.
Messages quote at most QUOTE_LIMIT characters of a line (see `excerpt`)."""
import codecs
import io
import re

QUOTE_LIMIT = 200              # characters of a line that an error message quotes
BYTE_ORDER_MARK = b'\xef\xbb\xbf'


def excerpt(text, quoted=True):
    """`text` for an error message: its repr (or itself) cut to QUOTE_LIMIT characters, saying
    how long it was. Every message that quotes a line goes through here: a 10 MB garbage line
    must not become a 10 MB message."""
    shown = repr(text[:QUOTE_LIMIT]) if quoted else text[:QUOTE_LIMIT]
    return shown if len(text) <= QUOTE_LIMIT else f'{shown}... ({len(text)} characters)'


# C0 controls but tab (LF ends the line), DEL, C1 controls, U+FEFF (a byte-order mark inside a
# file is a second file's, joined to the first with `cat`), and the stand-ins that
# errors='surrogateescape' puts for bytes that are not UTF-8.
_CONTROL = re.compile('[\x00-\x08\x0a-\x1f\x7f-\x9f\ufeff\udc80-\udcff]')
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0b, 0x0c, *range(0x0e, 0x20), 0x7f])
_LEAD_BYTES = b'\xc2\xef'     # of U+0080-U+009F (C1 controls) and of U+FEFF in UTF-8
_UNWATCHED_BYTES = bytes(sorted(set(range(256)) - set(_CONTROL_BYTES + _LEAD_BYTES)))
_C1_CONTROL = re.compile(b'\xc2[\x80-\x9f]')


def character_problem(line):
    """What is wrong with a line that holds a control character (tab aside), a U+FEFF or a
    byte that is not UTF-8, else None. The '\n' or '\r\n' that ends it is not part of it."""
    body = line[:-1] if line.endswith('\n') else line
    body = body[:-1] if body.endswith('\r') else body
    found = _CONTROL.search(body)
    if found is None:
        return None
    character, column = found.group(), found.start() + 1
    if '\udc80' <= character <= '\udcff':
        return f'not UTF-8 text (byte 0x{ord(character) - 0xdc00:02x} at column {column})'
    what = 'byte-order mark' if character == '\ufeff' else 'control character'
    return f'{what} {character!r} at column {column}'


def _pieces(data, size=1 << 16):
    """`data` in 64 KiB pieces, for checks that would otherwise make a temporary as large as the
    file: freeing that raises glibc's mmap threshold to its size, and the lists and the set
    check_metafile builds next would stay resident (+13 MiB at 300 000 lines, measured)."""
    return (data[start:start + size] for start in range(0, len(data), size))


def needs_line_checks(data, is_ascii):
    """Whether some line may hold what character_problem looks for. A few passes over the bytes
    in C (tens of ms for 50 MB), so that a clean file, the common case, is not searched line by
    line."""
    watched = set()
    for piece in _pieces(data):
        watched.update(piece.translate(None, _UNWATCHED_BYTES))
    if not watched.issubset(_LEAD_BYTES):                     # a control byte
        return True
    if b'\r' in data and data.count(b'\r') != data.count(b'\r\n'):
        return True
    if is_ascii:
        return False
    if watched and (BYTE_ORDER_MARK in data or _C1_CONTROL.search(data)):
        return True
    decoder = codecs.getincrementaldecoder('utf-8')()
    try:
        for piece in _pieces(data):
            decoder.decode(piece)
        decoder.decode(b'', final=True)
    except UnicodeDecodeError:
        return True
    return False


def text_lines(data):
    """The lines of `data`, split at '\n' only (a bare '\r' stays, to be reported); a byte that
    is not UTF-8 becomes a stand-in that character_problem reports with its line."""
    return io.TextIOWrapper(io.BytesIO(data), encoding='utf-8', errors='surrogateescape',
                            newline='\n')


def read_text_file(path):
    """(the file's bytes less a leading UTF-8 byte-order mark, None), or (None, the problem):
    unreadable, or UTF-16 (Notepad's 'Unicode'), whose every other byte would be a NUL."""
    try:
        with open(path, 'rb', buffering=0) as handle:     # one read, into one bytes object:
            start = handle.read(len(BYTE_ORDER_MARK))       # nothing file-sized is copied
            handle.seek(len(start) if start == BYTE_ORDER_MARK else 0)
            data = handle.readall()
    except OSError as error:
        return None, f'{path}: cannot be read ({error.strerror or error})'
    if start.startswith((b'\xff\xfe', b'\xfe\xff')):
        return None, f'{path}:1: UTF-16 text (it starts {start[:2].hex(" ")}); save it as UTF-8'
    return data, None


def plain_integer(text):
    """The value of `text` (spaces around it aside) when it is written as DataTools write
    numbers, ASCII digits with at most a '-' in front; else None. int() also takes '+5', '1_000'
    and other scripts' digits ('١٢'). Past 18 digits the value is clipped to 10**18: out of every
    range either way, and int() refuses more than 4300 digits."""
    text = text.strip()
    digits = text[1:] if text.startswith('-') else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    if len(digits.lstrip('0')) > 18:
        return -10 ** 18 if text.startswith('-') else 10 ** 18
    return int(text)


def python_reads_as_integer(text):
    """Whether int() takes `text`: then a refusal needs saying why ('+5' looks like a number)."""
    try:
        int(text)
    except ValueError:
        return False
    return True
