"""Settings come from the environment and fail loudly, naming the variable that is wrong.

The helpers are tested directly. Whole-settings behaviour is tested by importing
``tagbase.settings`` in a fresh Python process, because a process imports settings only once.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tagbase.lib.env import (
    SettingError,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
)

ROOT = Path(__file__).resolve().parent.parent
VAR = "TAGBASE_TEST_SETTING"


# --- The helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), (" Yes ", True), ("ON", True), ("0", False), ("off", False)],
)
def test_a_boolean_is_read_in_any_usual_spelling(monkeypatch, raw, expected):
    monkeypatch.setenv(VAR, raw)
    assert env_bool(VAR, not expected) is expected


def test_an_unset_or_empty_variable_gives_the_default(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    assert env_bool(VAR, True) is True
    assert env_int(VAR, 7) == 7
    assert env_str(VAR, "x") == "x"
    assert env_list(VAR, ["a"]) == ["a"]
    monkeypatch.setenv(VAR, "")
    assert env_bool(VAR, True) is True
    assert env_int(VAR, 7) == 7


def test_a_bad_boolean_is_refused_with_the_variable_name(monkeypatch):
    monkeypatch.setenv(VAR, "maybe")
    with pytest.raises(SettingError, match=rf"{VAR}='maybe'.*true/false"):
        env_bool(VAR, False)


def test_a_bad_whole_number_is_refused_with_the_variable_name(monkeypatch):
    monkeypatch.setenv(VAR, "12abc")
    with pytest.raises(SettingError, match=rf"{VAR}='12abc'.*whole number"):
        env_int(VAR, 1)


def test_a_number_below_the_minimum_is_refused_with_the_variable_name(monkeypatch):
    monkeypatch.setenv(VAR, "0")
    with pytest.raises(SettingError, match=rf"{VAR}=0.*at least 1"):
        env_int(VAR, 5, minimum=1)
    monkeypatch.setenv(VAR, " 1 ")
    assert env_int(VAR, 5, minimum=1) == 1


def test_a_bad_number_is_refused_with_the_variable_name(monkeypatch):
    monkeypatch.setenv(VAR, "fast")
    with pytest.raises(SettingError, match=rf"{VAR}='fast'.*expected a number"):
        env_float(VAR, 1.0)
    monkeypatch.setenv(VAR, "0.01")
    with pytest.raises(SettingError, match=rf"{VAR}=0.01.*at least 0.05"):
        env_float(VAR, 1.0, minimum=0.05)
    monkeypatch.setenv(VAR, " 2.5 ")
    assert env_float(VAR, 1.0, minimum=0.05) == 2.5


def test_a_value_outside_the_choices_is_refused_with_the_variable_name(monkeypatch):
    monkeypatch.setenv(VAR, "LOUD")
    with pytest.raises(SettingError, match=rf"{VAR}='LOUD'.*INFO, DEBUG"):
        env_choice(VAR, "INFO", ("INFO", "DEBUG"))
    monkeypatch.setenv(VAR, "DEBUG")
    assert env_choice(VAR, "INFO", ("INFO", "DEBUG")) == "DEBUG"


def test_a_list_is_split_on_commas_and_trimmed(monkeypatch):
    monkeypatch.setenv(VAR, " a.example, ,b.example ")
    assert env_list(VAR, []) == ["a.example", "b.example"]


def test_setting_error_is_a_value_error():
    # Callers that catch ValueError around configuration keep working.
    assert issubclass(SettingError, ValueError)


# --- The settings module, in a fresh process -------------------------------------------------


def import_settings(tmp_path: Path, code: str = "", **env: str) -> subprocess.CompletedProcess:
    """Import tagbase.settings in a new interpreter with a clean Tagbase environment."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith(("TAGBASE_", "DJANGO_")) or k in {"DATABASE_URL", "SECRET_KEY"})
    }
    base.update({"TAGBASE_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run(
        [sys.executable, "-c", f"import tagbase.settings as s\n{code}"],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_settings_import_cleanly_with_nothing_set(tmp_path):
    done = import_settings(tmp_path, "print(s.DATABASES['default']['ENGINE'])")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "django.db.backends.sqlite3"


def test_a_mysql_database_url_is_refused_naming_the_variable(tmp_path):
    done = import_settings(tmp_path, DATABASE_URL="mysql://user:pw@localhost/tagbase")
    assert done.returncode != 0
    assert "SettingError" in done.stderr
    assert "DATABASE_URL: unsupported engine 'django.db.backends.mysql'" in done.stderr


def test_a_database_url_with_an_unknown_scheme_is_refused_naming_the_variable(tmp_path):
    done = import_settings(tmp_path, DATABASE_URL="oracle-ish://somewhere/db")
    assert done.returncode != 0
    assert "SettingError: DATABASE_URL:" in done.stderr


def test_a_postgres_database_url_selects_postgresql(tmp_path):
    done = import_settings(
        tmp_path,
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'])",
        DATABASE_URL="postgres://tagbase@db.internal:5432/tagbase",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["django.db.backends.postgresql", "tagbase"]


def test_a_bad_value_in_any_setting_stops_the_start_naming_it(tmp_path):
    done = import_settings(tmp_path, TAGBASE_PAGE_SIZE="0")
    assert done.returncode != 0
    assert "SettingError: TAGBASE_PAGE_SIZE=0: must be at least 1" in done.stderr


def test_a_generated_secret_key_is_kept_private_and_reused(tmp_path):
    first = import_settings(tmp_path, "print(s.SECRET_KEY)")
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = first.stdout.strip()
    assert len(key) >= 50
    assert key_file.read_text().strip() == key

    second = import_settings(tmp_path, "print(s.SECRET_KEY)")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == key


def test_a_secret_key_from_the_environment_wins_and_writes_no_file(tmp_path):
    done = import_settings(tmp_path, "print(s.SECRET_KEY)", SECRET_KEY="from-the-environment")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "from-the-environment"
    assert not (tmp_path / "data" / "secret_key").exists()


def test_https_turns_on_secure_cookies_and_the_redirect(tmp_path):
    code = "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT)"
    off = import_settings(tmp_path, code)
    on = import_settings(tmp_path, code, TAGBASE_HTTPS="true", SECRET_KEY="k" * 50)
    assert off.stdout.split() == ["False", "False", "False"], off.stderr
    assert on.stdout.split() == ["True", "True", "True"], on.stderr
