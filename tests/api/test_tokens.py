"""Creating and revoking API tokens (accounts.services), as the UI and the CLI will."""

from __future__ import annotations

import pytest
from django.test import Client

from tagbase.accounts.actors import Actor
from tagbase.accounts.models import ApiToken, Role, hash_token
from tagbase.accounts.services import TokenError, create_api_token, revoke_api_token
from tagbase.testing import make_user, system_actor

from .support import assert_error, send

pytestmark = pytest.mark.django_db


def test_a_new_token_authenticates_with_its_secret_and_only_the_hash_is_stored():
    admin = make_user(Role.ADMIN)
    token, secret = create_api_token("Warehouse", ["read"], actor=Actor.of_user(admin))
    assert token.key_hash == hash_token(secret) and secret not in token.key_hash
    assert secret.startswith("tb_") and token.key_prefix == secret[:10]
    assert (token.name, token.scopes, token.created_by) == ("Warehouse", ["read"], admin)
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    assert send(client, "GET", "/audiences").status_code == 200


def test_every_call_makes_a_new_secret():
    _, first = create_api_token("A", ["read"], actor=system_actor())
    _, second = create_api_token("A", ["read"], actor=system_actor())
    assert first != second
    assert ApiToken.objects.count() == 2


def test_scopes_are_checked_deduplicated_and_put_in_a_fixed_order():
    token, _ = create_api_token("erp", ["WRITE", "read", "read"], actor=system_actor())
    assert token.scopes == ["read", "write"]
    token, _ = create_api_token("erp", "write, read", actor=system_actor())
    assert token.scopes == ["read", "write"]


@pytest.mark.parametrize(
    ("name", "scopes", "code", "field"),
    [
        ("", ["read"], "token_name_empty", "name"),
        ("x" * 101, ["read"], "token_name_too_long", "name"),
        ("bad\nname", ["read"], "token_name_control_character", "name"),
        ("erp", [], "token_scope_empty", "scopes"),
        ("erp", ["read", "admin"], "token_scope_unknown", "scopes"),
    ],
)
def test_a_bad_name_or_scope_is_refused_with_a_reason(name, scopes, code, field):
    with pytest.raises(TokenError) as refused:
        create_api_token(name, scopes, actor=system_actor())
    assert (refused.value.code, refused.value.field) == (code, field)
    assert not ApiToken.objects.exists()


def test_revoking_is_idempotent_and_keeps_the_first_time():
    token, secret = create_api_token("erp", ["read"], actor=system_actor())
    first = revoke_api_token(token, actor=system_actor()).revoked_at
    assert first is not None
    assert revoke_api_token(token, actor=system_actor()).revoked_at == first
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    assert_error(send(client, "GET", "/audiences"), 401, "token_revoked")
