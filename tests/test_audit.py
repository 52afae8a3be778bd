"""The audit log across the apps: every recorded use case, run for real, appends exactly the
entries docs/audit.md lists, once, with the right actor; and a journey over customers' phones,
e-mail addresses and external ids leaves none of them — nor file names, file lines, rule
values or message texts — anywhere in the log."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tagbase.accounts.actors import Actor
from tagbase.accounts.models import AuditEntry, Role
from tagbase.accounts.services import create_api_token, revoke_api_token
from tagbase.audiences import services as audiences
from tagbase.campaigns import services as campaigns
from tagbase.campaigns.tests.builders import chain, node
from tagbase.imports import pipeline as import_pipeline
from tagbase.imports import services as imports
from tagbase.segments import pipeline as segment_pipeline
from tagbase.segments import services as segments
from tagbase.sets import pipeline as set_pipeline
from tagbase.sets import services as sets
from tagbase.testing import PASSWORD, make_customer, make_user

pytestmark = pytest.mark.django_db

# Personal data the journey handles; none of it may reach the log.
PEOPLE = [
    {
        "sc_id": 918273641,
        "external_id": "EXT-ZINAIDA-7731",
        "first_name": "Zinaida",
        "last_name": "Secretova",
        "phone": "+79123456781",
        "email": "zinaida.secretova@example.org",
        "city": "Pskovgrad",
    },
    {
        "sc_id": 918273642,
        "external_id": "EXT-PYOTR-5512",
        "first_name": "Pyotr",
        "last_name": "Hiddenov",
        "phone": "+79123456782",
        "email": "pyotr.hiddenov@example.org",
        "city": "Pskovgrad",
    },
    {
        "sc_id": 918273643,
        "external_id": "EXT-OLGA-9034",
        "first_name": "Olga",
        "last_name": "Privatnaya",
        "phone": "+79123456783",
        "email": "olga.privatnaya@example.org",
        "city": "Omsk",
    },
]
FILE_NAME = "Secretova_Zinaida_phones.csv"
FILE_LINES = ["8 912 345 67 81", "+7 (912) 345-67-82", "+79990001122", "not-a-phone"]
MESSAGE = "Dear Zinaida Secretova, your card EXT-ZINAIDA-7731 is ready."
SECRETS = [
    *(str(v) for person in PEOPLE for v in person.values()),
    "79123456781",
    "9123456782",
    *FILE_LINES,
    FILE_NAME,
    "Secretova",
    MESSAGE,
    "hunter2-secret",
]


class Log:
    """The entries appended since the last look."""

    def __init__(self) -> None:
        self.mark = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
        self.seen = 0

    def new(self) -> list[AuditEntry]:
        rows = list(AuditEntry.objects.filter(pk__gt=self.mark).order_by("id"))
        if rows:
            self.mark = rows[-1].pk
        self.seen += len(rows)
        return rows

    def expect(self, actor: str, *actions: str) -> list[AuditEntry]:
        """Exactly these actions were appended, in this order, each by ``actor``."""
        rows = self.new()
        assert [(e.action, e.actor_label) for e in rows] == [(a, actor) for a in actions]
        return rows


def test_every_use_case_records_its_entries_once_with_its_actor_and_no_personal_data():
    for person in PEOPLE:
        make_customer(**person)
    admin_user, marketer_user = make_user(Role.ADMIN), make_user(Role.MARKETER)
    admin, marketer = Actor.of_user(admin_user), Actor.of_user(marketer_user)
    me = marketer.label
    log = Log()

    # Tokens, and a partner system adding customers by e-mail through the API.
    token, secret = create_api_token("Warehouse", ["read", "write"], actor=admin)
    (made,) = log.expect(admin.label, "token.created")
    assert (made.target_type, made.target_id) == ("token", token.pk)

    vip = audiences.create_audience("VIP", actor=marketer)
    (made,) = log.expect(me, "audience.created")
    assert (made.target_type, made.target_id, made.summary) == ("audience", vip.pk, {"name": "VIP"})
    vip = audiences.rename_audience(vip, "VIP club", actor=marketer, description="for Zinaida")
    (renamed,) = log.expect(me, "audience.renamed")
    assert renamed.summary == {
        "name": "VIP club",
        "previous_name": "VIP",
        "description_changed": True,
    }
    audiences.set_audience_member_ttl(vip, 30, actor=marketer)
    log.expect(me, "audience.ttl_changed")

    partner = Client(headers={"Authorization": f"Bearer {secret}"})
    emails = [p["email"] for p in PEOPLE[:2]] + ["nobody@example.org"]
    response = partner.post(
        f"/api/v1/audiences/{vip.pk}/members/add",
        {"id_type": "email", "ids": emails},
        "application/json",
    )
    assert response.status_code == 200, response.content
    used, added = log.expect("token:Warehouse", "token.used", "operation.add")
    assert (used.actor_kind, used.actor_token_id, added.target_id) == ("token", token.pk, vip.pk)
    assert added.summary == {
        "operation": response.json()["id"],
        "kind": "api",
        "name": "VIP club",
        "requested": 2,
        "added": 2,
        "not_found": 1,
    }

    # A manual remove, and its undo.
    op = audiences.remove_customers_from_audience(
        vip, [PEOPLE[0]["sc_id"]], actor=marketer, kind="ui"
    )
    (removed,) = log.expect(me, "operation.remove")
    assert removed.summary["removed"] == 1
    undo = audiences.undo_operation(op, actor=marketer)
    (undone,) = log.expect(me, "operation.undo")
    assert (undone.summary["operation"], undone.summary["undoes"]) == (undo.pk, op.pk)

    # Imports: by phone into a new audience, a preview committed, undo, cancel.
    request = imports.ImportRequest(id_type="phone", audience_name="Imported")
    job = imports.start_import(
        ["\n".join(FILE_LINES).encode()], FILE_NAME, request, actor=marketer, enqueue=False
    )
    (started,) = log.expect(me, "import.started")
    assert (started.target_type, started.target_id) == ("import", job.pk)
    job = import_pipeline.run_import_job(job.pk, owner="test")
    assert job is not None and job.added == 2
    _, _, applied = log.expect(me, "audience.created", "operation.add", "import.applied")
    assert applied.summary["added"] == 2 and applied.summary["rejected"] == 2

    preview_request = imports.ImportRequest(id_type="phone", audience_id=vip.pk, dry_run=True)
    preview = imports.start_import(
        [PEOPLE[2]["phone"].encode()], FILE_NAME, preview_request, actor=marketer, enqueue=False
    )
    import_pipeline.run_import_job(preview.pk, owner="test")
    log.expect(me, "import.started")  # a preview changes nothing: nothing more recorded
    imports.commit_import(preview, actor=marketer, enqueue=False)
    log.expect(me, "import.committed")
    import_pipeline.run_import_job(preview.pk, owner="test")
    log.expect(me, "operation.add", "import.applied")
    imports.undo_import(job, actor=admin)
    log.expect(admin.label, "operation.undo", "import.undone")

    waiting = imports.start_import(
        [b"1\n"],
        FILE_NAME,
        imports.ImportRequest(audience_id=vip.pk),
        actor=marketer,
        enqueue=False,
    )
    imports.cancel_import(waiting, actor=marketer)
    imports.cancel_import(waiting, actor=marketer)  # already cancelled: nothing more
    log.expect(me, "import.started", "import.cancelled")

    # Segments: the rule names a city; the log keeps that the rule changed, not what it says.
    rule = {"op": "and", "rules": [{"field": "customer.city", "operator": "eq", "value": "Omsk"}]}
    segment = segments.create_segment("Siberia", rule, actor=marketer)
    log.expect(me, "segment.created")
    other_rule = {
        "op": "and",
        "rules": [{"field": "customer.city", "operator": "eq", "value": PEOPLE[0]["city"]}],
    }
    segment = segments.update_segment(segment, actor=marketer, name="North", rules=other_rule)
    (updated,) = log.expect(me, "segment.updated")
    assert updated.summary == {
        "name": "North",
        "renamed": True,
        "rules_changed": True,
        "description_changed": False,
    }
    seg_job = segments.include_in_audience(
        segment, action="add", actor=marketer, audience_id=vip.pk, enqueue=False
    )
    (included,) = log.expect(me, "segment.included")
    assert (included.summary["job"], included.summary["audience_id"]) == (seg_job.pk, vip.pk)
    segment_pipeline.run_segment_job(seg_job.pk)
    (seg_op,) = log.expect(me, "operation.add")
    assert seg_op.summary["kind"] == "segment"
    segments.delete_segment(segment, actor=marketer)
    log.expect(me, "segment.deleted")

    # Campaigns: the message text names a customer; the log keeps only that the graph changed.
    graph = chain(
        node("reg", "customer_registered"),
        node("mail", "send_message", channel="email", subject="Hello", template=MESSAGE),
    )
    campaign = campaigns.create_campaign("Welcome", graph, actor=marketer)
    log.expect(me, "campaign.created")
    graph["nodes"][1]["params"]["subject"] = "Hello again"
    campaign = campaigns.update_campaign(campaign, actor=marketer, graph=graph)
    (saved,) = log.expect(me, "campaign.updated")
    assert saved.summary == {
        "name": "Welcome",
        "version": 2,
        "renamed": False,
        "graph_changed": True,
    }
    campaigns.activate_campaign(campaign, actor=marketer)
    campaigns.activate_campaign(campaign, actor=marketer)  # already active: nothing more
    campaigns.suspend_campaign(campaign, actor=marketer)
    campaigns.deactivate_campaign(campaign, actor=marketer)
    log.expect(me, "campaign.activated", "campaign.suspended", "campaign.deactivated")
    campaigns.delete_campaign(campaign, actor=admin)
    log.expect(admin.label, "campaign.deleted")

    # A set operation into a new audience, run by the worker.
    expression = {"op": "union", "left": {"audience": vip.pk}, "right": {"audience": vip.pk}}
    set_job = sets.combine(expression, actor=marketer, new_audience_name="Union", enqueue=False)
    _, combined = log.expect(me, "audience.created", "set.combined")
    assert (combined.target_id, combined.summary["job"]) == (set_job.audience_id, set_job.pk)
    set_pipeline.run_set_job(set_job.pk)
    (set_op,) = log.expect(me, "operation.add")
    assert set_op.summary["kind"] == "set"

    # Expiry removes VIP club's members added since its time-to-live was set, as "expiry".
    later = timezone.now() + timedelta(days=31)
    expired = audiences.expire_due_memberships(later)
    rows = log.expect("expiry", *["operation.remove"] * len(expired))
    assert rows and {e.summary["kind"] for e in rows} == {"expiry"}

    audiences.delete_audience(vip, actor=admin)
    (deleted,) = log.expect(admin.label, "audience.deleted")
    assert deleted.summary["name"] == "VIP club"
    revoke_api_token(token, actor=admin)
    log.expect(admin.label, "token.revoked")

    # Logins: a customer's e-mail typed as the user name, a phone as the password.
    Client().post("/login/", {"username": PEOPLE[0]["email"], "password": PEOPLE[0]["phone"]})
    log.expect("anonymous", "user.login_failed")
    Client().post("/login/", {"username": marketer_user.username, "password": "hunter2-secret"})
    log.expect("anonymous", "user.login_failed")
    assert Client().login(username=marketer_user.username, password=PASSWORD)
    log.expect(me, "user.logged_in")

    assert log.new() == []
    _assert_no_personal_data(log.seen)


def _assert_no_personal_data(expected_entries: int) -> None:
    customer_ids = {p["sc_id"] for p in PEOPLE}
    entries = list(AuditEntry.objects.all())
    assert len(entries) == expected_entries  # every entry of the journey is scanned
    for e in entries:
        text = json.dumps(
            [e.actor_label, e.action, e.target_type, e.target_id, e.summary], ensure_ascii=False
        )
        leaked = [s for s in SECRETS if s in text]
        assert leaked == [], f"entry {e.pk} ({e.action}) holds {leaked}: {text}"
        assert e.target_id not in customer_ids
