"""CSV cells never become spreadsheet formulas (tagbase.lib.csvsafe)."""

from __future__ import annotations

import csv
import io

import pytest

from tagbase.lib.csvsafe import csv_lines, escape_cell, unescape_cell


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("=1+2", "'=1+2"),
        ("+79123456789", "'+79123456789"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("\rCR", "'\rCR"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("'already", "'already"),
        ("", ""),
        (None, ""),
        (12, "12"),
        (-3, "'-3"),
    ],
)
def test_a_cell_that_starts_like_a_formula_gets_an_apostrophe(value, escaped):
    assert escape_cell(value) == escaped


@pytest.mark.parametrize("value", ["=1", "+7", "-x", "@a", "\tb", "\rc", "plain", "'quoted"])
def test_unescaping_gives_back_the_original_text(value):
    assert unescape_cell(escape_cell(value)) == value


def test_csv_lines_yield_one_escaped_line_per_row_that_csv_reads_back():
    rows = [['=HYPERLINK("x")', "ok"], ["a;b", 'say "hi"'], ["line\nbreak", None]]
    lines = list(csv_lines(rows))
    assert len(lines) == 3 and all(line.endswith("\r\n") for line in lines)
    back = list(csv.reader(io.StringIO("".join(lines))))
    assert back == [['\'=HYPERLINK("x")', "ok"], ["a;b", 'say "hi"'], ["line\nbreak", ""]]


def test_csv_lines_are_produced_lazily():
    def endless():
        n = 0
        while True:
            n += 1
            yield [n]

    lines = csv_lines(endless())
    assert [next(lines) for _ in range(3)] == ["1\r\n", "2\r\n", "3\r\n"]


def test_csv_lines_use_the_delimiter_asked_for():
    assert list(csv_lines([["a", "-b"]], delimiter=";")) == ["a;'-b\r\n"]
