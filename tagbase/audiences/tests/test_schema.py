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


def test_memberships_carry_only_the_key_the_customer_index_and_the_partial_expiry_index():
    with connection.cursor() as cur:
        indexes = connection.introspection.get_constraints(cur, "audiences_membership")
    plain = sorted(
        tuple(info["columns"])
        for info in indexes.values()
        if info["index"] and not info["primary_key"] and not info["unique"]
    )
    assert plain == [("audience_id", "expires_at"), ("customer_id", "audience_id")]
    # Partial: only memberships with an expiry have an entry, so adds without one pay nothing.
    assert "WHERE" in _index_sql("membership_expiry_idx").upper()


def _index_sql(name: str) -> str:
    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            cur.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = %s", [name])
        else:
            cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        return str(cur.fetchone()[0])
