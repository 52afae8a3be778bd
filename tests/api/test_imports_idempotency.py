"""POST /imports with an Idempotency-Key: a repeat has one effect, a different request with the
same key is refused, and a repeat while the first is still being stored is told to retry."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone

from tagbase.accounts.models import ApiToken
from tagbase.imports import services
from tagbase.imports.models import ImportJob

from .support import assert_error, token_client
from .test_imports import importer, run, upload

pytestmark = pytest.mark.django_db


def key(value: str = "order-2024-06-01-0001") -> dict[str, str]:
    return {"Idempotency-Key": value}


def stored_files(settings) -> list[str]:  # type: ignore[no-untyped-def]
    folder = settings.TAGBASE_IMPORT_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_repeat_with_the_same_key_returns_the_first_import(settings):
    client = importer()
    first = upload(client, "1\n2\n", audience="A", headers=key())
    again = upload(client, "1\n2\n", audience="A", headers=key())
    assert first.status_code == again.status_code == 202
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.json().keys() == first.json().keys()
    assert ImportJob.objects.count() == 1
    assert stored_files(settings) == [ImportJob.objects.get().stored_name]


def test_a_repeat_answers_with_the_first_imports_current_report():
    client = importer()
    job_id = upload(client, "1\n", audience="A", dry_run="true", headers=key()).json()["job_id"]
    run(job_id)
    again = upload(client, "1\n", audience="A", dry_run="true", headers=key())
    assert again.status_code == 202
    assert (again.json()["job_id"], again.json()["status"]) == (job_id, "previewed")


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ("1\n3\n", {}),  # another file
        ("1\n2\n", {"dry_run": "true"}),  # other options
        ("1\n2\n", {"audience": "B"}),  # another audience
    ],
)
def test_the_same_key_with_a_different_request_is_refused(data, fields, settings):
    client = importer()
    upload(client, "1\n2\n", audience="A", headers=key())
    response = upload(client, data, **{"audience": "A", **fields}, headers=key())
    error = assert_error(response, 422, "idempotency_key_reused", "Idempotency-Key")
    assert "different" in error["message"]
    assert ImportJob.objects.count() == 1
    assert stored_files(settings) == [ImportJob.objects.get().stored_name]


def test_keys_belong_to_the_caller_so_two_partners_may_use_the_same_key():
    erp = importer()
    shop, _ = token_client("import", "read", name="shop")
    first = upload(erp, "1\n", audience="A", headers=key()).json()["job_id"]
    second = upload(shop, "1\n", audience="A", headers=key()).json()["job_id"]
    assert first != second


def test_without_a_key_every_upload_is_a_new_import():
    client = importer()
    upload(client, "1\n", audience="A")
    upload(client, "1\n", audience="A")
    assert ImportJob.objects.count() == 2


def test_a_repeat_that_meets_the_first_request_on_insert_is_409(settings, monkeypatch):
    """The race, made deterministic: the repeat looked for a committed import with its key
    before the first request committed (so found none), and meets it when inserting."""
    client = importer()
    first = upload(client, "1\n", audience="A", headers=key()).json()["job_id"]
    monkeypatch.setattr(services, "_replay", lambda *args: None)
    response = upload(client, "1\n", audience="A", headers=key())
    assert_error(response, 409, "idempotency_key_in_use", "Idempotency-Key")
    assert list(ImportJob.objects.values_list("pk", flat=True)) == [first]
    assert stored_files(settings) == [ImportJob.objects.get().stored_name]


def _in_memory_sqlite() -> bool:
    return connection.vendor == "sqlite" and connection.creation.is_in_memory_db(
        connection.settings_dict["NAME"]
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    "_in_memory_sqlite()",
    reason="shared-cache in-memory SQLite fails on a lock instead of waiting; "
    "runs on PostgreSQL and on a file-based SQLite test database",
)
def test_a_repeat_while_the_first_request_is_still_in_flight_is_409(settings):
    """Another connection holds the first request's job row uncommitted; the repeat finds no
    committed job for its key, waits on the insert, then meets the first one: 409."""
    client, token = token_client("import", "read")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())  # no write first
    holding = threading.Event()

    def first_request_in_flight() -> None:
        try:
            with transaction.atomic():
                ImportJob.objects.create(
                    mode="single", id_type="sc_id", audience_name="A", file_name="f.csv",
                    stored_name="in-flight.csv", sha256="0" * 64,
                    actor_label=f"token:{token.name}", idempotency_key="k-1",
                    request_fingerprint="f" * 64, source="api",
                )  # fmt: skip
                holding.set()
                time.sleep(1.0)  # let the repeat reach its insert and wait on this row
        finally:
            connection.close()

    first = threading.Thread(target=first_request_in_flight)
    first.start()
    assert holding.wait(10)
    response = upload(client, "1\n", audience="A", headers=key("k-1"))
    first.join(10)
    assert_error(response, 409, "idempotency_key_in_use", "Idempotency-Key")
    assert list(ImportJob.objects.values_list("stored_name", flat=True)) == ["in-flight.csv"]
    assert stored_files(settings) == []
