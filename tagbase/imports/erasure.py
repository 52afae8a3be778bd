"""Erasing a customer from imports (docs/privacy.md): their records in stored uploads, their
staged rows, and their rows in rejected-rows reports.

Two steps, as ``customers.erasure`` asks:

1. ``find_customer_records`` (*prepare*, before the erasure's transaction, read only) reads every
   stored upload still kept, record by record with the import's own reader and row rules, and
   notes the records that are the customer's: a row whose identifier normalises to one of the
   customer's identifiers of the import's type (whatever became of it: added, duplicate,
   ambiguous…), and a row refused as invalid whose text mentions the customer's phone, e-mail,
   card or partner id (``Mentions``). This is the slow part (a stored file may hold millions of
   lines), so it runs without holding the database's write lock.
2. ``erase_records`` (inside the transaction, with the jobs' rows locked) empties those records'
   lines in the stored upload, masks the staged rows of those lines (``value`` and ``raw``
   cleared) and drops the rows from the rejected-rows report.

Why the lines are *emptied* rather than removed: every other line keeps its number, so the
line numbers of the report still point at the right lines, and a job that has not finished
reading its file (queued, or abandoned by a worker that died) resumes from its checkpoint line
exactly as before; an emptied line reads as blank. A staged row keeps its status and customer id
(the customer's id only, no data), so the job's accounting identity still holds: the customer
no longer exists when the job applies, and the row is counted ``not_found`` like any customer
deleted meanwhile.

A job that a worker is processing right now (a live lease) and whose file holds the customer
blocks the erasure (``ErasureBlocked``): the worker may hold those rows in memory and write them
back after the erasure. It ends within minutes; erasing again then succeeds. A job whose lease
has expired loses it (its owner is cleared), so a stalled worker that wakes up cannot write what
it read; the sweeper hands the job to another worker.

Files are rewritten to a temporary file in the same folder, flushed to disk and renamed over the
original, so a reader sees either the old file or the new one. A stored upload that cannot be
read as records any more (refused as a whole: binary, broken encoding) and mentions the customer
is deleted instead; the job's counters stay, as after the retention period.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import phonenumbers
from django.conf import settings
from django.utils import timezone

from tagbase.customers.erasure import ErasedCustomer, ErasureBlocked
from tagbase.imports import rows as row_rules
from tagbase.imports.models import RUNNABLE, TERMINAL, ImportJob, ImportMode, ImportRow
from tagbase.imports.pipeline import import_dir
from tagbase.lib import csvread

# Pieces of a line read at a time when rewriting, so that one very long line never has to fit
# in memory whole.
READ_PIECE = 1 << 20
RAW_BLOCK = 1 << 20
# The shortest card number or partner id looked for inside the text of an invalid row: shorter
# ones would be found by coincidence in other people's rows.
MIN_MENTION = 5
_CARD_SEPARATORS = str.maketrans("", "", " -\u2010\u2011\u2012\u2013")
_NOT_DIGIT = re.compile(r"[^0-9]")


# --- Finding the customer's records -----------------------------------------------------------


def _nfkc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


class Mentions:
    """Whether a text mentions the customer: their phone's national number among the text's
    digits (however it is written: ``8 (916) 123-45-67``), their e-mail (any case), a card
    number (spaces and hyphens ignored) or their partner id. Used for rows refused as invalid,
    whose identifier could not be normalised, and for files that cannot be read as records."""

    def __init__(self, customer: ErasedCustomer) -> None:
        phones = (_national_digits(customer.phone), _digits(customer.phone_raw))
        self.digits = {d for d in phones if len(d) >= 7}
        emails = (customer.email or "", customer.email_raw.strip().lower())
        self.emails = {e for e in emails if "@" in e}
        self.cards = {c for c in customer.cards if len(c) >= MIN_MENTION}
        external = customer.external_id or ""
        self.texts = {external} if len(external) >= MIN_MENTION else set()

    def __bool__(self) -> bool:
        return bool(self.digits or self.emails or self.cards or self.texts)

    def __call__(self, text: str) -> bool:
        text = _nfkc(text)
        digits = _NOT_DIGIT.sub("", text) if self.digits else ""
        if digits and any(d in digits for d in self.digits):
            return True
        if self.emails and "@" in text:
            lowered = text.lower()
            if any(e in lowered for e in self.emails):
                return True
        if self.cards:
            compact = text.translate(_CARD_SEPARATORS).upper()
            if any(c in compact for c in self.cards):
                return True
        return any(t in text for t in self.texts)


def _digits(text: str) -> str:
    return _NOT_DIGIT.sub("", _nfkc(text))


def _national_digits(e164: str | None) -> str:
    if not e164:
        return ""
    try:
        return str(phonenumbers.national_significant_number(phonenumbers.parse(e164)))
    except phonenumbers.NumberParseException:
        return _digits(e164)


class RecordMatcher:
    """Whether one record of an import file is the customer's (see the module docstring)."""

    def __init__(self, customer: ErasedCustomer, job: ImportJob) -> None:
        self.values = customer.identifiers(job.id_type)
        self.id_type = job.id_type
        self.parse = (
            row_rules.parse_single if job.mode == ImportMode.SINGLE else row_rules.parse_per_row
        )
        self.region = settings.TAGBASE_DEFAULT_PHONE_REGION
        self.mentions = Mentions(customer)
        self.might_name = _cheap_test(customer, job.id_type)

    def __call__(self, record: csvread.Record) -> bool:
        if record.blank:
            return False
        if record.issue:  # undecodable or over-long: only its text is known
            return self.mentions(record.text)
        named = self.might_name("\x1f".join(record.fields))
        if not named and not self.mentions(record.text):
            return False
        parsed = self.parse(record.fields, self.id_type, self.region)
        if parsed.kind == "candidate":
            return parsed.value in self.values
        return parsed.kind == "invalid" and self.mentions(record.text)


