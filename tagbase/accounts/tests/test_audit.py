"""The audit log itself: what record() accepts, append-only in the ORM and in the database,
the same transaction as the change, logins, token use, filters, and the CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test import Client
from django.utils import timezone

from tagbase.accounts import audit
from tagbase.accounts.actors import Actor
from tagbase.accounts.models import ApiToken, AuditEntry, AuditLogIsAppendOnly, Role
from tagbase.accounts.services import create_api_token, revoke_api_token
from tagbase.audiences import services as audiences
from tagbase.testing import PASSWORD, make_token, make_user

pytestmark = pytest.mark.django_db
CLI = Actor.system("cli:tester")


def entry(**overrides: object) -> AuditEntry:
    fields: dict[str, object] = {
        "actor": CLI,
        "action": "audience.created",
        "target_type": "audience",
        "target_id": 1,
        "summary": {"name": "VIP"},
    }
    fields.update(overrides)
    return audit.record(**fields)  # type: ignore[arg-type]


# --- record() -------------------------------------------------------------------------------


def test_record_keeps_who_what_target_and_summary():
    user = make_user(Role.ADMIN)
    made = entry(actor=Actor.of_user(user), summary={"name": "VIP", "added": 3, "dry": False})
    got = AuditEntry.objects.get(pk=made.pk)
    assert (got.actor_kind, got.actor_label, got.actor_user_id) == ("user", user.username, user.pk)
    assert (got.action, got.target_type, got.target_id) == ("audience.created", "audience", 1)
    assert got.summary == {"name": "VIP", "added": 3, "dry": False}
    assert got.at is not None and got.actor_token_id is None


def test_a_token_actor_is_recorded_as_the_token_not_its_creator():
    creator = make_user(Role.ADMIN)
    token, _ = make_token("read", name="warehouse", user=creator)
    got = entry(actor=Actor.of_token(token))
    assert (got.actor_kind, got.actor_label) == ("token", "token:warehouse")
    assert (got.actor_token_id, got.actor_user_id) == (token.pk, None)


def test_system_actors_keep_their_label():
    got = entry(actor=Actor.system("expiry"))
    assert (got.actor_kind, got.actor_label, got.actor_user_id) == ("system", "expiry", None)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"action": "audience.exploded"}, ValueError),
        ({"target_type": "customer"}, ValueError),
        ({"summary": {"ids": [1, 2, 3]}}, TypeError),
        ({"summary": {"rows": {"a": 1}}}, TypeError),
        ({"summary": {"": 1}}, TypeError),
    ],
)
def test_record_refuses_what_is_not_in_the_catalogue_and_anything_but_scalars(overrides, error):
    with pytest.raises(error):
        entry(**overrides)
    assert not AuditEntry.objects.exists()


def test_a_long_text_is_cut():
    got = entry(summary={"expression": "x" * 1000})
    assert len(got.summary["expression"]) == audit.MAX_TEXT
    assert got.summary["expression"].endswith("…")


def test_every_action_is_documented_in_audit_md():
    text = (Path(__file__).resolve().parents[3] / "docs" / "audit.md").read_text(encoding="utf-8")
    for action in audit.ACTIONS:
        assert f"`{action}`" in text, f"docs/audit.md does not list {action}"


# --- Append-only ------------------------------------------------------------------------------


def test_the_orm_refuses_to_change_or_delete_an_entry():
    made = entry()
    made.summary = {"name": "forged"}
    with pytest.raises(AuditLogIsAppendOnly):
        made.save()
    with pytest.raises(AuditLogIsAppendOnly):
        made.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEntry.objects.filter(pk=made.pk).update(action="user.logged_in")
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEntry.objects.all().delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEntry.objects.bulk_update([made], ["summary"])
    assert AuditEntry.objects.get(pk=made.pk).summary == {"name": "VIP"}


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE accounts_auditentry SET action = 'user.logged_in'",
        "DELETE FROM accounts_auditentry",
    ],
)
def test_the_database_refuses_update_and_delete_of_entries(sql):
    made = entry()
    with (
        pytest.raises(IntegrityError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cur,
    ):
        cur.execute(sql)
    assert AuditEntry.objects.get(pk=made.pk).action == "audience.created"


def test_the_append_only_triggers_exist():
    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            cur.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = 'accounts_auditentry' ORDER BY name"
            )
            expected = ["accounts_auditentry_no_delete", "accounts_auditentry_no_update"]
        else:
            cur.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'accounts_auditentry'::regclass "
                "AND NOT tgisinternal"
            )
            expected = ["accounts_auditentry_append_only"]
        assert [row[0] for row in cur.fetchall()] == expected


def test_only_the_flush_command_unlocks_delete_on_sqlite():
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's flush is a TRUNCATE, which the row trigger does not see")
    entry()
    with audit.unlocked_for_flush(), connection.cursor() as cur:
        cur.execute("DELETE FROM accounts_auditentry")
    assert not AuditEntry.objects.exists()
    entry()
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM accounts_auditentry")  # the lock is back
    assert AuditEntry.objects.count() == 1


# --- Same transaction as the change ----------------------------------------------------------


def test_a_rolled_back_change_leaves_no_entry():
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        audience = audiences.create_audience("Rolled back", actor=CLI)
        audiences.add_customers_to_audience(audience, [], actor=CLI, kind="cli")
        assert AuditEntry.objects.count() == 2  # recorded inside the transaction…
        raise Boom
    assert not AuditEntry.objects.exists()  # …and gone with it


def test_a_refused_change_records_nothing():
    audiences.create_audience("Taken", actor=CLI)
    with pytest.raises(audiences.AudienceNameTaken):
        audiences.create_audience(" taken ", actor=CLI)
    with pytest.raises(audiences.AudienceNotFound):
        audiences.add_customers_to_audience(10**9, [1], actor=CLI, kind="cli")
    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["audience.created"]


def test_an_entry_that_cannot_be_written_undoes_the_change(monkeypatch):
    def broken(*args: object, **kwargs: object) -> None:
        raise DatabaseError("audit table unavailable")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(DatabaseError):
        audiences.create_audience("Unrecorded", actor=CLI)
    from tagbase.audiences.models import Audience

    assert not Audience.objects.filter(name="Unrecorded").exists()


# --- Tokens -----------------------------------------------------------------------------------


def test_token_creation_and_revocation_are_recorded_once():
    admin = Actor.of_user(make_user(Role.ADMIN))
    token, secret = create_api_token("Warehouse", ["read", "write"], actor=admin)
    revoke_api_token(token, actor=admin)
    revoke_api_token(token, actor=admin)  # idempotent: no second entry
    rows = list(AuditEntry.objects.order_by("id"))
    assert [(e.action, e.target_id, e.actor_label) for e in rows] == [
        ("token.created", token.pk, admin.label),
        ("token.revoked", token.pk, admin.label),
    ]
    assert rows[0].summary == {"name": "Warehouse", "scopes": "read,write"}
    assert secret not in json.dumps([e.summary for e in rows])


def test_token_use_is_recorded_at_most_once_a_minute():
    token, secret = make_token("read", name="erp")
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    for _ in range(3):
        assert client.get("/api/v1/audiences").status_code == 200
    used = AuditEntry.objects.filter(action="token.used")
    assert [(e.actor_label, e.target_id) for e in used] == [("token:erp", token.pk)]
    # A minute later the next request records again (last_used_at moved back a minute).
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(seconds=61))
    assert client.get("/api/v1/audiences").status_code == 200
    assert used.all().count() == 2  # .all(): a fresh query, not the list read above


def test_a_refused_token_records_no_use():
    _, secret = make_token("read", name="erp")
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    assert client.post("/api/v1/audiences", {"name": "X"}, "application/json").status_code == 403
    assert not AuditEntry.objects.filter(action="token.used").exists()


# --- Logins -----------------------------------------------------------------------------------


def test_a_login_and_a_logout_are_recorded_with_the_user():
    user = make_user(Role.MARKETER)
    client = Client()
    assert client.post("/login/", {"username": user.username, "password": PASSWORD}).status_code
    client.post("/logout/")
    rows = list(AuditEntry.objects.order_by("id"))
    assert [(e.action, e.actor_label, e.actor_user_id, e.target_id) for e in rows] == [
        ("user.logged_in", user.username, user.pk, user.pk),
        ("user.logged_out", user.username, user.pk, user.pk),
    ]


def test_a_failed_login_keeps_a_known_user_name_and_never_the_password():
    user = make_user(Role.MARKETER)
    Client().post("/login/", {"username": user.username, "password": "wrong-secret-Pa55"})
    (row,) = AuditEntry.objects.all()
    assert (row.action, row.actor_kind, row.actor_label) == (
        "user.login_failed",
        "anonymous",
        "anonymous",
    )
    assert (row.target_type, row.target_id, row.summary) == (
        "user",
        user.pk,
        {"username": user.username},
    )
    assert "wrong-secret" not in json.dumps(row.summary)


def test_a_failed_login_with_an_unknown_name_keeps_nothing_typed():
    # People type e-mail addresses, phones and passwords into the user name field.
    Client().post("/login/", {"username": "jane.doe@example.com", "password": "hunter2-hunter2"})
    (row,) = AuditEntry.objects.all()
    assert (row.action, row.target_id, row.summary) == (
        "user.login_failed",
        None,
        {"username_known": False},
    )
    text = json.dumps([row.actor_label, row.summary])
    assert "jane.doe" not in text and "hunter2" not in text


# --- Filters ----------------------------------------------------------------------------------


def test_filters_by_actor_action_group_target_and_period():
    alice, bob = Actor.system("alice"), Actor.system("bob")
    a1 = entry(actor=alice, action="audience.created", target_id=1)
    b1 = entry(actor=bob, action="segment.created", target_type="segment", target_id=7)
    a2 = entry(actor=alice, action="segment.deleted", target_type="segment", target_id=7)

    def ids(**kw: object) -> list[int]:
        return [e.pk for e in audit.find_entries(audit.make_filter(**kw))]  # type: ignore[arg-type]

    assert ids() == [a2.pk, b1.pk, a1.pk]  # newest first
    assert ids(actor="alice") == [a2.pk, a1.pk]
    assert ids(action="segment.created") == [b1.pk]
    assert ids(action="segment.") == [a2.pk, b1.pk]
    assert ids(target_type="segment", target_id=7) == [a2.pk, b1.pk]
    today = timezone.localdate().isoformat()
    assert ids(since=today, until=today) == [a2.pk, b1.pk, a1.pk]
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert ids(since=tomorrow) == []
    assert ids(until=(timezone.localdate() - timedelta(days=1)).isoformat()) == []


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"action": "audience.exploded"}, "action"),
        ({"target_type": "customer"}, "target_type"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-02-30"}, "until"),
        ({"since": "0001-01-01"}, "since"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "until"),
        ({"actor": "a\x00b"}, "actor"),
    ],
)
def test_an_unusable_filter_names_its_field(kw, field):
    with pytest.raises(audit.InvalidAuditFilter) as caught:
        audit.make_filter(**kw)
    assert caught.value.field == field


# --- CLI --------------------------------------------------------------------------------------


def test_cli_lists_filtered_entries_as_a_table_and_as_json():
    entry(actor=Actor.system("alice"), summary={"name": "VIP"})
    entry(actor=Actor.system("bob"), action="segment.created", target_type="segment")
    out = StringIO()
    call_command("audit", "list", "--actor", "alice", stdout=out)
    text = out.getvalue()
    assert "audience.created" in text and "name=VIP" in text and "segment.created" not in text
    out = StringIO()
    call_command("audit", "list", "--action", "segment.", "--json", stdout=out)
    rows = json.loads(out.getvalue())
    assert [(r["actor"], r["action"], r["target_type"]) for r in rows] == [
        ("bob", "segment.created", "segment")
    ]


def test_cli_names_the_option_that_is_wrong():
    with pytest.raises(CommandError, match="--since"):
        call_command("audit", "list", "--since", "not a date")
