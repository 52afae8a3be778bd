"""Who may call the API: bearer tokens with scopes, and the UI's session with CSRF and roles."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tagbase.accounts.models import ApiToken, Role
from tagbase.accounts.services import revoke_api_token
from tagbase.audiences.models import Audience, Operation
from tagbase.audiences.services import create_audience
from tagbase.testing import make_customer, make_token, system_actor

from .support import API, assert_error, send, session_client, token_client

pytestmark = pytest.mark.django_db


def test_a_request_without_credentials_is_refused_with_401():
    error = assert_error(send(Client(), "GET", "/audiences"), 401, "not_authenticated", None)
    assert "Bearer" in error["message"]


def test_a_write_without_credentials_is_401_not_a_csrf_refusal():
    response = send(Client(enforce_csrf_checks=True), "POST", "/audiences", {"name": "A"})
    assert_error(response, 401, "not_authenticated")


def test_an_unknown_token_is_refused_with_401():
    client = Client(headers={"Authorization": "Bearer tb_not-a-real-token"})
    assert_error(send(client, "GET", "/audiences"), 401, "invalid_token")


def test_an_authorization_header_of_another_scheme_is_refused_with_401():
    client = Client(headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_error(send(client, "GET", "/audiences"), 401, "malformed_authorization")


def test_a_bearer_header_without_a_token_is_refused_with_401():
    client = Client(headers={"Authorization": "Bearer "})
    assert_error(send(client, "GET", "/audiences"), 401, "malformed_authorization")


def test_a_revoked_token_is_refused_with_401():
    client, token = token_client("read")
    assert send(client, "GET", "/audiences").status_code == 200
    revoke_api_token(token, actor=system_actor())
    assert_error(send(client, "GET", "/audiences"), 401, "token_revoked")


def test_a_read_token_can_read_but_not_write():
    client, _ = token_client("read")
    assert send(client, "GET", "/audiences").status_code == 200
    error = assert_error(send(client, "POST", "/audiences", {"name": "A"}), 403, "missing_scope")
    assert "'write'" in error["message"]


def test_a_write_only_token_cannot_read():
    client, _ = token_client("write")
    assert_error(send(client, "GET", "/audiences"), 403, "missing_scope")
    assert send(client, "POST", "/audiences", {"name": "A"}).status_code == 201


@pytest.mark.parametrize("scope", ["import", "events"])
def test_reserved_scopes_alone_grant_neither_reading_nor_writing(scope):
    client, _ = token_client(scope)
    assert_error(send(client, "GET", "/audiences"), 403, "missing_scope")
    assert_error(send(client, "POST", "/audiences", {"name": "A"}), 403, "missing_scope")


def test_a_write_through_a_token_is_recorded_as_the_tokens_partner_system():
    client, token = token_client(name="erp")
    audience = create_audience("Target", actor=system_actor())
    customer = make_customer()
    body = {"id_type": "sc_id", "ids": [customer.pk]}
    assert send(client, "POST", f"/audiences/{audience.pk}/members/add", body).status_code == 200
    op = Operation.objects.get(audience=audience)
    assert (op.kind, op.actor_label, op.source_ref) == ("api", "token:erp", f"token:{token.pk}")


def test_the_first_use_of_a_token_records_the_time():
    client, token = token_client("read")
    assert token.last_used_at is None
    send(client, "GET", "/audiences")
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert timezone.now() - token.last_used_at < timedelta(seconds=30)


def test_a_token_used_again_within_a_minute_is_not_written_again():
    client, token = token_client("read")
    send(client, "GET", "/audiences")
    token.refresh_from_db()
    first = token.last_used_at
    with CaptureQueriesContext(connection) as queries:
        assert send(client, "GET", "/audiences").status_code == 200
    writes = [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]
    assert writes == []
    token.refresh_from_db()
    assert token.last_used_at == first


def test_a_token_last_used_over_a_minute_ago_is_stamped_again():
    client, token = token_client("read")
    long_ago = timezone.now() - timedelta(minutes=5)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=long_ago)
    send(client, "GET", "/audiences")
    token.refresh_from_db()
    assert token.last_used_at > long_ago + timedelta(minutes=4)


# --- Session (the UI's own calls) -------------------------------------------------------------


def test_a_logged_in_user_can_read_through_the_session():
    client = session_client(Role.ANALYST)
    assert send(client, "GET", "/audiences").status_code == 200


def test_a_marketer_session_can_write_with_the_csrf_token():
    client = session_client(Role.MARKETER, enforce_csrf=True)
    csrf = secrets.token_hex(16)  # what the UI reads from the csrftoken cookie
    client.cookies["csrftoken"] = csrf
    response = send(client, "POST", "/audiences", {"name": "From the UI"}, HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 201, response.content
    audience = Audience.objects.get(pk=response.json()["id"])
    assert audience.created_by == response.wsgi_request.user


def test_a_session_write_without_the_csrf_token_is_refused_with_403():
    client = session_client(Role.MARKETER, enforce_csrf=True)
    response = send(client, "POST", "/audiences", {"name": "No CSRF"})
    assert_error(response, 403, "csrf_failed")


def test_an_analyst_session_may_read_but_not_write():
    client = session_client(Role.ANALYST)
    assert send(client, "GET", "/operations").status_code == 200
    error = assert_error(send(client, "POST", "/audiences", {"name": "A"}), 403, "forbidden")
    assert "Analyst" in error["message"]


def test_an_admin_session_may_write():
    client = session_client(Role.ADMIN)
    assert send(client, "POST", "/audiences", {"name": "Admin's"}).status_code == 201


def test_a_token_wins_over_a_session_when_both_are_sent():
    client = session_client(Role.ANALYST)
    _, secret = make_token("read", "write")
    response = send(
        client, "POST", "/audiences", {"name": "Via token"}, HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code == 201


def test_the_schema_and_docs_pages_need_no_credentials():
    assert Client().get(f"{API}/openapi.json").status_code == 200
    assert Client().get(f"{API}/docs").status_code == 200
