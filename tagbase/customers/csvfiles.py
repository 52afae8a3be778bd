"""Reading a data CSV (customers, receipts, events) as a stream of numbered rows.

A file is checked as a whole first (``open_csv``): it exists, is UTF-8 text (a BOM is fine),
holds no NUL bytes, has a header, and parses as CSV to the end (an unterminated quote would
otherwise swallow the rest of the file into one field). Only then are rows read again, one at a
time (``CsvFile.records``), so a file refused as a whole has written nothing and memory stays
constant however long the file is. Line numbers are the file's physical lines (1-based), counting
every line ending (LF, CRLF or CR) and blank lines.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tagbase.customers.reports import FileRejected

DELIMITERS = (",", ";", "\t")
_SEP_LINE = re.compile(r'"?sep=(.)"?\s*')  # Excel's "sep=;" first line
_SIGNATURES = {
    b"PK\x03\x04": "a ZIP archive (an XLSX workbook?)",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"GIF8": "a GIF image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\xd0\xcf\x11\xe0": "an old Excel/Word document",
}
_ENCODING_HINT = "Save the file as UTF-8 (CSV UTF-8 in Excel) and load it again."


@dataclass(frozen=True)
class Record:
    """One data row: its first line, and the values by header name (None when the row has the
    wrong number of fields, then ``found`` says how many it had)."""

    line: int
    values: dict[str, str] | None
    found: int


class _Lines:
    """The file's lines, counted, refusing NUL characters."""

    def __init__(self, handle: object) -> None:
        self._handle = handle
        self.count = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._handle:  # type: ignore[attr-defined]
            self.count += 1
            if "\x00" in line:
                raise FileRejected(
                    "binary", "The file contains NUL bytes; it is not a text CSV.", line=self.count
                )
            yield line


@dataclass(frozen=True)
class CsvFile:
    path: Path
    delimiter: str
    header: list[str]
    header_line: int  # the line holding the header; data starts after it
    size: int
    trailing_delimiter: bool  # every line ends with the delimiter (an empty last column)

    def records(self, progress: Callable[[int], None] | None = None) -> Iterator[Record]:
        """Data rows in file order; blank lines are skipped. ``progress`` receives the bytes
        read so far now and then."""
        with self.path.open(encoding="utf-8-sig", newline="") as handle:
            lines = _Lines(handle)
            reader = csv.reader(lines, delimiter=self.delimiter, strict=True)
            width = len(self.header)
            read = 0
            for start, fields in _numbered(reader, lines):
                if start <= self.header_line or not any(fields):
                    continue
                if self.trailing_delimiter and len(fields) == width + 1 and not fields[-1]:
                    fields.pop()
                if len(fields) != width:
                    yield Record(start, None, len(fields))
                else:
                    yield Record(start, dict(zip(self.header, fields, strict=True)), width)
                read += 1
                if progress is not None and read % 10_000 == 0:
                    progress(handle.buffer.tell())  # type: ignore[attr-defined]


def _numbered(reader: Iterator[list[str]], lines: _Lines) -> Iterator[tuple[int, list[str]]]:
    """(first line of the record, fields); csv errors become FileRejected with the line."""
    while True:
        start = lines.count + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileRejected(
                "csv_malformed",
                f"The file is not valid CSV from line {start}: {exc} "
                "(often an unterminated quote).",
                line=start,
            ) from None
        except UnicodeDecodeError:
            raise FileRejected(
                "encoding", f"The file is not UTF-8 text. {_ENCODING_HINT}", line=start
            ) from None
        yield start, fields


def open_csv(path: str | Path) -> CsvFile:
    """Check a CSV file as a whole and return how to read it. Raises FileRejected."""
    file_path = Path(path)
    if not file_path.is_file():
        raise FileRejected("file_not_found", f"No such file: {file_path.name}.")
    try:
        size = file_path.stat().st_size
        with file_path.open("rb") as raw:
            _check_start(raw.read(8))
    except OSError as exc:
        raise FileRejected("file_unreadable", f"The file cannot be read: {exc.strerror}.") from None
    _check_utf8(file_path)
    delimiter, header, header_line = _header(file_path)
    trailing = len(header) > 1 and header[-1] == ""
    if trailing:
        header = header[:-1]
    _check_header(header, header_line)
    csv_file = CsvFile(file_path, delimiter, header, header_line, size, trailing)
    for _ in csv_file.records():  # parse to the end: malformed CSV is refused before any write
        pass
    return csv_file


def _check_start(start: bytes) -> None:
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileRejected("encoding", f"The file is UTF-16 text. {_ENCODING_HINT}", line=1)
    for signature, what in _SIGNATURES.items():
        if start.startswith(signature):
            raise FileRejected("binary", f"The file is {what}, not a CSV text file.", line=1)
    if not start:
        raise FileRejected("empty", "The file is empty; a header line is required.")


def _check_utf8(path: Path) -> None:
    """Decode the whole file in blocks; on an error, name its line and byte offset."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    line = 1
    previous_cr = False
    with path.open("rb") as raw:
        while block := raw.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                at = max(0, exc.start)
                line += _count_lines(block[:at], previous_cr)
                raise FileRejected(
                    "encoding",
                    f"The file is not UTF-8 text (line {line}, byte {offset + at}). "
                    f"{_ENCODING_HINT}",
                    line=line,
                ) from None
            line += _count_lines(block, previous_cr)
            previous_cr = block.endswith(b"\r")
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise FileRejected(
                "encoding", f"The file ends inside a character. {_ENCODING_HINT}", line=line
            ) from None


def _count_lines(data: bytes, previous_cr: bool) -> int:
    # CRLF is one line ending, a lone CR or LF is one; a CRLF split across blocks counts once.
    count = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
    if previous_cr and data.startswith(b"\n"):
        count -= 1
    return count


def _header(path: Path) -> tuple[str, list[str], int]:
    """(delimiter, header names, header line), skipping blank lines and a ``sep=`` line."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        delimiter = None
        for number, line in enumerate(_Lines(handle), start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            sep = _SEP_LINE.fullmatch(text)
            if sep and delimiter is None and number == 1:
                delimiter = sep.group(1)
                continue
            delimiter = delimiter or _detect_delimiter(text)
            try:
                names = next(csv.reader([text], delimiter=delimiter, strict=True))
            except csv.Error as exc:
                raise FileRejected(
                    "header_invalid", f"The header line cannot be read: {exc}.", line=number
                ) from None
            return delimiter, [n.strip() for n in names], number
    raise FileRejected("no_header", "The file has no header line (it is blank).")


def _detect_delimiter(header: str) -> str:
    # Header names never contain a delimiter, so the most frequent candidate is the one.
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _check_header(header: list[str], line: int) -> None:
    blanks = [str(i) for i, name in enumerate(header, start=1) if not name]
    if blanks:
        raise FileRejected(
            "header_invalid",
            f"The header has an empty column name at position(s) {', '.join(blanks)}.",
            line=line,
        )
