"""Real worker processes for fault tests, pointed at the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def shared_database_url() -> str:
    """A DATABASE_URL for another process to reach the database this test uses."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        if connection.is_in_memory_db():
            pytest.skip(
                "fault tests need a file database: run through `make test` "
                "(scripts/run_tests.py sets TAGBASE_TEST_DATABASE_NAME to a file)"
            )
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host, port = s.get("HOST") or "127.0.0.1", s.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


def start_worker(data_dir: Path, **env: str) -> subprocess.Popen:  # type: ignore[type-arg]
    full_env = {
        **os.environ,
        "DATABASE_URL": shared_database_url(),
        "TAGBASE_DATA_DIR": str(data_dir),
        "TAGBASE_JOB_LEASE_SECONDS": "2",
        "TAGBASE_SWEEP_SECONDS": "0.3",
        "TAGBASE_IMPORT_BATCH_ROWS": "400",
        "TAGBASE_LOG_LEVEL": "WARNING",
        **env,
    }
    full_env.pop("TAGBASE_TASKS_IMMEDIATE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tagbase", "worker", "--interval", "0.1"],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen) -> str:  # type: ignore[type-arg]
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            kill(proc)
    return proc.stderr.read().decode(errors="replace") if proc.stderr else ""


def wait_for(predicate, timeout: float, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
