"""Plain helpers for the API tests: clients that authenticate one way or another, and the
error-shape assertion every refusal must pass."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from django.test import Client

from tagbase.accounts.models import ApiToken, Role
from tagbase.testing import PASSWORD, make_token, make_user

API = "/api/v1"


def token_client(*scopes: str, name: str = "erp") -> tuple[Client, ApiToken]:
    """A client sending ``Authorization: Bearer`` with a new token of these scopes."""
    token, secret = make_token(*(scopes or ("read", "write")), name=name)
    return Client(headers={"Authorization": f"Bearer {secret}"}), token


def session_client(role: str = Role.MARKETER, *, enforce_csrf: bool = False) -> Client:
    """A client logged in to the UI as a new user of this role."""
    user = make_user(role)
    client = Client(enforce_csrf_checks=enforce_csrf)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def send(client: Client, method: str, path: str, body: Any = None, **extra: Any) -> HttpResponse:
    """``method`` to ``/api/v1<path>`` with ``body`` as JSON (or as given if bytes/str)."""
    data = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
    call = getattr(client, method.lower())
    if data is None:
        return call(API + path, **extra)
    return call(API + path, data=data, content_type="application/json", **extra)


def assert_error(
    response: HttpResponse, status: int, code: str, field: Any = ...
) -> dict[str, Any]:
    """The response is ``status`` with the JSON error shape and this code (and field)."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message", "field"} <= set(error), error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert "Traceback" not in error["message"]
    if field is not ...:
        assert error["field"] == field, error
    return error
