"""Every write to customers, cards, receipts, events and receipt metrics.

Loads are set-based and streamed: rows are parsed and checked one by one (``customers.rows``),
then written a batch at a time (``BATCH_SIZE`` rows) with a few bulk statements per batch, each
batch in its own transaction; there is no query per row, and memory does not grow with the
input. A bad row is skipped and reported with its line, column and a reason code; a bad input
as a whole (unknown columns, unreadable file) raises ``FileRejected`` before anything is
written. Receipt metrics (``CustomerStats``) are recomputed for the customers a batch touched,
in the same transaction as the receipts, so they never disagree with them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from django.db import transaction
from django.utils import timezone

from tagbase.accounts import audit
from tagbase.accounts.actors import Actor
from tagbase.customers import bulk
from tagbase.customers.csvfiles import CsvFile, open_csv
from tagbase.customers.erasure import ErasedCustomer, ErasureError, erasers
from tagbase.customers.models import Card, Customer, CustomerStats, Erasure, Event, Receipt
from tagbase.customers.queries import RESOLVE_CHUNK, match_identifiers
from tagbase.customers.reports import FileRejected, LoadReport, RowError, RowProblems
from tagbase.customers.rows import (
    CustomerRow,
    RefRow,
    columns_for,
    parse_customer_row,
    parse_event_row,
    parse_receipt_row,
)
from tagbase.customers.signals import (
    EventFact,
    ReceiptFact,
    customer_erased,
    customers_registered,
    events_recorded,
    receipts_loaded,
    send_on_commit,
)
from tagbase.lib.identifiers import IdType
from tagbase.lib.sqlbits import chunked

__all__ = [
    "BATCH_SIZE",
    "CustomerNotFound",
    "ErasureResult",
    "FileRejected",
    "LoadReport",
    "RowError",
    "erase_customer",
    "load_customers_csv",
    "load_receipts",
    "load_receipts_csv",
    "record_events",
    "refresh_customer_stats",
    "upsert_customers",
]

log = logging.getLogger("tagbase.customers")
BATCH_SIZE = 2_000
T = TypeVar("T")
Numbered = Iterable[tuple[int, Any]]
# progress(rows read, bytes read, bytes in the file)
Progress = Callable[[int, int, int], None]


# --- public use cases -------------------------------------------------------------------------


def upsert_customers(rows: Iterable[Mapping[str, Any]], *, actor: Actor) -> LoadReport:
    """Create or update customers from rows (columns: see ``rows.CUSTOMER_COLUMNS`` and
    ``attr.<name>``).

    A row with an ``external_id`` updates the customer holding it (writing only the columns
    the row has; an empty value clears that field) or creates one; a row without creates a new
    customer. Phones and e-mails are normalised; an invalid one is kept raw with its normalised
    column empty (the profile warns), not refused. ``card`` attaches a card (refused with
    ``card_taken`` if another customer holds it). ``attr.<name>`` merges into ``attributes``
    (an empty value removes the key). Idempotent: the same rows again change nothing but
    ``updated_at`` (rows without external_id create customers again). Unknown columns raise
    FileRejected — before any write for a list, before the batch holding them otherwise.
    """
    return _run("customers", _numbered(rows, "customers"), _customer_batch, actor)


def load_receipts(rows: Iterable[Mapping[str, Any]], *, actor: Actor) -> LoadReport:
    """Create or update receipts (columns external_id or sc_id, number, date, amount, items,
    store), keyed by (customer, number), and refresh the metrics of the customers touched.
    Idempotent: loading the same rows again updates them to the same values."""
    return _run("receipts", _numbered(rows, "receipts"), _receipt_batch, actor)


def record_events(rows: Iterable[Mapping[str, Any]], *, actor: Actor) -> LoadReport:
    """Append events (columns external_id or sc_id, name, occurred_at, payload). Not
    idempotent: events are a log, the same rows twice are two events each."""
    return _run("events", _numbered(rows, "events"), _event_batch, actor)


def load_customers_csv(
    path: str | Path, *, actor: Actor, progress: Progress | None = None
) -> LoadReport:
    """``upsert_customers`` over a CSV file, streamed (see ``customers.csvfiles``); line numbers
    in the report are the file's. Raises FileRejected when the file is refused as a whole."""
    return _run_csv(path, "customers", _customer_batch, actor, progress)


