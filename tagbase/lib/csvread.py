"""Reading uploaded CSV files: what the file is (``sniff``) and its records (``read_records``).

Two tiers of problems, as the import report needs them:

- **File-level** problems raise ``FileRejected`` with a code from ``FILE_REJECTION_CODES``, an
  English message naming the problem and where, and the line and byte offset when known: an
  empty file, a binary file renamed ``.csv`` (image, PDF, ZIP/XLSX, XLS, NUL bytes...), an
  encoding we cannot read with confidence, a quote that is never closed.
- **Row-level** problems are attached to one ``Record`` (``Record.issue``, a code from
  ``ROW_ISSUE_CODES``) and reading goes on: a line that is not valid in the file's encoding (one
  Windows-1251 line inside a UTF-8 file), a line over the length limit.

Encodings: UTF-8 (with or without BOM), Windows-1251 and UTF-16 with a BOM. Auto-detection
trusts a BOM, then UTF-8 (also when only some lines are UTF-8: the others become row issues,
since reading UTF-8 lines as Windows-1251 would silently store mojibake), then accepts
Windows-1251 only when the text reads as Cyrillic words (and charset-normalizer agrees, or every
word is unambiguous); anything else is rejected rather than guessed.

Records follow RFC 4180 with the reading rules of Python's csv module (a quote opens a quoted
field only at the start of a field; ``""`` inside it is one quote; a quote in the middle of an
unquoted field is literal), universal line endings (CRLF, LF, CR, mixed) and one difference:
a quote still open after ``MAX_RECORD_LINES`` lines, ``max_line_bytes`` bytes or at the end of
the file is an error instead of silently swallowing the rest of the file into one field.

Performance: the file is read in blocks and each block's complete lines are decoded in one
call; lines without a quote character are split with ``str.split``, blocks with quotes are
parsed by the csv module, and only records spanning lines go through the Python parser
(``split_fields``), which also detects unclosed quotes. The reader holds one block and the
current record whatever the file size. This module imports only the standard library and
charset-normalizer.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from itertools import count, repeat
from operator import not_
from typing import Any, NamedTuple

import charset_normalizer

SNIFF_BYTES = 1 << 20  # sniff() looks at the first MiB only
# Blocks of 256 KiB: decoding and splitting cost is already amortised over thousands of lines,
# and the list of one block's line strings stays around 2 MB for very short lines.
BLOCK_SIZE = 256 * 1024
MAX_RECORD_LINES = 100  # a quoted field may span this many physical lines, no more
TEXT_LIMIT = 1000  # Record.text is cut to this many characters
DEFAULT_MAX_LINE_BYTES = 65536

# What counts as white space for Record.blank: the same characters that
# tagbase.lib.identifiers trims from a value (Unicode white space, zero-width characters, BOM).
BLANK_CHARS = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
    "\u200b\u200c\u200d\u2060\ufeff"
)

FILE_REJECTION_CODES: dict[str, str] = {
    "EMPTY_FILE": "The file is empty, or holds only white space, a byte-order mark or a sep= line.",
    "TOO_LARGE": "The file is larger than the size limit.",
    "BINARY_FILE": "The file is not text: an image, PDF, archive, Excel workbook or other "
    "binary data (NUL bytes or many control characters).",
    "ENCODING": "The file's encoding is not UTF-8, UTF-8 with BOM, Windows-1251 or UTF-16 with "
    "a byte-order mark, or does not match the encoding that was chosen.",
    "DELIMITER": "The file's Excel sep= line names a delimiter other than ; , or TAB.",
    "UNTERMINATED_QUOTE": f"A quoted field is not closed within {MAX_RECORD_LINES} lines, "
    "within the line length limit, or before the end of the file.",
}

ROW_ISSUE_CODES: dict[str, str] = {
    "encoding": "The line is not valid in the file's encoding (for example one Windows-1251 "
    "line inside a UTF-8 file); it is shown with undecodable bytes as \\xNN and not imported.",
    "line_too_long": "The line is longer than the line length limit; it is not imported.",
}

ENCODING_LABELS: dict[str, str] = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "cp1251": "Windows-1251",
    "utf-16": "UTF-16",
}

_ENCODING_NAMES = {
    "auto": "auto",
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8",  # the BOM is found and stripped whatever the name
    "cp1251": "cp1251",
    "windows-1251": "cp1251",
    "utf-16": "utf-16",
    "utf16": "utf-16",
}
_DELIMITER_NAMES = {
    "auto": "auto",
    ";": ";",
    "semicolon": ";",
    ",": ",",
    "comma": ",",
    "\t": "\t",
    "tab": "\t",
}
_DELIMITER_LABELS = {";": "semicolon (;)", ",": "comma (,)", "\t": "TAB"}

_BOM_UTF8 = codecs.BOM_UTF8
_BOMS_UTF16 = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_BOMS_UTF32 = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
_SEP_LINE = re.compile(r'"?sep=(.)"?[ \t]*\Z', re.IGNORECASE)
_OFFICE_ADVICE = "open it in Excel and save it as “CSV UTF-8 (Comma delimited)”"
_TEXT_ADVICE = "upload the list as a CSV text file (UTF-8)"


class FileRejected(Exception):
    """The whole file cannot be read; nothing from it may be applied.

    ``code`` is a key of FILE_REJECTION_CODES; ``message`` is an English sentence naming what
    is wrong and where (never a value from the file: it may be personal data); ``line`` is the
    1-based physical line and ``offset`` the 0-based byte offset, when known.
    """

    def __init__(
        self, code: str, message: str, *, line: int | None = None, offset: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = line
        self.offset = offset

    def __reduce__(self):  # keep every attribute when pickled (task queues, workers)
        return (_rebuild_rejection, (self.code, self.message, self.line, self.offset))

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "message": self.message,
            "line": self.line,
            "offset": self.offset,
        }


def _rebuild_rejection(code: str, message: str, line: int | None, offset: int | None):
    return FileRejected(code, message, line=line, offset=offset)


@dataclass(frozen=True)
class Dialect:
    """How to read one file: its encoding, delimiter and whether line 1 is Excel's sep= line."""

    encoding: str  # a Python codec name: "utf-8", "utf-8-sig", "cp1251", "utf-16"
    encoding_label: str  # what the import report shows: "UTF-8", "Windows-1251"...
    delimiter: str  # ";", "," or "\t"
    sep_line: bool  # line 1 is "sep=X": skipped, not a record
    detected: bool  # True when the encoding or the delimiter was auto-detected

    @property
    def delimiter_label(self) -> str:
        return _DELIMITER_LABELS.get(self.delimiter, self.delimiter)


