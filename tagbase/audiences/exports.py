"""Exports of an audience's members: CSV by identifier type, ad-platform customer lists, and
scheduled exports to a folder (docs/exports.md).

Three things live here, so that the page, the API, the command and the worker write the same
bytes:

- **Rows.** ``member_rows`` reads the members in keyset batches by customer id (each batch one
  short query on the membership table's primary key), so memory stays constant however large
  the audience and no query holds a snapshot or a server-side cursor open while a client
  downloads slowly. A member added or removed during a long export may or may not be in it.
- **Layouts.** An identifier export is one column of one identifier type (as the existing
  pages and commands always wrote it). An ad-platform export is one row per member who has an
  e-mail or a phone, in the columns the platform's customer-list upload expects, each value
  normalised by the platform's published rule and then SHA-256-hashed (lower-case hex).
- **Bytes.** ``csv_chunks`` escapes every cell that a spreadsheet would run as a formula
  (``tagbase.lib.csvsafe``, the rule of every CSV Tagbase writes) and encodes UTF-8, optionally
  with a byte-order mark for Excel, in blocks of about 64 KiB.

Scheduled exports (``ExportSchedule``) are written only by this module: creating and deleting
schedules, claiming a due run (a conditional UPDATE that exactly one worker wins) and recording
its outcome. The file is written to a temporary name in the target folder and renamed when
complete, so a reader of the folder never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from tagbase.accounts.actors import Actor
from tagbase.audiences import queries
from tagbase.audiences.models import Audience, ExportFrequency, ExportSchedule, Membership
from tagbase.customers.models import Customer
from tagbase.lib.csvsafe import csv_lines
from tagbase.lib.errors import ServiceError
from tagbase.lib.identifiers import ID_TYPE_LABELS, IdType

EXPORT_BATCH = 5_000  # members per keyset query
CHUNK_CHARS = 64 * 1024  # characters per block handed to the HTTP server or the file
BOM = "\ufeff"
MAX_ERROR_LENGTH = 500


class ExportError(ServiceError):
    """An export or a schedule was refused; ``field`` names the input at fault."""

    code = "export_error"


# --- Formats ----------------------------------------------------------------------------------


class Platform(StrEnum):
    GOOGLE = "google"
    META = "meta"


def _plus_e164(phone: str) -> str:
    return phone


def _digits_only(phone: str) -> str:
    # E.164 is '+', then the country code (never 0) and the number: dropping the '+' leaves
    # exactly "digits only, no leading zeros, with the country code".
    return phone[1:]


@dataclass(frozen=True)
class Layout:
    """One ad platform's customer-list file: its two column headers and its phone form."""

    platform: Platform
    label: str
    email_column: str
    phone_column: str
    phone_text: Callable[[str], str]  # the E.164 phone as the platform hashes it


LAYOUTS: dict[Platform, Layout] = {
    # Google Ads Customer Match: headers exactly "Email" and "Phone"; hashed e-mails trimmed
    # and lower-cased, phones in E.164 (with '+') before hashing.
    Platform.GOOGLE: Layout(
        Platform.GOOGLE, "Google Ads Customer Match", "Email", "Phone", _plus_e164
    ),
    # Meta custom audience from a customer list: headers "email" and "phone"; e-mails trimmed
    # and lower-cased, phones as digits only with the country code and no leading zeros.
    Platform.META: Layout(Platform.META, "Meta custom audience", "email", "phone", _digits_only),
}

# Every export format: the five identifier types, then the ad-platform layouts.
EXPORT_FORMATS: dict[str, str] = {
    **{str(t): label for t, label in ID_TYPE_LABELS.items()},
    **{str(p): f"{layout.label} (hashed e-mail and phone)" for p, layout in LAYOUTS.items()},
}