def load_receipts_csv(
    path: str | Path, *, actor: Actor, progress: Progress | None = None
) -> LoadReport:
    """``load_receipts`` over a CSV file, streamed, as ``load_customers_csv``."""
    return _run_csv(path, "receipts", _receipt_batch, actor, progress)


def refresh_customer_stats(customer_ids: Iterable[int] | None = None) -> int:
    """Recompute ``CustomerStats`` from receipts for these customers (every customer for None),
    set-based: one upsert per chunk of ids, and customers left without receipts lose their row.
    Idempotent. Returns the number of stats rows written."""
    with transaction.atomic():
        if customer_ids is None:
            return bulk.upsert_stats(None)
        ids = sorted({int(i) for i in customer_ids})
        return sum(bulk.upsert_stats(part) for part in chunked(ids, RESOLVE_CHUNK))


# --- the load loop ----------------------------------------------------------------------------


BatchWriter = Callable[[list[tuple[int, Any]], LoadReport], None]


def _run(kind: str, numbered: Numbered, write: BatchWriter, actor: Actor) -> LoadReport:
    report = LoadReport()
    _load(numbered, write, report)
    _finish(kind, actor, report)
    return report


def _run_csv(
    path: str | Path, kind: str, write: BatchWriter, actor: Actor, progress: Progress | None
) -> LoadReport:
    csv_file = open_csv(path)
    columns_for(csv_file.header, kind)  # unknown or missing columns refuse the file now
    report = LoadReport()
    _load(_csv_rows(csv_file, report, progress), write, report)
    if progress is not None:
        progress(report.rows, csv_file.size, csv_file.size)
    _finish(kind, actor, report)
    return report


def _numbered(rows: Iterable[Mapping[str, Any]], kind: str) -> Numbered:
    """Rows numbered from 1; a list's columns are all checked before the first write."""
    if isinstance(rows, Sequence):
        for row in rows:
            if isinstance(row, Mapping):
                columns_for(row.keys(), kind)
    return enumerate(rows, start=1)


def _csv_rows(csv_file: CsvFile, report: LoadReport, progress: Progress | None) -> Numbered:
    on_bytes = None
    if progress is not None:
        on_bytes = lambda done: progress(report.rows, done, csv_file.size)  # noqa: E731
    for record in csv_file.records(on_bytes):
        if record.values is None:
            report.rows += 1
            fields = f"{record.found} field" + ("" if record.found == 1 else "s")
            message = f"The row has {fields}; the header has {len(csv_file.header)}."
            report.fail(record.line, [("row", "column_count", message)])
            continue
        yield record.line, record.values


def _load(numbered: Numbered, write: BatchWriter, report: LoadReport) -> None:
    batch: list[tuple[int, Any]] = []
    for line, row in numbered:
        report.rows += 1
        if not isinstance(row, Mapping):
            report.fail(line, [("row", "row_invalid", "A row must be an object of columns.")])
            continue
        batch.append((line, row))
        if len(batch) >= BATCH_SIZE:
            write(batch, report)
            batch = []
    if batch:
        write(batch, report)


def _parsed(
    batch: list[tuple[int, Any]], kind: str, parse: Callable[..., T], report: LoadReport
) -> list[T]:
    out: list[T] = []
    for line, row in batch:
        columns = columns_for(row.keys(), kind)
        try:
            out.append(parse(line, row, columns))
        except RowProblems as exc:
            report.fail(line, exc.problems)
    return out


def _unique_runs(items: list[T], key: Callable[[T], Hashable | None]) -> Iterator[list[T]]:
    """Consecutive runs in which no key repeats (None never clashes): an upsert statement may
    not touch one row twice, and splitting keeps the input order's last-wins meaning."""
    run: list[T] = []
    seen: set[Hashable] = set()
    for item in items:
        k = key(item)
        if k is not None and k in seen:
            yield run
            run, seen = [], set()
        if k is not None:
            seen.add(k)
        run.append(item)
    if run:
        yield run


def _finish(kind: str, actor: Actor, report: LoadReport) -> None:
    # Rows refused when resolving customers are found after the batch's parse errors; list
    # them all in line order (a stable sort keeps a row's problems in column order).
    report.errors.sort(key=lambda error: error.line)
    # DEBUG: the caller shows the report; at INFO the CLI would print this under its summary.
    log.debug(
        "%s loaded by %s: rows=%d created=%d updated=%d failed=%d",
        kind, actor.label, report.rows, report.created, report.updated, report.failed,
    )  # fmt: skip


# --- customers --------------------------------------------------------------------------------