class Record(NamedTuple):
    """One CSV record (which may span several physical lines when a quoted field has newlines).

    A NamedTuple rather than a frozen dataclass: it is just as immutable and has the same
    attribute names, but is built about 3x faster, which is what lets the reader stream over a
    million records a second.

    - ``line``: 1-based physical line where the record starts.
    - ``text``: the decoded record without its line terminator (lines of a multi-line record
      joined with "\\n"), cut to TEXT_LIMIT characters; for an ``encoding`` issue the line is
      decoded with undecodable bytes shown as \\xNN.
    - ``fields``: the fields, quotes removed and doubled quotes unescaped, not stripped; empty
      when ``issue`` is set, so that nothing from a damaged line can be stored by accident.
    - ``issue``: None or a key of ROW_ISSUE_CODES.
    - ``blank``: every field is empty or white space (a record such as "" or " ; "); never
      True for a record with an issue.
    """

    line: int
    text: str
    fields: list[str]
    issue: str | None
    blank: bool


_new_record = tuple.__new__  # Record(...) without the Python-level __new__: ~1.7x faster


# --- sniff -----------------------------------------------------------------------------------


def sniff(
    path: str | os.PathLike,
    *,
    encoding: str = "auto",
    delimiter: str = "auto",
    max_bytes: int | None = None,
) -> Dialect:
    """Work out how to read ``path`` from its first MiB, or reject the file.

    ``encoding``: "auto", "utf-8", "cp1251" (or "windows-1251") or "utf-16"; ``delimiter``:
    "auto", ";", ",", "\\t" (or "semicolon", "comma", "tab"). A chosen encoding is used as
    given except when the file plainly contradicts it (a BOM of another encoding; a file that is
    valid UTF-8 text read as Windows-1251 would be all mojibake). ``max_bytes``: reject larger
    files with TOO_LARGE. Raises FileRejected; ValueError for an unknown encoding or delimiter
    name (a caller's mistake, not the file's).
    """
    wanted_encoding = _option(encoding, _ENCODING_NAMES, "encoding")
    wanted_delimiter = _option(delimiter, _DELIMITER_NAMES, "delimiter")
    size = os.path.getsize(path)
    if max_bytes is not None and size > max_bytes:
        raise FileRejected(
            "TOO_LARGE",
            f"The file is {size:,} bytes; the limit is {max_bytes:,} bytes.",
        )
    with open(path, "rb") as file:
        sample = file.read(SNIFF_BYTES)
    if not sample:
        raise FileRejected("EMPTY_FILE", "The file is empty (0 bytes).", line=1, offset=0)
    truncated = size > len(sample)
    _reject_magic(sample)
    if wanted_encoding == "auto":
        codec, text = _detect_encoding(sample, truncated)
    else:
        codec, text = _given_encoding(sample, truncated, wanted_encoding)
    if truncated:  # the last line of the sample may be cut anywhere
        text = text[: max(text.rfind("\n"), text.rfind("\r")) + 1]
    sep, rest = _sep_line(text)
    if not truncated and not rest.strip(BLANK_CHARS):
        what = "a sep= line" if sep else "white space (or a byte-order mark)"
        raise FileRejected("EMPTY_FILE", f"The file holds only {what}, no records.", line=1)
    chosen = wanted_delimiter if wanted_delimiter != "auto" else sep or _count_delimiters(rest)
    return Dialect(
        encoding=codec,
        encoding_label=ENCODING_LABELS[codec],
        delimiter=chosen,
        sep_line=sep is not None,
        detected=wanted_encoding == "auto" or wanted_delimiter == "auto",
    )


def _option(value: str, names: dict[str, str], what: str) -> str:
    key = value if value in names else value.strip().lower().replace("_", "-")
    if key not in names:
        choices = ", ".join(repr(name) for name in names)
        raise ValueError(f"unknown {what} {value!r}; expected one of {choices}")
    return names[key]