def parse_format(value: str) -> str:
    """The export format named by ``value`` (an identifier type or an ad platform)."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if text not in EXPORT_FORMATS:
        raise ExportError(
            f"Unknown export format {value!r}; expected one of {', '.join(EXPORT_FORMATS)}.",
            field="format",
            code="export_format_invalid",
        )
    return text


def is_personal(export_format: str) -> bool:
    """Whether the export holds personal data: everything but Tagbase IDs. Hashed e-mails and
    phones are personal data too (pseudonymous, not anonymous). Analysts may not export it."""
    return export_format != IdType.SC_ID


# --- Normalising and hashing ------------------------------------------------------------------

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 bytes of ``text``, lower-case hex, no salt."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def email_for_hashing(email: str) -> str:
    """The e-mail as both platforms hash it: surrounding white space trimmed, lower case.
    Stored e-mails are already normalised (``lib.identifiers.normalize_email``), so this is the
    identity on them; it is applied anyway so the rule reads here as the platforms state it."""
    return email.strip().lower()


def phone_for_hashing(layout: Layout, phone: str) -> str | None:
    """The stored E.164 phone in the platform's form, or None when it is not E.164 (the
    customer is then exported without a phone rather than with a hash nothing will match)."""
    phone = phone.strip()
    if not _E164.fullmatch(phone):
        return None
    return layout.phone_text(phone)


def platform_row(layout: Layout, email: str | None, phone: str | None) -> list[str] | None:
    """One member's hashed cells (e-mail, phone), an empty cell for a missing value; None when
    the member has neither (nothing to match on: the member is left out)."""
    email_text = email_for_hashing(email) if email and email.strip() else None
    phone_text = phone_for_hashing(layout, phone) if phone else None
    if email_text is None and phone_text is None:
        return None
    return [
        sha256_hex(email_text) if email_text else "",
        sha256_hex(phone_text) if phone_text else "",
    ]


# --- Rows -------------------------------------------------------------------------------------


def header_for(export_format: str) -> list[str]:
    """The header row: the identifier type's name, or the platform's two column names."""
    if export_format in LAYOUTS:
        layout = LAYOUTS[Platform(export_format)]
        return [layout.email_column, layout.phone_column]
    return [export_format]


def member_rows(
    audience_id: int, export_format: str, *, header: bool = True, batch: int = EXPORT_BATCH
) -> Iterator[list[str]]:
    """The export's rows in customer id order, lazily: the header (when asked), then one row
    per member (identifier exports: per value — a member's every active card; members without
    a value are left out)."""
    if header:
        yield header_for(export_format)
    if export_format in LAYOUTS:
        layout = LAYOUTS[Platform(export_format)]
        for _, email, phone in iter_member_columns(audience_id, ("email", "phone"), batch):
            row = platform_row(layout, email, phone)
            if row is not None:
                yield row
        return
    if export_format in _CUSTOMER_COLUMNS:
        for _, value in iter_member_columns(audience_id, (export_format,), batch):
            if value:
                yield [value]
        return
    # Tagbase IDs need no customer column, cards come from their own table: the audience
    # reader does both (and takes (audience, type) so that the page's tests can shrink its
    # batch).
    yield from ([value] for value in queries.iter_member_identifiers(audience_id, export_format))


# Customer columns an export reads; names from this code only, never from input.
_CUSTOMER_COLUMNS = ("external_id", "phone", "email")


def iter_member_columns(
    audience_id: int, columns: tuple[str, ...], batch: int = EXPORT_BATCH
) -> Iterator[tuple[Any, ...]]:
    """(customer id, *columns) of each member in customer id order, a keyset batch per query.

    The customer side carries the keyset bound too (``c.sc_id > after``, redundant with the
    join): without it PostgreSQL merge-joins every batch against the customer primary key from
    its start, so batch k reads k batches of customers and the export turns quadratic (a 1M
    Google export took 24.4 s that way and 9.8 s with the bound; bench/export_bench.py.
    ``audiences.queries.iter_member_identifiers`` reads these columns through the ORM's join
    and has that plan on PostgreSQL: exports do not use it for them.)"""
    if not set(columns) <= set(_CUSTOMER_COLUMNS):
        raise ValueError(f"not an exported customer column: {columns!r}")
    picked = ", ".join(f"c.{column}" for column in columns)
    sql = (
        f"SELECT m.customer_id, {picked} FROM {Membership._meta.db_table} m "
        f"JOIN {Customer._meta.db_table} c ON c.sc_id = m.customer_id "
        "WHERE m.audience_id = %s AND m.customer_id > %s AND c.sc_id > %s "
        "ORDER BY m.customer_id LIMIT %s"
    )
    after = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [audience_id, after, after, batch])
            rows = cursor.fetchall()
        if not rows:
            return
        after = rows[-1][0]
        yield from rows
        if len(rows) < batch:
            return


class Counted:
    """Wraps an iterator of rows and counts them, so the caller can report how many it wrote
    (``rows`` excludes the header when ``skip`` is 1)."""

    def __init__(self, rows: Iterable[list[str]], *, skip: int = 0) -> None:
        self._rows = iter(rows)
        self._skip = skip
        self.rows = 0

    def __iter__(self) -> Iterator[list[str]]:
        for row in self._rows:
            if self._skip:
                self._skip -= 1
            else:
                self.rows += 1
            yield row


def csv_text(
    rows: Iterable[Iterable[object]], *, bom: bool = False, chunk_chars: int = CHUNK_CHARS
) -> Iterator[str]:
    """The rows as formula-escaped CSV (comma, CRLF) in blocks of about ``chunk_chars``
    characters: few writes to the socket, file or terminal, one block in memory."""
    parts: list[str] = [BOM] if bom else []
    size = len(parts)
    for line in csv_lines(rows):
        parts.append(line)
        size += len(line)
        if size >= chunk_chars:
            yield "".join(parts)
            parts.clear()
            size = 0
    if parts:
        yield "".join(parts)


def csv_chunks(
    rows: Iterable[Iterable[object]], *, bom: bool = False, chunk_chars: int = CHUNK_CHARS
) -> Iterator[bytes]:
    """``csv_text`` encoded as UTF-8: what a download or a file holds."""
    return (text.encode("utf-8") for text in csv_text(rows, bom=bom, chunk_chars=chunk_chars))


def download_name(audience: Audience, export_format: str) -> str:
    return f"audience-{audience.pk}-{export_format}.csv"


# --- Files ------------------------------------------------------------------------------------


def export_file_name(audience: Audience, export_format: str, when: datetime) -> str:
    """``<audience name slug>-<id>_<format>_<UTC time>.csv``: the name tells which audience
    (the id keeps it unique across renames; the slug is for people) and when."""
    slug = slugify(audience.name, allow_unicode=True)[:60].strip("-_") or "audience"
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{slug}-{audience.pk}_{export_format}_{stamp}.csv"


def write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to a temporary file beside ``path``, flush it to disk, then rename it
    to ``path``: the file appears complete or not at all. The temporary file is removed when
    anything fails. Created readable by the owner only (the content is personal data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, renamed or removed
        dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False
    )
    try:
        with handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (POSIX: the directory entry is the directory's data)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _free_path(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name`` with ``-2``, ``-3``… before ``.csv`` if taken: an export
    never overwrites an earlier file."""
    path = folder / name
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{name.removesuffix('.csv')}-{n}.csv"
    return path


