"""Rebuild a SQLite table as WITHOUT ROWID (Django cannot declare it).

A keyed table of millions of rows (memberships, staged import rows) is then one b-tree
ordered by its primary key instead of a rowid table plus a separate key index: inserts in key
order append, and lookups by key read one tree. The rebuild keeps columns, rows and indexes.
"""

from __future__ import annotations

from typing import Any


def make_without_rowid(schema_editor: Any, table: str) -> None:
    connection = schema_editor.connection
    if connection.vendor != "sqlite" or is_without_rowid(connection, table):
        return
    with connection.cursor() as cur:
        cur.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [table])
        (create_sql,) = cur.fetchone()
        cur.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s "
            "AND sql IS NOT NULL",
            [table],
        )
        index_sql = [row[0] for row in cur.fetchall()]
        temp = f"{table}__rowid_old"
        cur.execute(f'ALTER TABLE "{table}" RENAME TO "{temp}"')
        cur.execute(create_sql.rstrip().rstrip(";") + " WITHOUT ROWID")
        cur.execute(f'INSERT INTO "{table}" SELECT * FROM "{temp}"')
        cur.execute(f'DROP TABLE "{temp}"')
        for sql in index_sql:
            cur.execute(sql)


def is_without_rowid(connection: Any, table: str) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [table])
        row = cur.fetchone()
    return bool(row) and "WITHOUT ROWID" in row[0].upper()