_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive or an Excel .xlsx workbook", _OFFICE_ADVICE),
    (b"PK\x05\x06", "a ZIP archive or an Excel .xlsx workbook", _OFFICE_ADVICE),
    (b"PK\x07\x08", "a ZIP archive or an Excel .xlsx workbook", _OFFICE_ADVICE),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "an Excel .xls workbook (or another old Microsoft Office document)",
        _OFFICE_ADVICE,
    ),
    (b"{\\rtf", "an RTF (rich text) document", _TEXT_ADVICE),
    (b"%PDF-", "a PDF document", _TEXT_ADVICE),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", _TEXT_ADVICE),
    (b"\xff\xd8\xff", "a JPEG image", _TEXT_ADVICE),
    (b"GIF87a", "a GIF image", _TEXT_ADVICE),
    (b"GIF89a", "a GIF image", _TEXT_ADVICE),
    (b"II*\x00", "a TIFF image", _TEXT_ADVICE),
    (b"MM\x00*", "a TIFF image", _TEXT_ADVICE),
    (b"\x1f\x8b", "a gzip archive", _TEXT_ADVICE),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", _TEXT_ADVICE),
    (b"Rar!\x1a\x07", "a RAR archive", _TEXT_ADVICE),
    (b"\xfd7zXZ\x00", "an xz archive", _TEXT_ADVICE),
    (b"\x28\xb5\x2f\xfd", "a Zstandard archive", _TEXT_ADVICE),
    (b"SQLite format 3\x00", "an SQLite database", _TEXT_ADVICE),
    (b"\x7fELF", "a program (ELF executable)", _TEXT_ADVICE),
)


