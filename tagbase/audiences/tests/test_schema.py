"""The big keyed tables keep the physical shape the write path is tuned for."""

from __future__ import annotations

import pytest
from django.db import connection

from tagbase.lib.sqlite_tables import is_without_rowid

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("table", ["audiences_membership", "imports_importrow"])
def test_keyed_tables_are_without_rowid_on_sqlite(table):
    if connection.vendor != "sqlite":
        pytest.skip("WITHOUT ROWID is a SQLite table option")
    assert is_without_rowid(connection, table), (
        f"{table} lost WITHOUT ROWID; a migration rebuilt it — re-apply make_without_rowid"
    )


def test_memberships_carry_only_the_key_and_the_customer_index():
    with connection.cursor() as cur:
        indexes = connection.introspection.get_constraints(cur, "audiences_membership")
    plain = sorted(
        tuple(info["columns"])
        for info in indexes.values()
        if info["index"] and not info["primary_key"] and not info["unique"]
    )
    assert plain == [("customer_id", "audience_id")]
