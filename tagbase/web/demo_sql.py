"""Fast bulk inserts for the demo loader: the one place where its SQL differs by engine.

The ORM's ``bulk_create`` spends ~90% of its time building SQL in Python (measured: 12 of 15 s
for 10,000 customers with their rows), so the demo writes plain rows instead: PostgreSQL
``COPY``, SQLite ``executemany`` of one prepared statement. Values are adapted the way the ORM
stores them (SQLite: naive UTC datetimes as text, JSON as text), so the ORM reads them back
unchanged. Customer ids are reserved up front so the rows that refer to them need no
round trip: from the sequence on PostgreSQL, above the AUTOINCREMENT high-water mark on SQLite
(inside the caller's transaction, which holds SQLite's single write lock).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from django.db import connection, models

from tagbase.lib.sqlbits import is_postgres


def reserve_ids(model: type[models.Model], count: int) -> list[int]:
    """``count`` new primary keys for ``model`` that no other writer will use. Call inside
    a transaction."""
    table = model._meta.db_table
    pk = model._meta.pk.column  # type: ignore[union-attr]
    with connection.cursor() as cur:
        if is_postgres(connection):
            cur.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, pk, count],
            )
            return [int(r[0]) for r in cur.fetchall()]
        # AUTOINCREMENT never reuses an id, not even one of a deleted row: start above both
        # the recorded high-water mark and the largest id present.
        cur.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        row = cur.fetchone()
        cur.execute(f'SELECT MAX("{pk}") FROM "{table}"')
        top = max(int(row[0]) if row else 0, cur.fetchone()[0] or 0)
    return list(range(top + 1, top + 1 + count))


def insert_rows(model: type[models.Model], rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` (dicts keyed by field attname; fields missing from the first row take
    their default). Returns the number of rows written."""
    if not rows:
        return 0
    fields = [f for f in model._meta.concrete_fields if f.attname in rows[0] or f.has_default()]
    defaults = {f.attname: f.get_default() for f in fields if f.attname not in rows[0]}
    get = operator.itemgetter(*(f.attname for f in fields))
    # Only the columns whose Python value differs from what the driver takes are adapted.
    adapt = [(i, fn) for i, f in enumerate(fields) if (fn := _adapter(f)) is not None]

    def values(row: Mapping[str, Any]) -> list[Any]:
        out = list(get({**defaults, **row} if defaults else row))
        for i, fn in adapt:
            out[i] = fn(out[i])
        return out

    table = model._meta.db_table
    columns = ", ".join(f'"{f.column}"' for f in fields)
    with connection.cursor() as cur:
        if is_postgres(connection):
            with cur.cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(values(row))
        else:
            marks = ", ".join(["%s"] * len(fields))
            sql = f'INSERT INTO "{table}" ({columns}) VALUES ({marks})'
            cur.executemany(sql, [values(row) for row in rows])
    return len(rows)


def _adapter(field: models.Field[Any, Any]) -> Callable[[Any], Any] | None:
    if isinstance(field, models.JSONField):
        return _json
    if is_postgres(connection):
        return None
    if isinstance(field, models.DateTimeField):
        return _sqlite_datetime
    if isinstance(field, models.DateField):
        return _iso
    if isinstance(field, models.DecimalField):
        return _text
    return None


def _json(value: Any) -> str:
    if not value and isinstance(value, dict):
        return "{}"  # most event payloads; spares a json.dumps call per row
    return json.dumps(value, ensure_ascii=False)


def _text(value: Any) -> Any:
    return None if value is None else str(value)


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _sqlite_datetime(value: datetime | None) -> str | None:
    """As Django's SQLite backend stores an aware datetime: naive UTC in ``str()`` format,
    i.e. ISO 8601 with a space, microseconds only when there are any."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ")[:-6]  # drop "+00:00": ~5x cheaper than replace(tzinfo=None)


def analyze(*tables: type[models.Model]) -> None:
    """Refresh the planner's statistics after a bulk load, so the queries that follow (the
    audience selections, the membership inserts) are planned for the real row counts."""
    with connection.cursor() as cur:
        for model in tables:
            cur.execute(f'ANALYZE "{model._meta.db_table}"')