def _reject_magic(sample: bytes) -> None:
    """Reject a file whose first bytes are the signature of a known binary format."""
    for magic, kind, advice in _MAGIC:
        if sample.startswith(magic):
            _reject_binary(kind, advice)
    if sample[:4] == b"RIFF" and sample[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        _reject_binary("a RIFF media file (WebP image, WAV sound or AVI video)", _TEXT_ADVICE)


def _reject_binary(kind: str, advice: str) -> None:
    raise FileRejected(
        "BINARY_FILE",
        f"The file looks like {kind}, not a CSV text file; {advice}.",
        line=None,
        offset=0,
    )


def _count_lines(prefix: bytes | str) -> int:
    """The 1-based line number at the end of ``prefix`` (universal line endings)."""
    if isinstance(prefix, bytes):
        return prefix.count(b"\n") + prefix.count(b"\r") - prefix.count(b"\r\n") + 1
    return prefix.count("\n") + prefix.count("\r") - prefix.count("\r\n") + 1


# --- encodings -------------------------------------------------------------------------------


def _detect_encoding(sample: bytes, truncated: bool) -> tuple[str, str]:
    """(codec, decoded sample) for encoding="auto"."""
    if sample.startswith(_BOMS_UTF32):
        raise _utf32_rejection()
    if sample.startswith(_BOMS_UTF16):
        return "utf-16", _decode_utf16_sample(sample, truncated)
    if sample.startswith(_BOM_UTF8):
        body = sample[len(_BOM_UTF8) :]
        _reject_binary_bytes(body, len(_BOM_UTF8))
        return "utf-8-sig", body.decode("utf-8", "replace")
    _reject_binary_bytes(sample, 0)
    error = _first_utf8_error(sample, truncated)
    if error is None or _has_utf8_line(sample):
        # Some lines valid multi-byte UTF-8: the file is UTF-8 and the other lines are row
        # issues. Reading it as Windows-1251 would turn the UTF-8 lines into mojibake.
        return "utf-8", sample.decode("utf-8", "replace")
    text = sample.decode("cp1251", "replace")
    if b"\x98" not in sample and _looks_like_cp1251(sample, text):
        return "cp1251", text
    raise FileRejected(
        "ENCODING",
        f"The file is not UTF-8 text (the first byte sequence that is not valid UTF-8 is on "
        f"line {_count_lines(sample[:error])}, byte offset {error}) and its encoding could not "
        "be recognised as Windows-1251. Save the file as “CSV UTF-8”, or choose the "
        "Windows-1251 encoding if it was saved by a Russian-language Excel.",
        line=_count_lines(sample[:error]),
        offset=error,
    )


def _given_encoding(sample: bytes, truncated: bool, wanted: str) -> tuple[str, str]:
    """(codec, decoded sample) for an encoding the user chose."""
    if sample.startswith(_BOMS_UTF32):
        raise _utf32_rejection()
    if wanted == "utf-16":
        if not sample.startswith(_BOMS_UTF16):
            raise FileRejected(
                "ENCODING",
                "UTF-16 needs a byte-order mark and the file does not start with one; save "
                "the file as “CSV UTF-8” or choose another encoding.",
                line=1,
                offset=0,
            )
        return "utf-16", _decode_utf16_sample(sample, truncated)
    if sample.startswith(_BOMS_UTF16):
        raise _mismatch("a UTF-16 byte-order mark", wanted)
    if sample.startswith(_BOM_UTF8):
        if wanted == "cp1251":
            raise _mismatch("a UTF-8 byte-order mark", wanted)
        body = sample[len(_BOM_UTF8) :]
        _reject_binary_bytes(body, len(_BOM_UTF8))
        return "utf-8-sig", body.decode("utf-8", "replace")
    _reject_binary_bytes(sample, 0)
    if wanted == "cp1251":
        if not sample.isascii() and _first_utf8_error(sample, truncated) is None:
            raise _mismatch("valid UTF-8 text with non-Latin letters", wanted)
        return "cp1251", sample.decode("cp1251", "replace")
    return "utf-8", sample.decode("utf-8", "replace")


def _mismatch(found: str, wanted: str) -> FileRejected:
    label = ENCODING_LABELS[wanted]
    return FileRejected(
        "ENCODING",
        f"{label} was chosen but the file starts with {found}; reading it as {label} would "
        "garble its text. Choose the encoding “Auto” or the file's real encoding.",
        line=1,
        offset=0,
    )


def _utf32_rejection() -> FileRejected:
    return FileRejected(
        "ENCODING",
        "The file is UTF-32 text, which is not supported; save it as “CSV UTF-8”.",
        line=1,
        offset=0,
    )


def _first_utf8_error(sample: bytes, truncated: bool) -> int | None:
    """Byte offset of the first invalid UTF-8 sequence, or None. A sequence cut by the end of
    a truncated sample is not an error."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(sample, final=not truncated)
    except UnicodeDecodeError as error:
        return error.start
    return None


def _has_utf8_line(sample: bytes) -> bool:
    """Some line of the sample is valid UTF-8 with at least one multi-byte character."""
    for line in sample.splitlines():
        if not line.isascii():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                continue
            return True
    return False


def _decode_utf16_sample(sample: bytes, truncated: bool) -> str:
    decoder = codecs.getincrementaldecoder("utf-16")()
    try:
        text = decoder.decode(sample, final=not truncated)
    except UnicodeDecodeError as error:
        good = sample[: error.start - error.start % 2].decode("utf-16", "replace")
        raise _utf16_rejection(error.start, _count_lines(good)) from None
    _reject_binary_text(text)
    return text


def _utf16_rejection(offset: int, line: int) -> FileRejected:
    return FileRejected(
        "ENCODING",
        f"The file is not valid UTF-16 at byte offset {offset} (line {line}): a broken "
        "surrogate pair or a missing last byte. Save the file as “CSV UTF-8”.",
        line=line,
        offset=offset,
    )


# Cyrillic words written the way people write: lower case, Capitalised or ALL CAPS, and not
# mixed with Latin letters. Windows-1252 or KOI8-R bytes read as Windows-1251 give words like
# "Mьller" or "йБЧБОПЧ" instead.
_WORD = re.compile(r"[^\W\d_]+")
_CYRILLIC = re.compile("[\u0400-\u04ff]")
_UPPER, _LOWER = "[\u0400-\u042f\u0490]", "[\u0430-\u045f\u0491]"
_NATURAL_CYRILLIC = re.compile(f"{_UPPER}?{_LOWER}+|{_UPPER}+")
_NON_ASCII_SYMBOL = re.compile(r"[^\x00-\x7f\w]")
# Non-letters a Russian text in Windows-1251 plausibly contains.
_CP1251_PUNCTUATION = frozenset(
    "\xa0\xab\xbb\u2013\u2014\u2018\u2019\u201a\u201c\u201d\u201e\u2026\u2022\u2116"
    "\xa7\xa9\xae\xb0\xb1\xb7"
)


def _looks_like_cp1251(sample: bytes, text: str) -> bool:
    """The sample read as Windows-1251 is confidently Russian/Ukrainian/Belarusian text."""
    words = natural = 0
    for word in _WORD.findall(text):
        if not word.isascii():
            words += 1
            natural += bool(_CYRILLIC.match(word) and _NATURAL_CYRILLIC.fullmatch(word))
    odd = sum(1 for char in _NON_ASCII_SYMBOL.findall(text) if char not in _CP1251_PUNCTUATION)
    if not words or odd > words // 10 or natural < 0.9 * words:
        return False
    if natural == words:  # every word reads as Cyrillic: unambiguous even in a tiny file
        return True
    best = charset_normalizer.from_bytes(sample).best()
    return best is not None and "cp1251" in best.could_be_from_charset


# --- binary data -----------------------------------------------------------------------------

# C0 control characters other than TAB, LF and CR (and NUL, which is checked on its own).
_CONTROL_BYTES = bytes([*range(1, 9), 11, 12, *range(14, 32)])
_CONTROL_SHARE = 0.10


def _reject_binary_bytes(sample: bytes, base: int) -> None:
    """BINARY_FILE for NUL bytes or many control bytes; ENCODING for UTF-16 without a BOM."""
    nul = sample.find(b"\x00")
    if nul >= 0:
        if _looks_like_utf16(sample):
            raise FileRejected(
                "ENCODING",
                "The file looks like UTF-16 text without a byte-order mark; save it as "
                "“CSV UTF-8” (or as UTF-16 with a byte-order mark).",
                line=1,
                offset=base,
            )
        raise FileRejected(
            "BINARY_FILE",
            f"The file contains NUL bytes (the first on line "
            f"{_count_lines(sample[:nul])}, byte offset {base + nul}): it is binary data, not "
            f"CSV text; {_TEXT_ADVICE}.",
            line=_count_lines(sample[:nul]),
            offset=base + nul,
        )
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    if controls > _CONTROL_SHARE * len(sample):
        _reject_controls(controls, len(sample))


def _reject_binary_text(text: str) -> None:
    nul = text.find("\x00")
    if nul >= 0:
        raise FileRejected(
            "BINARY_FILE",
            f"The file contains NUL characters (the first on line {_count_lines(text[:nul])}):"
            f" it is binary data, not CSV text; {_TEXT_ADVICE}.",
            line=_count_lines(text[:nul]),
        )
    controls = sum(text.count(chr(code)) for code in _CONTROL_BYTES)
    if controls > _CONTROL_SHARE * len(text):
        _reject_controls(controls, len(text))


def _reject_controls(controls: int, total: int) -> None:
    raise FileRejected(
        "BINARY_FILE",
        f"{controls * 100 // total}% of the start of the file are control characters: it is "
        f"binary data, not CSV text; {_TEXT_ADVICE}.",
    )


def _looks_like_utf16(sample: bytes) -> bool:
    """Nearly every other byte is NUL: ASCII text in UTF-16 without a byte-order mark."""
    head = sample[:4096]
    half = len(head) // 2
    if half < 1:
        return False
    even, odd = head[0::2].count(0), head[1::2].count(0)
    return max(even, odd) >= 0.9 * half and min(even, odd) <= 0.1 * half


# --- delimiter -------------------------------------------------------------------------------


def _sep_line(text: str) -> tuple[str | None, str]:
    """(delimiter named by Excel's "sep=X" first line or None, the text after that line)."""
    end = min((i for i in (text.find("\n"), text.find("\r")) if i >= 0), default=len(text))
    found = _SEP_LINE.match(text[:end])
    if not found:
        return None, text
    sep = found.group(1)
    if sep not in _DELIMITER_LABELS:
        raise FileRejected(
            "DELIMITER",
            "Line 1 of the file is an Excel sep= line naming a delimiter other than "
            "semicolon, comma or TAB; save the file with one of those.",
            line=1,
        )
    rest = text[end + 2 :] if text.startswith("\r\n", end) else text[end + 1 :]
    return sep, rest


_QUOTED = re.compile(r'"[^"]*"')


def _count_delimiters(text: str) -> str:
    """The candidate present in most of the first 100 non-blank lines (outside quotes)."""
    present = {";": 0, ",": 0, "\t": 0}
    seen = 0
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip(BLANK_CHARS):
            continue
        bare = _QUOTED.sub("", line) if '"' in line else line
        for candidate in present:
            present[candidate] += candidate in bare
        seen += 1
        if seen == 100:
            break
    best = max(present, key=present.__getitem__)  # max() keeps the first of equals: ; , TAB
    return best if present[best] else ";"


# --- read_records: physical lines ------------------------------------------------------------


class _Chunk(NamedTuple):
    """Complete physical lines from one block, decoded, without their terminators."""

    lines: list[str]
    issues: dict[int, str] | None  # index in ``lines`` -> row issue code
    has_quote: bool
    longest: int  # length of the longest line, in characters


class _Splitter:
    """Cuts a stream of blocks (bytes, or str for UTF-16) into runs of complete lines.

    Every piece it returns ends at a line terminator (except the last one of the file), so a
    piece never splits a multi-byte character (CR and LF never occur inside one in UTF-8 or
    Windows-1251). A CR ending one block and an LF starting the next are one terminator. A line
    longer than ``limit`` units is not accumulated: only its head is kept (constant memory)
    and it comes out as a ("long", head) piece.
    """

    # The same code serves bytes and str; ``Any`` because the type checker cannot say "all
    # bytes or all str".
    def __init__(self, empty: bytes | str, limit: int, head: int) -> None:
        self.nl: Any = b"\n" if isinstance(empty, bytes) else "\n"
        self.cr: Any = b"\r" if isinstance(empty, bytes) else "\r"
        self.empty: Any = empty
        self.limit = limit
        self.head = head
        self.leftover: Any = empty
        self.skip_lf = False
        self.overlong: Any = None  # the head of a line over the limit, its end not yet seen

    def push(self, data: Any) -> list[tuple[str, Any]]:
        pieces: list[tuple[str, Any]] = []
        if self.skip_lf and data:
            self.skip_lf = False
            if data.startswith(self.nl):
                data = data[1:]
        if self.overlong is not None:
            end = self._first_terminator(data)
            if len(self.overlong) < self.head:
                self.overlong += data[: self.head - len(self.overlong) if end < 0 else end]
                self.overlong = self.overlong[: self.head]
            if end < 0:
                return pieces
            pieces.append(("long", self.overlong))
            self.overlong = None
            data = data[self._after_terminator(data, end) :]
        data = self.leftover + data
        cut = max(data.rfind(self.nl), data.rfind(self.cr))
        if cut >= 0:
            pieces.append(("lines", data[: cut + 1]))
            self.skip_lf = cut == len(data) - 1 and data.endswith(self.cr)
            data = data[cut + 1 :]
        self.leftover = data
        if len(data) > self.limit:
            self.overlong, self.leftover = data[: self.head], self.empty
        return pieces

    def finish(self) -> list[tuple[str, Any]]:
        if self.overlong is not None:
            return [("long", self.overlong)]
        return [("lines", self.leftover)] if self.leftover else []

    def _first_terminator(self, data: Any) -> int:
        found = [i for i in (data.find(self.nl), data.find(self.cr)) if i >= 0]
        return min(found, default=-1)

    def _after_terminator(self, data: Any, end: int) -> int:
        if data.startswith(self.cr, end):
            if end + 1 == len(data):
                self.skip_lf = True
            elif data.startswith(self.nl, end + 1):
                return end + 2
        return end + 1


class _LineDecoder:
    """Turns the splitter's pieces into _Chunks for one encoding, finding row issues."""

    def __init__(self, encoding: str, max_line_bytes: int) -> None:
        self.utf16 = encoding == "utf-16"
        self.codec = "utf-8" if encoding == "utf-8-sig" else encoding
        self.max_line_bytes = max_line_bytes
        # A line of at most this many characters cannot be over the limit in bytes.
        self.safe_chars = max_line_bytes if self.codec == "cp1251" else max_line_bytes // 4

    def byte_length(self, line: str) -> int:
        if self.codec == "cp1251":
            return len(line)
        return len(line.encode("utf-16-le" if self.utf16 else "utf-8", "surrogatepass"))

    def chunk(self, kind: str, piece: bytes | str) -> _Chunk:
        if isinstance(piece, str):  # UTF-16, decoded as a stream
            if kind == "long":
                return _Chunk([piece[:TEXT_LIMIT]], {0: "line_too_long"}, False, TEXT_LIMIT)
            return self._text_chunk(piece)
        if kind == "long":
            text = piece.decode(self.codec, "backslashreplace")
            return _Chunk([text[:TEXT_LIMIT]], {0: "line_too_long"}, False, TEXT_LIMIT)
        if b"\r" in piece:
            piece = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        try:
            text = piece.decode(self.codec)
        except UnicodeDecodeError:
            return self._line_by_line(piece)
        return self._text_chunk(text)

    def _text_chunk(self, text: str) -> _Chunk:
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        if not lines[-1]:  # the piece ends with a terminator
            lines.pop()
        longest = max(map(len, lines), default=0)
        issues: dict[int, str] = {}
        if longest > self.safe_chars:
            for index, line in enumerate(lines):
                if len(line) > self.safe_chars and self.byte_length(line) > self.max_line_bytes:
                    issues[index] = "line_too_long"
                    lines[index] = line[:TEXT_LIMIT]
        return _Chunk(lines, issues or None, '"' in text, longest)

    def _line_by_line(self, piece: bytes) -> _Chunk:
        """Decode each line on its own so that one bad line is a row issue, not the file's."""
        raw_lines = piece.split(b"\n")
        if not raw_lines[-1]:
            raw_lines.pop()
        lines, issues = [], {}
        for index, raw in enumerate(raw_lines):
            if len(raw) > self.max_line_bytes:
                issues[index] = "line_too_long"
                raw = raw[: 4 * TEXT_LIMIT]
            try:
                line = raw.decode(self.codec)
            except UnicodeDecodeError:
                issues.setdefault(index, "encoding")
                line = raw.decode(self.codec, "backslashreplace")
            lines.append(line[:TEXT_LIMIT] if index in issues else line)
        return _Chunk(lines, issues, b'"' in piece, max(map(len, lines), default=0))


def _chunks(
    path: str | os.PathLike,
    encoding: str,
    max_line_bytes: int,
    progress: Callable[[int], None] | None,
) -> Iterator[_Chunk]:
    """The file's lines, one block at a time."""
    decoder = _LineDecoder(encoding, max_line_bytes)
    utf16 = codecs.getincrementaldecoder("utf-16")() if encoding == "utf-16" else None
    if utf16 is None:  # limits in bytes; keep enough bytes for TEXT_LIMIT characters
        splitter = _Splitter(b"", max_line_bytes, 4 * TEXT_LIMIT)
    else:  # limits in characters: each is at least 2 bytes in UTF-16
        splitter = _Splitter("", max_line_bytes // 2, TEXT_LIMIT)
    with open(path, "rb") as file:
        if utf16 is None and file.read(len(_BOM_UTF8)) != _BOM_UTF8:
            file.seek(0)  # else the UTF-8 BOM is skipped: never part of the first field
        while block := file.read(BLOCK_SIZE):
            data = block if utf16 is None else _decode_utf16_block(utf16, file, block, path)
            for kind, piece in splitter.push(data):
                yield decoder.chunk(kind, piece)
            if progress is not None:
                progress(file.tell())
        if utf16 is not None:
            tail = _decode_utf16_block(utf16, file, b"", path, final=True)
            for kind, piece in splitter.push(tail):
                yield decoder.chunk(kind, piece)
    for kind, piece in splitter.finish():
        yield decoder.chunk(kind, piece)


def _decode_utf16_block(decoder, file, block: bytes, path, *, final: bool = False) -> str:
    """Decode the block just read from ``file`` (a UTF-16 stream); errors reject the file."""
    buffered = len(decoder.getstate()[0])
    try:
        return decoder.decode(block, final=final)
    except UnicodeDecodeError as error:
        offset = file.tell() - len(block) - buffered + error.start
        raise _utf16_rejection(offset, _utf16_line_at(path, offset)) from None


def _utf16_line_at(path: str | os.PathLike, offset: int) -> int:
    """The line number at byte ``offset`` of a UTF-16 file, counted by streaming the file."""
    decoder = codecs.getincrementaldecoder("utf-16")("replace")
    line, last = 1, ""
    remaining = offset - offset % 2
    with open(path, "rb") as file:
        while remaining > 0 and (block := file.read(min(BLOCK_SIZE, remaining))):
            remaining -= len(block)
            text = decoder.decode(block)
            line += _count_lines(text) - 1 - (last == "\r" and text.startswith("\n"))
            last = text[-1:] or last
    return line


# --- read_records: records -------------------------------------------------------------------


def read_records(
    path: str | os.PathLike,
    dialect: Dialect,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    skip_until_line: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Iterator[Record]:
    """The records of the file, streamed with constant memory.

    The header is not detected here: a header line is the first record. Excel's sep= line is
    skipped when ``dialect.sep_line``. Records starting on a line <= ``skip_until_line`` are
    parsed (so that a multi-line record is cut correctly) but not yielded: resuming after a
    checkpoint. ``progress(bytes_read)`` is called after each block. Raises FileRejected
    (UNTERMINATED_QUOTE, or ENCODING for a broken UTF-16 stream) and OSError.
    """
    skip = skip_until_line
    assembler = _Assembler(dialect, max_line_bytes)
    number = 0  # the physical line number of the last line handled
    first = True
    for chunk in _chunks(path, dialect.encoding, max_line_bytes, progress):
        if first:
            first = False
            if dialect.sep_line and _is_sep_line(chunk):
                chunk = _without_first_line(chunk)
                number = 1
        size = len(chunk.lines)
        if not size:  # the sep= line was all there was
            continue
        if assembler.pending is None and chunk.issues is None and not chunk.has_quote:
            if number + size > skip:
                yield from assembler.simple(chunk, number, skip)
        else:
            for record in assembler.feed(chunk, number):
                if record.line > skip:
                    yield record
        number += size
    assembler.finish()


def _is_sep_line(chunk: _Chunk) -> bool:
    return not (chunk.issues and 0 in chunk.issues) and bool(_SEP_LINE.match(chunk.lines[0]))


def _without_first_line(chunk: _Chunk) -> _Chunk:
    issues = {index - 1: code for index, code in chunk.issues.items()} if chunk.issues else None
    return chunk._replace(lines=chunk.lines[1:], issues=issues)


@dataclass
class _Pending:
    """A record whose quoted field is still open at the end of its last line so far."""

    line: int  # where the record starts
    parts: list[str]
    size: int  # bytes, terminators counted as one
    issue: str | None
    open_line: int  # where the quote that is still open was opened


class _Assembler:
    """Builds records from lines that contain a quote or have an issue, across chunks."""

    def __init__(self, dialect: Dialect, max_line_bytes: int) -> None:
        self.delimiter = dialect.delimiter
        self.strip = BLANK_CHARS + dialect.delimiter
        self.max_line_bytes = max_line_bytes
        self.byte_length = _LineDecoder(dialect.encoding, max_line_bytes).byte_length
        self.pending: _Pending | None = None

    def simple(self, chunk: _Chunk, number: int, skip: int) -> Iterator[Record]:
        """Records of lines with no quote and no issue: one line, one record, str.split.

        Over 95% of real files take only this path, so it is built from C-level iterators
        (map, zip): about twice as fast as a Python loop over the lines.
        """
        lines = chunk.lines
        if skip > number:
            lines = lines[skip - number :]
            number = skip
        texts = lines if chunk.longest <= TEXT_LIMIT else map(_cut_text, lines)
        fields = map(str.split, lines, repeat(self.delimiter))
        blanks = map(not_, map(str.strip, lines, repeat(self.strip)))
        columns = zip(count(number + 1), texts, fields, repeat(None), blanks)
        return map(_new_record, repeat(Record), columns)

    def feed(self, chunk: _Chunk, number: int) -> Iterator[Record]:
        """Records of a chunk with quotes or row issues, or while a quoted field is open."""
        start = 0
        if self.pending is None and chunk.issues is None:
            start = yield from self._csv_records(chunk.lines, number)
        yield from self._line_records(chunk, number, start)

    def _csv_records(self, lines: list[str], number: int) -> Generator[Record, None, int]:
        """Records of ``lines`` parsed by the csv module (C speed) up to the first record that
        spans several lines or may continue in the next chunk; returns the index of its first
        line (len(lines) when all are done). Only the Python parser knows where such a record
        ends, and that the quote is never closed."""
        try:
            rows = list(csv.reader(lines, delimiter=self.delimiter))
        except csv.Error:  # a field over csv's size limit: the Python parser has none
            return 0
        if len(rows) != len(lines) or self._ends_open(lines[-1]):
            return (yield from self._csv_prefix(lines, number))
        if not all(rows):
            rows = [row or [""] for row in rows]  # csv gives [] for an empty line
        # A line with anything but blanks, quotes and delimiters is not blank; the others
        # are checked field by field.
        blanks = list(map(not_, map(str.strip, lines, repeat(self.strip + '"'))))
        if any(blanks):
            blanks = [
                blank and not any(field.strip(BLANK_CHARS) for field in row)
                for blank, row in zip(blanks, rows, strict=True)
            ]
        texts = lines if max(map(len, lines)) <= TEXT_LIMIT else map(_cut_text, lines)
        columns = zip(count(number + 1), texts, rows, repeat(None), blanks)
        yield from map(_new_record, repeat(Record), columns)
        return len(lines)

    def _csv_prefix(self, lines: list[str], number: int) -> Generator[Record, None, int]:
        """Like _csv_records, row by row, for a chunk with a multi-line record."""
        reader = csv.reader(lines, delimiter=self.delimiter)
        done = 0
        for fields in reader:
            if reader.line_num != done + 1:
                break
            line = lines[done]
            if reader.line_num == len(lines) and self._ends_open(line):
                break
            done += 1
            yield _record(number + done, line, fields or [""], None, self.strip)
        return done

    def _ends_open(self, line: str) -> bool:
        return '"' in line and split_fields(line, self.delimiter)[1] >= 0

    def _line_records(self, chunk: _Chunk, number: int, start: int) -> Iterator[Record]:
        issues = chunk.issues or {}
        number += start
        for index in range(start, len(chunk.lines)):
            line = chunk.lines[index]
            number += 1
            issue = issues.get(index)
            if self.pending is not None:
                record = self._continue(self.pending, line, issue)
            elif issue == "line_too_long":  # not parsed: its quotes cannot be trusted
                record = _new_record(Record, (number, line, [], issue, False))
            elif '"' in line:
                record = self._start(line, issue, number)
            elif issue is not None:
                record = _new_record(Record, (number, line[:TEXT_LIMIT], [], issue, False))
            else:
                fields = line.split(self.delimiter)
                record = _record(number, line, fields, None, self.strip)
            if record is not None:
                yield record

    def finish(self) -> None:
        if self.pending is not None:
            raise _unterminated(self.pending, "is not closed before the end of the file")

    def _start(self, line: str, issue: str | None, number: int) -> Record | None:
        fields, open_at = split_fields(line, self.delimiter)
        if open_at < 0:
            return _record(number, line, fields, issue, self.strip)
        self.pending = _Pending(number, [line], self.byte_length(line), issue, number)
        return None

    def _continue(self, pending: _Pending, line: str, issue: str | None) -> Record | None:
        too_long = f"is still open after {self.max_line_bytes:,} bytes"
        if issue == "line_too_long":
            raise _unterminated(pending, too_long)
        pending.parts.append(line)
        pending.size += 1 + self.byte_length(line)
        pending.issue = pending.issue or issue
        if len(pending.parts) > MAX_RECORD_LINES:
            raise _unterminated(pending, f"is not closed within {MAX_RECORD_LINES} lines")
        if pending.size > self.max_line_bytes:
            raise _unterminated(pending, too_long)
        text = "\n".join(pending.parts)
        fields, open_at = split_fields(text, self.delimiter)
        if open_at >= 0:
            pending.open_line = pending.line + text.count("\n", 0, open_at)
            return None
        self.pending = None
        return _record(pending.line, text, fields, pending.issue, self.strip)


def _unterminated(pending: _Pending, what: str) -> FileRejected:
    line = pending.open_line
    return FileRejected(
        "UNTERMINATED_QUOTE",
        f"The quoted field opened on line {line} {what}. Check that line for a stray "
        'double quote ("): a value containing a quote must be quoted as a whole, with the '
        'quote doubled, like "Audience ""VIP""".',
        line=line,
    )


def _cut_text(text: str) -> str:
    return text[:TEXT_LIMIT]


def _record(line: int, text: str, fields: list[str], issue: str | None, strip: str) -> Record:
    """A Record; ``strip`` is BLANK_CHARS plus the delimiter."""
    if issue is not None:
        return _new_record(Record, (line, text[:TEXT_LIMIT], [], issue, False))
    # Most records have text outside the quotes: the cheap test settles them.
    blank = not text.strip(strip) or (
        not text.strip(strip + '"') and not any(field.strip(BLANK_CHARS) for field in fields)
    )
    return _new_record(Record, (line, text[:TEXT_LIMIT], fields, None, blank))


def split_fields(text: str, delimiter: str) -> tuple[list[str], int]:
    """Split one record's text into fields with the reading rules of Python's csv module
    (doublequote, non-strict): ``(fields, -1)``, or ``(fields so far, index of the opening
    quote)`` when the text ends inside a quoted field.

    A quote opens a quoted field only as the first character of a field; ``""`` inside is one
    quote; after the closing quote, text up to the delimiter is kept as is (``"ab"c`` is
    ``abc``); a quote inside an unquoted field is literal (``12"3``).
    """
    fields: list[str] = []
    start, end = 0, len(text)
    while True:
        if start < end and text[start] == '"':
            parts = []
            position = start + 1
            while True:
                close = text.find('"', position)
                if close < 0:
                    return fields, start
                parts.append(text[position:close])
                if text.startswith('"', close + 1):  # a doubled quote is one quote
                    parts.append('"')
                    position = close + 2
                else:
                    position = close + 1
                    break
            stop = text.find(delimiter, position)
            parts.append(text[position:] if stop < 0 else text[position:stop])
            fields.append("".join(parts))
        else:
            stop = text.find(delimiter, start)
            fields.append(text[start:] if stop < 0 else text[start:stop])
        if stop < 0:
            return fields, -1
        start = stop + 1
