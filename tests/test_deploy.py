"""`tagbase check --deploy` is clean with the production environment the docs prescribe.

The environment is read from docs/howto/run-in-production.md (the ``sh`` block of "3. The
environment"), so the guide and the settings cannot drift apart: a variable the guide forgets,
or a setting that stops matching it, fails here. Each check runs ``tagbase`` in a child process,
because settings are read once per process. No database is needed (``check`` without
``--database`` does not connect).
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "howto" / "run-in-production.md"


def production_environment(data_dir: Path) -> dict[str, str]:
    """The variables of the guide's environment file, with a real secret and a scratch dir."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("## 3. The environment", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "docs/howto/run-in-production.md: no ```sh block under '3. The environment'"
    env: dict[str, str] = {}
    for line in block.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, value = line.partition("=")
            env[name] = value
    assert {"SECRET_KEY", "ALLOWED_HOSTS", "TAGBASE_HTTPS"} <= set(env), env
    env["SECRET_KEY"] = secrets.token_urlsafe(50)  # the guide shows "..."
    env["TAGBASE_DATA_DIR"] = str(data_dir)
    return env


def run_tagbase(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Only the variables given: nothing from the developer's or CI's environment leaks in.
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return subprocess.run(
        [sys.executable, "-m", "tagbase", *args],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_reports_nothing_with_the_guides_production_environment(tmp_path):
    done = run_tagbase(
        "check", "--deploy", "--fail-level", "WARNING", env=production_environment(tmp_path)
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output, output


def test_check_deploy_fails_on_the_development_defaults(tmp_path):
    # The same check does see problems: without the production variables it reports Django's
    # (no HTTPS, no HSTS) and Tagbase's own (generated SECRET_KEY, per-process rate limits).
    done = run_tagbase("check", "--deploy", env={"TAGBASE_DATA_DIR": str(tmp_path)})
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    for check_id in ("tagbase.E001", "tagbase.W001", "security.W004", "security.W008"):
        assert check_id in output, (check_id, output)


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = production_environment(tmp_path)
    del env["SECRET_KEY"]
    done = run_tagbase("check", env=env)
    assert done.returncode != 0
    assert "SettingError: SECRET_KEY: must be set when TAGBASE_HTTPS=true" in done.stderr
    assert not (tmp_path / "secret_key").exists()  # no key was generated in its place


def test_an_unknown_cache_is_refused_naming_the_variable(tmp_path):
    done = run_tagbase(
        "check", env={"TAGBASE_DATA_DIR": str(tmp_path), "TAGBASE_CACHE": "memcached://x"}
    )
    assert done.returncode != 0
    assert "SettingError: TAGBASE_CACHE='memcached://x': expected locmem, database" in done.stderr


def test_migrate_makes_the_cache_table_when_the_cache_is_the_database(tmp_path):
    database = tmp_path / "tagbase.sqlite3"
    env = {
        "TAGBASE_DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{database}",
        "TAGBASE_CACHE": "database",
    }
    done = run_tagbase("migrate", "--no-input", "-v", "0", env=env)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "tagbase_cache" in tables