def _cheap_test(customer: ErasedCustomer, id_type: str) -> Callable[[str], bool]:
    """A quick test that is true for every text whose identifier can normalise to one of the
    customer's values of this type (so that the row rules run only on those): each normaliser
    (``tagbase.lib.identifiers``) keeps the characters tested for, in order."""
    values = customer.identifiers(id_type)
    if not values:
        return lambda text: False
    if id_type == "phone":
        needles = {_national_digits(v) for v in values}
        return lambda text: any(n in _digits(text) for n in needles)
    if id_type == "email":
        locals_ = {v.split("@", 1)[0] for v in values}
        # The normaliser lower-cases, then applies NFKC to a non-ASCII result: try both orders.
        return lambda text: any(
            n in form for form in {_nfkc(text).lower(), _nfkc(text.lower())} for n in locals_
        )
    if id_type == "card":
        return lambda text: any(
            n in _nfkc(text).translate(_CARD_SEPARATORS).upper() for n in values
        )
    return lambda text: any(n in _nfkc(text) for n in values)  # sc_id, external_id


@dataclass
class FoundRecords:
    """The customer's records in one import's stored upload."""

    job_id: int
    starts: set[int] = field(default_factory=set)  # first line of each record (staged `line`)
    lines: set[int] = field(default_factory=set)  # every physical line they take
    tail: int | None = None  # the last record of the file is theirs: from this line to the end
    unreadable: bool = False  # the file cannot be read as records and mentions the customer

    def has(self, line: int) -> bool:
        return line in self.lines or (self.tail is not None and line >= self.tail)


