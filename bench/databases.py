"""Benchmark databases: one prepared template per engine, a fresh clone for every run.

``prepare`` migrates a new database with ``python -m tagbase migrate`` (in a fresh
TAGBASE_DATA_DIR) and generates the customers set-based in SQL. Every measured run then gets
its own copy of that template (a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on
PostgreSQL), so each baseline and each Tagbase run starts from exactly the same state. On
PostgreSQL every database created here is dropped at the end, also when a run fails.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench import datagen
from bench.baseline_import import SQLITE_PRAGMAS
from bench.machine import ROOT

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432"


class BenchError(Exception):
    """The benchmark cannot give a trustworthy figure; the message says why."""


@dataclass
class RunDatabase:
    """One run's database and data directory."""

    label: str
    data_dir: Path
    url: str  # DATABASE_URL for Tagbase
    baseline_args: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The child environment: the caller's, without any Tagbase setting that could change
        the figures (TAGBASE_*, DATABASE_URL), plus this run's data dir and database."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("TAGBASE_") and k != "DATABASE_URL"
        }
        env.update(TAGBASE_DATA_DIR=str(self.data_dir), DATABASE_URL=self.url)
        return env


def migrate(run: RunDatabase) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tagbase", "migrate", "--no-input", "-v", "0"],
        env=run.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BenchError(f"tagbase migrate failed ({run.label}):\n{done.stderr[-3000:]}")


def _fsync_tree(root: Path) -> None:
    """Flush a copied tree to disk now, so its write-back does not land inside a measurement."""
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class SqliteBench:
    engine = "sqlite"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.template = RunDatabase("template", root / "sqlite-template", "")
        self.template.url = self._url(self.template.data_dir)

    @staticmethod
    def _url(data_dir: Path) -> str:
        return f"sqlite:///{data_dir / 'tagbase.sqlite3'}"

    def server_info(self) -> dict[str, object]:
        return {"sqlite": sqlite3.sqlite_version}

    def prepare(self, customers: int) -> None:
        self.template.data_dir.mkdir(parents=True)
        migrate(self.template)
        conn = sqlite3.connect(self.template.data_dir / "tagbase.sqlite3", isolation_level=None)
        try:
            for pragma in SQLITE_PRAGMAS:
                conn.execute(pragma)
            conn.execute("BEGIN")
            conn.execute(datagen.customers_sql("sqlite"), (customers,))
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
        finally:
            conn.close()

    def clone(self, label: str) -> RunDatabase:
        data_dir = self.root / f"sqlite-{label}"
        shutil.copytree(self.template.data_dir, data_dir)
        _fsync_tree(data_dir)
        db = data_dir / "tagbase.sqlite3"
        return RunDatabase(label, data_dir, self._url(data_dir), ["--sqlite", str(db)])

    def count_members(self, run: RunDatabase, audience: str) -> int:
        conn = sqlite3.connect(run.data_dir / "tagbase.sqlite3")
        try:
            return int(conn.execute(_COUNT_MEMBERS.replace("%s", "?"), (audience,)).fetchone()[0])
        finally:
            conn.close()

    def drop(self, run: RunDatabase) -> None:
        shutil.rmtree(run.data_dir, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.template.data_dir, ignore_errors=True)


_COUNT_MEMBERS = (
    "SELECT COUNT(*) FROM audiences_membership m "
    "JOIN audiences_audience a ON a.id = m.audience_id WHERE a.name = %s"
)


class PostgresBench:
    """Databases ``tagbase_bench_<pid>`` (the template) and ``tagbase_bench_<pid>_<run>``."""

    engine = "postgres"

    def __init__(self, root: Path, server_url: str = DEFAULT_POSTGRES_URL) -> None:
        self.root = root
        self.server_url = server_url.rstrip("/")
        self.prefix = f"tagbase_bench_{os.getpid()}"
        self.created: list[str] = []
        self.template = RunDatabase("template", root / "pg-template", self._url(self.prefix))

    def _url(self, name: str) -> str:
        parts = urlsplit(self.server_url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))

    def _admin(self):  # type: ignore[no-untyped-def]
        import psycopg

        try:
            return psycopg.connect(self._url("postgres"), autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise BenchError(f"no PostgreSQL at {self.server_url}: {exc}") from None

    def server_info(self) -> dict[str, object]:
        with self._admin() as conn:
            names = ("server_version", "shared_buffers", "work_mem", "synchronous_commit", "fsync")
            return {f"postgres_{n}": conn.execute(f"SHOW {n}").fetchone()[0] for n in names}

    def prepare(self, customers: int) -> None:
        import psycopg

        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.prefix}"')
        self.created.append(self.prefix)
        self.template.data_dir.mkdir(parents=True)
        migrate(self.template)
        with psycopg.connect(self.template.url, autocommit=True) as conn:
            with conn.transaction():
                conn.execute(datagen.customers_sql("postgres"), (customers,))
                conn.execute(
                    "SELECT setval(pg_get_serial_sequence('customers_customer', 'sc_id'), %s)",
                    (customers,),
                )
            # The steady state of a live database: statistics known, visibility map set.
            conn.execute("VACUUM ANALYZE customers_customer")
        with self._admin() as conn:
            # No connection (autovacuum included) may hold the template while it is copied.
            conn.execute(f'ALTER DATABASE "{self.prefix}" ALLOW_CONNECTIONS false')

    def clone(self, label: str) -> RunDatabase:
        name = f"{self.prefix}_{label}"
        with self._admin() as conn:
            self.created.append(name)
            for attempt in range(10):
                try:
                    conn.execute(
                        f'CREATE DATABASE "{name}" TEMPLATE "{self.prefix}" STRATEGY FILE_COPY'
                    )
                    break
                except Exception as exc:  # "being accessed by other users": wait and retry
                    if "being accessed" not in str(exc) or attempt == 9:
                        raise
                    time.sleep(0.5)
        data_dir = self.root / f"pg-{label}"
        shutil.copytree(self.template.data_dir, data_dir)
        return RunDatabase(label, data_dir, self._url(name), ["--postgres", self._url(name)])

    def count_members(self, run: RunDatabase, audience: str) -> int:
        import psycopg

        with psycopg.connect(run.url) as conn:
            return int(conn.execute(_COUNT_MEMBERS, (audience,)).fetchone()[0])  # type: ignore[index]

    def _drop_database(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def drop(self, run: RunDatabase) -> None:
        self._drop_database(f"{self.prefix}_{run.label}")
        shutil.rmtree(run.data_dir, ignore_errors=True)

    def close(self) -> None:
        for name in reversed(list(self.created)):
            self._drop_database(name)
        shutil.rmtree(self.template.data_dir, ignore_errors=True)

    def stale_databases(self) -> list[str]:
        """Bench databases left by a harness that was killed outright (its pid is gone).
        Reported, never dropped: they may belong to someone else's run."""
        with self._admin() as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'tagbase\\_bench\\_%'"
            ).fetchall()
        stale = []
        for (name,) in rows:
            pid = name.split("_")[2]
            if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
                stale.append(name)
        return stale


def open_bench_database(engine: str, root: Path, postgres_url: str) -> SqliteBench | PostgresBench:
    if engine == "sqlite":
        return SqliteBench(root)
    if engine == "postgres":
        return PostgresBench(root, postgres_url)
    raise BenchError(f"unknown database {engine!r} (sqlite or postgres)")