def _customer_batch(batch: list[tuple[int, Any]], report: LoadReport) -> None:
    parsed = _parsed(batch, "customers", parse_customer_row, report)
    for run in _unique_runs(parsed, key=lambda r: r.external_id):
        with transaction.atomic():
            _write_customers(run, report)


def _write_customers(rows: list[CustomerRow], report: LoadReport) -> None:
    existing = _existing_customers(
        [r.external_id for r in rows if r.external_id],
        with_attributes=any(r.attributes for r in rows),
    )
    owners = dict(
        Card.objects.filter(number__in=[r.card for r in rows if r.card]).values_list(
            "number", "customer_id"
        )
    )
    accepted = _without_taken_cards(rows, existing, owners, report)
    saved = _save_customers(accepted, existing)
    Card.objects.bulk_create(
        [Card(number=r.card, customer_id=pk) for r, pk in saved if r.card and r.card not in owners],
        ignore_conflicts=True,  # a card taken by a concurrent load in the meantime stays there
    )
    updated = sum(1 for r, _ in saved if r.external_id in existing)
    report.updated += updated
    report.created += len(saved) - updated
    created = [pk for r, pk in saved if r.external_id not in existing]
    if created:
        send_on_commit(customers_registered, customer_ids=created)


def _existing_customers(
    external_ids: list[str], *, with_attributes: bool
) -> dict[str, tuple[int, dict[str, Any]]]:
    """external_id -> (sc_id, attributes). When attributes are to be merged they are read and
    the rows locked, so that a concurrent merge is not lost; otherwise nothing is read-modified
    and no lock is needed."""
    fields = ["external_id", "sc_id", *(["attributes"] if with_attributes else [])]
    qs = Customer.objects.filter(external_id__in=external_ids).order_by("sc_id")
    if with_attributes:
        qs = qs.select_for_update()
    return {
        row[0]: (row[1], (row[2] or {}) if with_attributes else {})
        for row in qs.values_list(*fields)
    }


def _without_taken_cards(
    rows: list[CustomerRow],
    existing: Mapping[str, tuple[int, Any]],
    owners: Mapping[str, int],
    report: LoadReport,
) -> list[CustomerRow]:
    accepted: list[CustomerRow] = []
    claimed: dict[str, object] = {}  # card -> the row (customer) that takes it in this run
    for row in rows:
        if row.card:
            known = existing.get(row.external_id) if row.external_id else None
            me = known[0] if known else None
            holder: object = row.external_id or id(row)
            owner = owners.get(row.card)
            if (owner is not None and owner != me) or claimed.get(row.card, holder) != holder:
                report.fail(
                    row.line, [("card", "card_taken", "This card belongs to another customer.")]
                )
                continue
            claimed[row.card] = holder
        accepted.append(row)
    return accepted


def _save_customers(
    rows: list[CustomerRow], existing: Mapping[str, tuple[int, dict[str, Any]]]
) -> list[tuple[CustomerRow, int]]:
    """One bulk statement per shape of row (which columns it has); returns (row, sc_id)."""
    now = timezone.now()
    shapes: dict[tuple[bool, tuple[str, ...], bool], list[CustomerRow]] = {}
    for row in rows:
        shape = (row.external_id is not None, tuple(sorted(row.values)), bool(row.attributes))
        shapes.setdefault(shape, []).append(row)
    saved: list[tuple[CustomerRow, int]] = []
    for (keyed, fields, has_attributes), members in shapes.items():
        objs = [_customer(r, existing, now) for r in members]
        if keyed:
            update = [*fields, "updated_at", *(["attributes"] if has_attributes else [])]
            Customer.objects.bulk_create(
                objs, update_conflicts=True, unique_fields=["external_id"], update_fields=update
            )
        else:
            Customer.objects.bulk_create(objs)
        saved.extend((r, obj.pk) for r, obj in zip(members, objs, strict=True))
    return saved


def _customer(
    row: CustomerRow, existing: Mapping[str, tuple[int, dict[str, Any]]], now: Any
) -> Customer:
    known = existing.get(row.external_id) if row.external_id else None
    attributes = dict(known[1]) if known else {}
    for name, value in row.attributes.items():
        if value is None:
            attributes.pop(name, None)
        else:
            attributes[name] = value
    return Customer(
        external_id=row.external_id,
        attributes=attributes,
        created_at=now,
        updated_at=now,
        **row.values,
    )


# --- receipts and events ----------------------------------------------------------------------


