"""Text that came from files and folders, written where people open it.

- File names are bytes on Linux; one that is not UTF-8 reaches Python with surrogate escapes
  and cannot be written to a UTF-8 file. `printable_path` shows its odd bytes as \\xNN.
- A CSV cell starting with =, +, -, @ (or a tab or carriage return) is run as a formula by
  spreadsheet programs (CSV injection). Class names and paths come from datasets that anyone
  may have written, so such cells get a leading apostrophe, as OWASP advises;
  `from_spreadsheet_cell` takes it off again when we read our own files back.
"""
import os

FORMULA_STARTS = ('=', '+', '-', '@', '\t', '\r')


def printable_path(path):
    """`path` as valid UTF-8 text: bytes that are not UTF-8 shown as \\xNN (one-way)."""
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:           # a lone surrogate that no file name decodes to
        raw = path.encode('utf-8', 'backslashreplace')
    return raw.decode('utf-8', 'backslashreplace')


def spreadsheet_cell(value):
    """A CSV cell a spreadsheet shows as text: text starting like a formula is prefixed with
    an apostrophe; numbers pass as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def spreadsheet_row(values):
    return [spreadsheet_cell(value) for value in values]


def from_spreadsheet_cell(text):
    """The text `spreadsheet_cell` was given (for our own CSV files read back)."""
    if text.startswith("'") and text[1:].startswith(FORMULA_STARTS):
        return text[1:]
    return text
