"""POST /customers/{sc_id}/erase: admins only (a token with the `erase` scope, or an admin's
session), the erasure record as the answer, idempotent, Idempotency-Key replays, refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tagbase.accounts.models import Role
from tagbase.customers.models import Customer, Erasure
from tagbase.imports import services as imports
from tagbase.imports.models import ImportJob, ImportStatus
from tagbase.testing import make_customer, system_actor

from .support import assert_error, send, session_client, token_client

pytestmark = pytest.mark.django_db


def erase(client, sc_id: int, **headers: str):
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return send(client, "POST", f"/customers/{sc_id}/erase", **extra)


def test_a_token_with_the_erase_scope_erases_and_gets_the_record():
    customer = make_customer(email="lampa@example.org")
    client, _ = token_client("erase", name="crm")
    response = erase(client, customer.pk)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["sc_id"], body["erased_by"], body["already_erased"]) == (
        customer.pk,
        "token:crm",
        False,
    )
    assert body["counts"]["customers"]["customer_deleted"] == 1
    assert "lampa" not in response.content.decode()
    assert not Customer.objects.filter(pk=customer.pk).exists()


def test_erasing_again_changes_nothing_and_says_when_it_was_done():
    customer = make_customer()
    client, _ = token_client("erase")
    first = erase(client, customer.pk).json()
    again = erase(client, customer.pk)
    assert again.status_code == 200
    assert again.json() == {**first, "already_erased": True}
    assert Erasure.objects.count() == 1


def test_an_idempotency_key_replays_the_first_answer_and_refuses_another_customer():
    one, two = make_customer(), make_customer()
    client, _ = token_client("erase")
    first = erase(client, one.pk, **{"Idempotency-Key": "gdpr-17"})
    replay = erase(client, one.pk, **{"Idempotency-Key": "gdpr-17"})
    assert replay.json() == first.json() and first.json()["already_erased"] is False
    reused = erase(client, two.pk, **{"Idempotency-Key": "gdpr-17"})
    assert_error(reused, 422, "idempotency_key_reused", "Idempotency-Key")
    assert Customer.objects.filter(pk=two.pk).exists()


def test_only_admins_may_erase():
    customer = make_customer()
    write_token, _ = token_client("read", "write", "import", "events")
    assert_error(erase(write_token, customer.pk), 403, "missing_scope")
    assert_error(erase(session_client(Role.MARKETER), customer.pk), 403, "forbidden")
    assert_error(erase(session_client(Role.ANALYST), customer.pk), 403, "forbidden")
    assert_error(erase(Client(), customer.pk), 401, "not_authenticated")
    assert Customer.objects.filter(pk=customer.pk).exists()
    assert erase(session_client(Role.ADMIN), customer.pk).status_code == 200


def test_an_unknown_customer_is_404():
    client, _ = token_client("erase")
    assert_error(erase(client, 999_999), 404, "customer_not_found", "sc_id")


def test_an_import_a_worker_is_reading_blocks_the_erasure_with_409():
    customer = make_customer(phone="+79164021793")
    job = imports.start_import(
        [b"8 916 402-17-93\n"],
        "f.csv",
        imports.ImportRequest(id_type="phone", audience_name="A"),
        actor=system_actor(),
        enqueue=False,
    )
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.VALIDATING,
        lease_owner="worker-1",
        lease_expires_at=timezone.now() + timedelta(minutes=2),
    )
    client, _ = token_client("erase")
    error = assert_error(erase(client, customer.pk), 409, "erasure_blocked", "sc_id")
    assert f"import {job.pk}" in error["message"]
    assert Customer.objects.filter(pk=customer.pk).exists()