def _resolve_refs(rows: list[RefRow], report: LoadReport) -> list[tuple[RefRow, int]]:
    """(row, customer id) for rows naming an existing customer; the rest fail."""
    ids: dict[tuple[IdType, str], int] = {}
    for kind in (IdType.SC_ID, IdType.EXTERNAL_ID):
        values = sorted({r.ref for r in rows if r.ref_type == kind})
        if values:
            for value, owners in match_identifiers(kind, values).items():
                ids[(kind, value)] = owners[0]  # both columns are unique
    resolved: list[tuple[RefRow, int]] = []
    for row in rows:
        customer_id = ids.get((row.ref_type, row.ref))
        if customer_id is None:
            message = f"No customer has this {row.ref_type}."
            report.fail(row.line, [(str(row.ref_type), "customer_not_found", message)])
        else:
            resolved.append((row, customer_id))
    return resolved


def _receipt_batch(batch: list[tuple[int, Any]], report: LoadReport) -> None:
    parsed = _parsed(batch, "receipts", parse_receipt_row, report)
    with transaction.atomic():
        resolved = _resolve_refs(parsed, report)
        for run in _unique_runs(resolved, key=lambda pair: (pair[1], pair[0].values["number"])):
            _write_receipts(run, report)
        touched = sorted({customer_id for _, customer_id in resolved})
        if touched:
            # Loading only adds or changes receipts, so no touched customer is left without one.
            bulk.upsert_stats(touched, drop_empty=False)


def _write_receipts(rows: list[tuple[RefRow, int]], report: LoadReport) -> None:
    existing = bulk.existing_receipts([(cid, row.values["number"]) for row, cid in rows])
    shapes: dict[tuple[str, ...], list[Receipt]] = {}
    for row, customer_id in rows:
        shapes.setdefault(tuple(sorted(row.values)), []).append(
            Receipt(customer_id=customer_id, **row.values)
        )
    for fields, objs in shapes.items():
        Receipt.objects.bulk_create(
            objs,
            update_conflicts=True,
            unique_fields=["customer", "number"],
            update_fields=[f for f in fields if f != "number"],
        )
    updated = sum(1 for row, cid in rows if (cid, row.values["number"]) in existing)
    report.updated += updated
    report.created += len(rows) - updated
    new = [
        ReceiptFact(cid, row.values["number"], row.values.get("amount"), row.values.get("date"))
        for row, cid in rows
        if (cid, row.values["number"]) not in existing
    ]
    if new:
        send_on_commit(receipts_loaded, receipts=new)


def _event_batch(batch: list[tuple[int, Any]], report: LoadReport) -> None:
    parsed = _parsed(batch, "events", parse_event_row, report)
    with transaction.atomic():
        resolved = _resolve_refs(parsed, report)
        now = timezone.now()
        events = Event.objects.bulk_create(
            [
                Event(customer_id=customer_id, **{"occurred_at": now, **row.values})
                for row, customer_id in resolved
            ]
        )
        if events:
            facts = [EventFact(e.customer_id, e.name, e.payload, e.occurred_at) for e in events]
            send_on_commit(events_recorded, events=facts)
    report.created += len(resolved)


# --- Erasure (docs/privacy.md) ----------------------------------------------------------------


class CustomerNotFound(ErasureError):
    code = "customer_not_found"


class ErasureIdempotencyConflict(ErasureError):
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class ErasureResult:
    """What ``erase_customer`` did: the erasure record, and whether the customer had been
    erased before this call (then nothing was done now)."""

    erasure: Erasure
    already_erased: bool


