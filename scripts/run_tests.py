#!/usr/bin/env python3
"""Run the whole suite on SQLite, then on PostgreSQL.

PostgreSQL is taken from TAGBASE_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test);
the tests create and drop their own database. With CI=true a missing PostgreSQL or Chromium is an
error; elsewhere those tests are skipped and the reason is printed. Extra arguments go to pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("TAGBASE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


def postgres_reason() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"no PostgreSQL at {PG_URL} ({exc.__class__.__name__}: {str(exc).strip()[:120]})"
    return None


def run(label: str, env_extra: dict[str, str], args: list[str], tmp: Path) -> tuple[int, dict]:
    junit = tmp / f"{label}.xml"
    env = {**os.environ, **env_extra, "TAGBASE_TEST_ENGINE": label}
    print(f"\n=== {label}: pytest {' '.join(args)}", flush=True)
    code = subprocess.call(
        # The slowest tests are listed at the end of each run, to keep CI's time in view.
        [sys.executable, "-m", "pytest", f"--junitxml={junit}", "--durations=20", *args],
        cwd=ROOT,
        env=env,
    )
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    if junit.exists():
        suite = ET.parse(junit).getroot()
        suites = [suite] if suite.tag == "testsuite" else list(suite)
        for s in suites:
            total = int(s.get("tests", 0))
            failed = int(s.get("failures", 0)) + int(s.get("errors", 0))
            skipped = int(s.get("skipped", 0))
            counts["failed"] += failed
            counts["skipped"] += skipped
            counts["passed"] += total - failed - skipped
    return code, counts


def main() -> int:
    args = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="tagbase-test-") as tmpdir:
        tmp = Path(tmpdir)
        results = []
        sqlite_env = {
            "DATABASE_URL": f"sqlite:///{tmp / 'tagbase.sqlite3'}",
            "TAGBASE_TEST_DATABASE_NAME": str(tmp / "test_tagbase.sqlite3"),
            "TAGBASE_DATA_DIR": str(tmp / "data-sqlite"),
        }
        results.append(("sqlite", *run("sqlite", sqlite_env, args, tmp)))
        reason = postgres_reason()
        if reason is None:
            pg_env = {
                "DATABASE_URL": PG_URL,
                "TAGBASE_TEST_DATABASE_NAME": f"test_tagbase_{os.getpid()}",
                "TAGBASE_DATA_DIR": str(tmp / "data-postgres"),
            }
            results.append(("postgresql", *run("postgresql", pg_env, args, tmp)))
        elif CI:
            print(f"\nERROR: CI=true but PostgreSQL tests cannot run: {reason}")
            return 1
        else:
            print(
                f"\nSKIPPED: the PostgreSQL run — {reason}. Start PostgreSQL or set "
                "TAGBASE_TEST_POSTGRES_URL to run it."
            )
    print()
    total = {"passed": 0, "failed": 0, "skipped": 0}
    worst = 0
    for label, code, counts in results:
        print(
            f"{label}: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped (pytest exit {code})"
        )
        for key in total:
            total[key] += counts[key]
        worst = worst or code
    print(f"all: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return worst


if __name__ == "__main__":
    sys.exit(main())
