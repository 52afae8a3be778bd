"""The few SQL fragments that differ between SQLite and PostgreSQL for set-based work.

A list of values is passed as ONE parameter: a PostgreSQL array (``= ANY(%s)``), or a JSON
array that SQLite unpacks with ``json_each``. Either way the statement text never holds user
data and its size does not grow with the list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from django.db.backends.base.base import BaseDatabaseWrapper

T = TypeVar("T")


def is_postgres(connection: BaseDatabaseWrapper) -> bool:
    return connection.vendor == "postgresql"


def in_list(connection: BaseDatabaseWrapper, column: str, cast: str = "bigint") -> str:
    """``column IN <the list parameter>`` for this engine. ``column`` and ``cast`` are code
    constants, never user input."""
    if is_postgres(connection):
        return f"{column} = ANY(%s::{cast}[])"
    return f"{column} IN (SELECT value FROM json_each(%s))"


def rows_of(connection: BaseDatabaseWrapper, alias: str, cast: str = "bigint") -> str:
    """A FROM-clause source with one column ``value`` holding each list element."""
    if is_postgres(connection):
        return f"unnest(%s::{cast}[]) AS {alias}(value)"
    return f"json_each(%s) AS {alias}"


def list_param(connection: BaseDatabaseWrapper, values: Sequence[Any]) -> Any:
    if is_postgres(connection):
        return list(values)
    return json.dumps(list(values), ensure_ascii=False)


def chunked(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
