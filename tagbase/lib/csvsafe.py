"""CSV cells that a spreadsheet will not run as formulas.

A spreadsheet treats a cell starting with ``=``, ``+``, ``-`` or ``@`` as a formula, and some
also after a leading TAB or CR; a customer name or an identifier from a partner file must never
become one ("CSV injection"). Every CSV that Tagbase writes passes its cells through
``escape_cell``: such a cell gets a leading apostrophe, which spreadsheets show as "this is
text" and do not display. The value is otherwise unchanged, so a reader that knows the rule can
strip the one apostrophe again (``unescape_cell``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: object) -> str:
    """The text of ``value`` for a CSV cell, with an apostrophe first if it could be a formula.

    ``None`` becomes an empty cell. Numbers are escaped like text: ``-5`` becomes ``'-5``,
    which keeps the rule simple and the cell's text exact.
    """
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def unescape_cell(text: str) -> str:
    """Undo ``escape_cell`` for a cell that it escaped; any other text is returned as is."""
    if text.startswith("'") and text[1:].startswith(FORMULA_STARTS):
        return text[1:]
    return text


class _Line:
    """A file-like sink that hands back what csv.writer wrote for one row."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def write(self, text: str) -> int:
        return self.buffer.write(text)

    def take(self) -> str:
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text


def csv_lines(rows: Iterable[Iterable[object]], *, delimiter: str = ",") -> Iterator[str]:
    """Each row as one escaped CSV line (with its line ending), produced lazily so that a
    streamed download holds only one row in memory."""
    sink = _Line()
    writer = csv.writer(sink, delimiter=delimiter, lineterminator="\r\n")
    for row in rows:
        writer.writerow([escape_cell(cell) for cell in row])
        yield sink.take()
