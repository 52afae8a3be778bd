"""Suite-wide checks. Unit tests live in each app's tests/, journeys in tests/."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_import_dir(tmp_path, settings):  # type: ignore[no-untyped-def]
    """Each test stores uploads and reports in its own folder (a worker started by a test gets
    the matching TAGBASE_DATA_DIR: the parent of this folder)."""
    settings.TAGBASE_IMPORT_DIR = tmp_path / "data" / "imports"
    # Users made by tests get a cheap password hash: the default (PBKDF2, ~0.3 s a hash) would
    # cost seconds per test that logs in. Production settings are untouched.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


_DB_FIXTURES = {"db", "transactional_db", "live_server", "django_db_serialized_rollback"}


@pytest.fixture(autouse=True)
def _member_counts_stay_exact(request: pytest.FixtureRequest):
    """After every test that used the database: member_count equals COUNT(*) for every audience.

    The check reads the rows independently of the service that maintains the counts. It asks
    for the test's database fixture itself so that it runs before that fixture rolls back.
    """
    marker = request.node.get_closest_marker("django_db")
    names = set(request.fixturenames)
    if request.node.get_closest_marker("skip_count_check") or not (marker or names & _DB_FIXTURES):
        yield
        return
    transactional = (marker is not None and marker.kwargs.get("transaction")) or bool(
        names & {"transactional_db", "live_server"}
    )
    request.getfixturevalue("transactional_db" if transactional else "db")
    yield
    from tagbase.testing import membership_count_drift

    assert membership_count_drift() == [], "Audience.member_count drifted from COUNT(*)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`slow` tests run only under `make test-long`; `postgres_only` ones only on PostgreSQL."""
    import os

    long_run = os.environ.get("TAGBASE_LONG_TESTS") == "1"
    on_sqlite = os.environ.get("DATABASE_URL", "sqlite").startswith("sqlite")
    for item in items:
        if "slow" in item.keywords and not long_run:
            item.add_marker(pytest.mark.skip(reason="long variant: run with `make test-long`"))
        if "postgres_only" in item.keywords and on_sqlite:
            item.add_marker(pytest.mark.skip(reason="PostgreSQL only"))