def erase_customer(sc_id: int, *, actor: Actor, idempotency_key: str = "") -> ErasureResult:
    """Erase a customer's personal data everywhere Tagbase holds it (docs/privacy.md).

    Every app that holds data about customers has registered an eraser
    (``customers.erasure``): audiences remove the customer from every audience (one recorded
    ``erasure`` operation per audience), imports empty their lines in stored uploads and mask
    their staged rows and rejected-rows report rows, campaigns delete their trail and mask
    their outbox messages. Then the customer's cards, receipts, events, receipt metrics and
    the customer row itself are deleted, and an ``Erasure`` record is written: the ``sc_id``,
    when, who, and counts — no personal data. All of it in one transaction, so the database
    is either untouched or fully erased (stored files are changed inside it, before the commit:
    a failure after them leaves files already cleaned, and erasing again finishes the job).

    The row is deleted rather than kept blanked: a blank row would still be a customer to every
    list, segment, import and campaign, each of which would have to learn to skip it. The
    ``sc_id`` is never given to anyone else, so history rows that name it (operations, the
    removal ledger) still mean this customer, and the ``Erasure`` record says what became of it.

    Idempotent: erasing an erased customer changes nothing and returns the first record with
    ``already_erased``. With an ``idempotency_key`` (per actor), a repeat returns the first
    answer as it was; the same key for another customer raises ErasureIdempotencyConflict. An
    ``sc_id`` that never was a customer raises CustomerNotFound; an eraser that cannot proceed
    now raises ``ErasureBlocked`` (nothing changed)."""
    key = idempotency_key[:200]
    if key:
        first = Erasure.objects.filter(actor_label=actor.label[:150], idempotency_key=key).first()
        if first is not None:
            if first.sc_id != sc_id:
                raise ErasureIdempotencyConflict(
                    "This Idempotency-Key was already used to erase another customer.",
                    field="Idempotency-Key",
                )
            return ErasureResult(first, already_erased=False)
    customer = Customer.objects.filter(pk=sc_id).first()
    if customer is None:
        return _erased_before(sc_id)
    snapshot = ErasedCustomer.of(customer)
    prepared = _prepare(snapshot)  # slow reads (stored files), outside the transaction
    with bulk.secure_delete(), transaction.atomic():
        record = _erase_locked(sc_id, snapshot, prepared, actor, key)
    if record is None:  # erased by a concurrent call meanwhile
        return _erased_before(sc_id)
    log.info("customer %d erased by %s", sc_id, actor.label)
    return ErasureResult(record, already_erased=False)


def _erase_locked(
    sc_id: int, snapshot: ErasedCustomer, prepared: dict[str, Any], actor: Actor, key: str
) -> Erasure | None:
    """The erasure's transaction: lock the customer's row, let every eraser work, delete the
    customer, record it. None when the customer is gone already."""
    locked = Customer.objects.select_for_update().filter(pk=sc_id).first()
    if locked is None:
        return None
    current = ErasedCustomer.of(locked)
    if current != snapshot:  # changed since it was read: look again, now under the lock
        prepared = _prepare(current)
    counts = {e.app: e.erase(current, prepared.get(e.app), actor=actor) for e in erasers()}
    counts["customers"] = _delete_customer(sc_id)
    record = Erasure.objects.create(
        sc_id=sc_id,
        erased_at=timezone.now(),
        actor=actor.user,
        actor_label=actor.label[:150],
        counts=counts,
        idempotency_key=key,
    )
    # The audit log holds no customer ids: its entry names the erasure record.
    audit.record(actor, "customer.erased", "erasure", record.pk, _audit_summary(counts))
    send_on_commit(
        customer_erased, sc_id=sc_id, erased_at=record.erased_at, actor_label=record.actor_label
    )
    transaction.on_commit(bulk.checkpoint_wal)
    return record


def _audit_summary(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    return {
        "audiences": counts.get("audiences", {}).get("memberships_removed", 0),
        "import_lines": counts.get("imports", {}).get("lines_emptied", 0),
        "messages": counts.get("campaigns", {}).get("messages_masked", 0),
    }


def _prepare(customer: ErasedCustomer) -> dict[str, Any]:
    return {e.app: e.prepare(customer) for e in erasers() if e.prepare is not None}


def _erased_before(sc_id: int) -> ErasureResult:
    record = Erasure.objects.filter(sc_id=sc_id).first()
    if record is None:
        raise CustomerNotFound(f"Customer {sc_id} does not exist.", field="sc_id")
    return ErasureResult(record, already_erased=True)


def _delete_customer(sc_id: int) -> dict[str, int]:
    """Delete what customers holds about the customer, then the row. The row goes with a plain
    DELETE, not Django's cascading delete: every other app erases its own rows through its
    eraser, and a row one of them left behind must fail the erasure (its foreign key), not be
    deleted or unlinked silently."""
    counts = {
        "cards_deleted": Card.objects.filter(customer_id=sc_id).delete()[0],
        "receipts_deleted": Receipt.objects.filter(customer_id=sc_id).delete()[0],
        "events_deleted": Event.objects.filter(customer_id=sc_id).delete()[0],
        "stats_deleted": CustomerStats.objects.filter(customer_id=sc_id).delete()[0],
    }
    counts["customer_deleted"] = Customer.objects.filter(pk=sc_id)._raw_delete(Customer.objects.db)
    return counts