def write_export_file(
    audience: Audience, export_format: str, folder: Path, *, bom: bool = False, when: datetime
) -> tuple[Path, int]:
    """Export the audience to a new file in ``folder`` (named by ``export_file_name``),
    written atomically; returns its path and the number of rows below the header."""
    counted = Counted(member_rows(audience.pk, export_format), skip=1)
    path = _free_path(folder, export_file_name(audience, export_format, when))
    write_atomically(path, csv_chunks(counted, bom=bom))
    return path, counted.rows


# --- Schedules --------------------------------------------------------------------------------

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def next_run_after(frequency: str, at_time: time, weekday: int | None, after: datetime) -> datetime:
    """The first moment strictly after ``after`` that is ``at_time`` in ``TIME_ZONE`` on a day
    the schedule runs (every day, or ``weekday``: 0 = Monday), as an aware UTC datetime.
    A local time that a daylight-saving change skips is taken as its offset before the change
    (``zoneinfo``'s fold 0); one that happens twice runs once, at the first."""
    zone = timezone.get_default_timezone()
    start = after.astimezone(zone).date()
    for offset in range(9):  # a weekly slot is at most 7 days after ``after``'s local day
        day: date = start + timedelta(days=offset)
        if frequency == ExportFrequency.WEEKLY and day.weekday() != weekday:
            continue
        candidate = datetime.combine(day, at_time, tzinfo=zone)
        if candidate > after:
            return candidate.astimezone(UTC)
    raise AssertionError("no slot within 9 days")  # unreachable: a week has every weekday


