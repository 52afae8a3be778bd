"""GET /audit: admins' sessions and audit-scope tokens only; filters; keyset pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tagbase.accounts import audit
from tagbase.accounts.actors import Actor
from tagbase.accounts.models import Role
from tagbase.audiences.services import create_audience, rename_audience

from .support import assert_error, send, session_client, token_client

pytestmark = pytest.mark.django_db
ALICE, BOB = Actor.system("alice"), Actor.system("bob")


def history() -> list[int]:
    """Three audience changes by two actors; the ids of every entry so far (logins made before
    included), oldest first."""
    vip = create_audience("VIP", actor=ALICE)
    create_audience("Churn", actor=BOB)
    rename_audience(vip, "VIP club", actor=ALICE)
    return [e.pk for e in audit.find_entries(audit.AuditFilter())][::-1]


def test_an_admin_reads_the_log_newest_first_with_every_field():
    admin = session_client(Role.ADMIN)  # its login is the first entry
    ids = history()
    assert len(ids) == 4
    body = send(admin, "GET", "/audit").json()
    assert [e["id"] for e in body["items"]] == ids[::-1]
    assert body["next_before"] is None
    latest = body["items"][0]
    assert latest["action"] == "audience.renamed"
    assert (latest["actor"], latest["actor_kind"], latest["target_type"]) == (
        "alice",
        "system",
        "audience",
    )
    assert latest["summary"] == {
        "name": "VIP club",
        "previous_name": "VIP",
        "description_changed": False,
    }
    assert {"at", "actor_user_id", "actor_token_id", "target_id"} <= set(latest)


def test_a_token_with_the_audit_scope_reads_it_and_its_own_use_is_recorded():
    history()
    client, token = token_client("audit", name="siem")
    body = send(client, "GET", "/audit?action=token.used").json()
    assert [(e["actor"], e["actor_token_id"]) for e in body["items"]] == [("token:siem", token.pk)]


@pytest.mark.parametrize("role", [Role.MARKETER, Role.ANALYST])
def test_other_roles_are_refused(role):
    history()
    assert_error(send(session_client(role), "GET", "/audit"), 403, "forbidden")


def test_a_token_without_the_audit_scope_is_refused():
    client, _ = token_client("read", "write", "import", "events")
    assert_error(send(client, "GET", "/audit"), 403, "missing_scope")


def test_nobody_is_refused():
    assert_error(send(Client(), "GET", "/audit"), 401, "not_authenticated")


def test_filters_by_actor_action_target_and_period():
    admin = session_client(Role.ADMIN)
    ids = history()

    def actions(query: str) -> list[str]:
        response = send(admin, "GET", f"/audit?{query}")
        assert response.status_code == 200, response.content
        return [(e["actor"], e["action"]) for e in response.json()["items"]]

    assert actions("actor=bob") == [("bob", "audience.created")]
    assert actions("action=audience.renamed") == [("alice", "audience.renamed")]
    assert actions("action=audience.&actor=alice") == [
        ("alice", "audience.renamed"),
        ("alice", "audience.created"),
    ]
    vip_id = audit.find_entries(audit.make_filter(actor="bob")).get().target_id
    assert actions(f"target_type=audience&target_id={vip_id}") == [("bob", "audience.created")]
    today = timezone.localdate()
    assert len(actions(f"since={today}&until={today}")) == len(ids) == 4
    assert actions(f"since={today + timedelta(days=1)}") == []
    assert actions(f"until={today - timedelta(days=1)}") == []


def test_pages_follow_next_before_without_skipping_or_repeating():
    admin = session_client(Role.ADMIN)
    ids = history()[::-1]  # newest first: four entries
    first = send(admin, "GET", "/audit?limit=3").json()
    assert [e["id"] for e in first["items"]] == ids[:3]
    assert first["next_before"] == ids[2]
    create_audience("Written meanwhile", actor=BOB)  # does not shift the next page
    second = send(admin, "GET", f"/audit?limit=3&before={first['next_before']}").json()
    assert [e["id"] for e in second["items"]] == ids[3:]
    assert second["next_before"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("action=audience.exploded", "action"),
        ("target_type=customer", "target_type"),
        ("since=yesterday", "since"),
        ("since=2026-12-02&until=2026-12-01", "until"),
        ("actor=a%00b", "actor"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("before=0", "before"),
    ],
)
def test_an_unusable_filter_is_a_422_naming_it(query, field):
    admin = session_client(Role.ADMIN)
    assert_error(send(admin, "GET", f"/audit?{query}"), 422, "validation_error", field)