def find_customer_records(customer: ErasedCustomer) -> dict[int, FoundRecords]:
    """Every import whose stored upload still exists and holds the customer: job id -> records.
    Reads the files only (the *prepare* step of the eraser)."""
    found: dict[int, FoundRecords] = {}
    jobs = ImportJob.objects.filter(files_purged_at__isnull=True).order_by("pk")
    for job in jobs.iterator():
        path = import_dir() / job.stored_name
        if not job.stored_name or not path.exists():
            continue
        records = _scan(job, path, customer)
        if records.starts or records.unreadable:
            found[job.pk] = records
    return found


def _scan(job: ImportJob, path: Path, customer: ErasedCustomer) -> FoundRecords:
    out = FoundRecords(job.pk)
    matches = RecordMatcher(customer, job)
    try:
        dialect = csvread.sniff(
            path, encoding=job.encoding_requested, delimiter=job.delimiter_requested
        )
        pending: int | None = None  # a matched record whose last line is not known yet
        for record in csvread.read_records(
            path, dialect, max_line_bytes=settings.TAGBASE_IMPORT_MAX_LINE_BYTES
        ):
            if pending is not None:
                out.lines.update(range(pending, record.line))
                pending = None
            if matches(record):
                out.starts.add(record.line)
                pending = record.line
        out.tail = pending
    except (csvread.FileRejected, UnicodeError, ValueError):
        # Refused as a whole (the job was rejected for it): nothing was staged from it, but its
        # bytes may still hold the customer.
        return FoundRecords(job.pk, unreadable=_raw_mentions(path, matches.mentions))
    return out


def _raw_mentions(path: Path, mentions: Mentions) -> bool:
    """Whether a file that cannot be read as records mentions the customer, reading its bytes
    as each encoding an upload may have, a block at a time (blocks overlap so that nothing is
    missed at a boundary)."""
    if not mentions:
        return False
    overlap = 1024
    tail = b""
    with path.open("rb") as fh:
        while block := fh.read(RAW_BLOCK):
            data = tail + block
            for encoding in ("utf-8", "cp1251", "utf-16-le", "utf-16-be"):
                if mentions(data.decode(encoding, "replace")):
                    return True
            tail = data[-overlap:]
    return False


# --- Erasing them -----------------------------------------------------------------------------


def erase_records(
    customer: ErasedCustomer, found: dict[int, FoundRecords] | None
) -> dict[str, int]:
    """Empty the customer's lines in each stored upload, mask their staged rows and drop them
    from the rejected-rows reports (inside the erasure's transaction; see the module
    docstring). Raises ErasureBlocked when a worker is processing one of those imports now."""
    counts = dict.fromkeys(
        ("imports", "lines_emptied", "staged_rows_masked", "report_rows_removed", "files_deleted"),
        0,
    )
    if not found:
        return counts
    jobs = {
        job.pk: job
        for job in ImportJob.objects.select_for_update().filter(pk__in=sorted(found)).order_by("pk")
    }
    busy = sorted(pk for pk, job in jobs.items() if _worker_holds(job))
    if busy:
        names = ", ".join(str(pk) for pk in busy)
        raise ErasureBlocked(
            f"A worker is processing import {names} right now, and its file holds this "
            "customer. Erase again when the import has finished (or cancel it).",
            field="sc_id",
        )
    for pk, records in sorted(found.items()):
        job = jobs.get(pk)
        if job is None or job.files_purged_at is not None:
            continue  # deleted or purged meanwhile: nothing left to change
        if job.status in RUNNABLE and job.lease_owner:
            # Its lease has expired, but the worker may still be alive (stalled): taking the
            # lease away makes that worker's next write fail, rolling back the rows it read
            # before the erasure; the sweeper hands the job to a worker that reads the cleaned
            # file from the last checkpoint.
            ImportJob.objects.filter(pk=pk).update(lease_owner="")
        counts["imports"] += 1
        stored = import_dir() / job.stored_name
        if records.unreadable:
            if stored.exists():
                stored.unlink()
                counts["files_deleted"] += 1
        elif stored.exists():
            counts["lines_emptied"] += empty_lines(stored, job, records)
        if records.starts:
            counts["staged_rows_masked"] += ImportRow.objects.filter(
                job_id=pk, line__in=sorted(records.starts)
            ).update(value=None, raw=None)
        if job.rejects_name and (report := import_dir() / job.rejects_name).exists():
            counts["report_rows_removed"] += drop_report_rows(
                report, records.starts, Mentions(customer)
            )
    return counts