def create_export_schedule(
    audience: Audience,
    *,
    export_format: str,
    frequency: str,
    at_time: time,
    weekday: int | None = None,
    bom: bool = False,
    actor: Actor,
    now: datetime | None = None,
) -> ExportSchedule:
    """Schedule a recurring export of ``audience``; its first run is the next slot after now.
    Not idempotent: each call adds a schedule."""
    export_format = parse_format(export_format)
    if frequency not in ExportFrequency.values:
        raise ExportError(
            f"Unknown frequency {frequency!r}; expected daily or weekly.", field="frequency"
        )
    if frequency == ExportFrequency.WEEKLY and (weekday is None or not 0 <= weekday <= 6):
        raise ExportError("A weekly export needs a weekday (Monday to Sunday).", field="weekday")
    if frequency == ExportFrequency.DAILY:
        weekday = None
    at_time = at_time.replace(second=0, microsecond=0, tzinfo=None)
    return ExportSchedule.objects.create(
        audience=audience,
        export_format=export_format,
        frequency=frequency,
        weekday=weekday,
        at_time=at_time,
        bom=bom,
        created_by=actor.user,
        created_by_label=actor.label[:200],
        next_run_at=next_run_after(frequency, at_time, weekday, now or timezone.now()),
    )


def delete_export_schedule(schedule_id: int, *, actor: Actor) -> ExportSchedule:
    """Delete a schedule (files it wrote stay). Refused when there is no such schedule."""
    schedule = ExportSchedule.objects.select_related("audience").filter(pk=schedule_id).first()
    if schedule is None:
        raise ExportError(
            f"Export schedule {schedule_id} does not exist.",
            field="schedule",
            code="export_schedule_not_found",
        )
    schedule.delete()
    return schedule


def describe_schedule(schedule: ExportSchedule) -> str:
    """``daily at 03:00`` / ``weekly on Monday at 03:00`` (local time, TIME_ZONE)."""
    at = schedule.at_time.strftime("%H:%M")
    if schedule.frequency == ExportFrequency.WEEKLY and schedule.weekday is not None:
        return f"weekly on {WEEKDAYS[schedule.weekday].capitalize()} at {at}"
    return f"daily at {at}"


def claim_due_schedules(now: datetime | None = None, limit: int = 20) -> list[int]:
    """Schedules whose run is due, each claimed by moving its ``next_run_at`` to its next slot
    with a conditional UPDATE (``WHERE next_run_at = <the due slot>``), so that of several
    workers sweeping at once exactly one runs it. Slots missed while no worker ran collapse
    into this one run: the next slot is the first after ``now``."""
    now = now or timezone.now()
    due = list(
        ExportSchedule.objects.filter(next_run_at__lte=now)
        .order_by("next_run_at", "pk")
        .values_list("pk", "next_run_at", "frequency", "at_time", "weekday")[:limit]
    )
    claimed = []
    for pk, slot, frequency, at_time, weekday in due:
        following = next_run_after(frequency, at_time, weekday, max(now, slot))
        with transaction.atomic():
            won = ExportSchedule.objects.filter(pk=pk, next_run_at=slot).update(
                next_run_at=following
            )
        if won:
            claimed.append(pk)
    return claimed


def run_scheduled_export(
    schedule_id: int, *, now: datetime | None = None, folder: Path | None = None
) -> ExportSchedule | None:
    """Write the schedule's file now and record the outcome on the schedule (file and rows,
    or the error). None when the schedule was deleted meanwhile. A failed run is not retried:
    the next slot runs as planned."""
    schedule = ExportSchedule.objects.select_related("audience").filter(pk=schedule_id).first()
    if schedule is None:
        return None
    when = now or timezone.now()
    target = folder or Path(settings.TAGBASE_EXPORT_DIR)
    try:
        path, rows = write_export_file(
            schedule.audience, schedule.export_format, target, bom=schedule.bom, when=when
        )
    except Exception as exc:  # recorded for the operator; the worker carries on
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
        ExportSchedule.objects.filter(pk=schedule.pk).update(last_run_at=when, last_error=error)
    else:
        ExportSchedule.objects.filter(pk=schedule.pk).update(
            last_run_at=when, last_file=str(path)[:500], last_rows=rows, last_error=""
        )
    schedule.refresh_from_db()
    return schedule