def _worker_holds(job: ImportJob) -> bool:
    return (
        job.status not in TERMINAL
        and bool(job.lease_owner)
        and job.lease_expires_at is not None
        and job.lease_expires_at > timezone.now()
    )


def empty_lines(path: Path, job: ImportJob, records: FoundRecords) -> int:
    """Rewrite a stored upload with the customer's lines emptied (their line terminators kept),
    in the file's own encoding, byte for byte elsewhere. Returns the lines emptied."""
    dialect = csvread.sniff(
        path, encoding=job.encoding_requested, delimiter=job.delimiter_requested
    )
    # Bytes that are not valid in the encoding (a line refused for it) are carried over as they
    # are: surrogateescape keeps them through decode and encode (UTF-16 has surrogatepass).
    errors = "surrogatepass" if dialect.encoding == "utf-16" else "surrogateescape"
    emptied: set[int] = set()

    def write(dst: TextIO) -> None:
        with path.open("r", encoding=dialect.encoding, errors=errors, newline="") as src:
            for number, content, end in _physical_lines(src):
                if records.has(number):
                    if content:
                        emptied.add(number)
                    dst.write(end)
                else:
                    dst.write(content + end)

    _replace_atomically(path, write, encoding=dialect.encoding, errors=errors)
    return len(emptied)


def _physical_lines(src: TextIO) -> Iterator[tuple[int, str, str]]:
    """(line number, a piece of the line's text, its terminator or "") for every physical line,
    with universal line endings as ``csvread`` counts them (CRLF, LF, CR). A line longer than
    READ_PIECE comes as several pieces with the same number, the last carrying the terminator."""
    number = 1
    after_cr = False
    for piece in iter(lambda: src.readline(READ_PIECE), ""):
        if after_cr and piece.startswith("\n"):
            # A CRLF cut between two reads: the "\n" ends the line already counted.
            yield number - 1, "", "\n"
            piece = piece[1:]
            if not piece:
                after_cr = False
                continue
        if piece.endswith("\r\n"):
            content, end = piece[:-2], "\r\n"
        elif piece.endswith(("\n", "\r")):
            content, end = piece[:-1], piece[-1]
        else:
            content, end = piece, ""
        yield number, content, end
        after_cr = end == "\r"
        if end:
            number += 1


def drop_report_rows(path: Path, lines: Iterable[int], mentions: Mentions) -> int:
    """Rewrite a rejected-rows report (``line, raw_value, reason_code, message``) without the
    rows of these lines and any row whose raw value mentions the customer. Returns rows
    dropped."""
    wanted = {str(n) for n in lines}
    dropped = 0

    def write(dst: TextIO) -> None:
        nonlocal dropped
        writer = csv.writer(dst)
        with path.open("r", encoding="utf-8", newline="") as src:
            for index, row in enumerate(csv.reader(src)):
                if index and row and (row[0] in wanted or mentions(row[1] if len(row) > 1 else "")):
                    dropped += 1
                    continue
                writer.writerow(row)

    _replace_atomically(path, write, encoding="utf-8", errors="strict")
    return dropped


def _replace_atomically(
    path: Path, write: Callable[[TextIO], None], *, encoding: str, errors: str
) -> None:
    """Write a new version of ``path`` to a temporary file beside it, flush it to disk and
    rename it over the original: a reader sees the old file or the new one, never half."""
    tmp = path.with_name(f"{path.name}.erasing")
    try:
        with tmp.open("w", encoding=encoding, errors=errors, newline="") as dst:
            write(dst)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
