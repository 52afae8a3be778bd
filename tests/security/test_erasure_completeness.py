"""Erasure completeness (docs/privacy.md): a customer present everywhere Tagbase keeps data is
erased, then every text column of every table and every file under the data directory is
searched for their phone, e-mail, names, card numbers and partner id — none is found — while
another customer present in the same places keeps everything.

The search is not a list kept here: it introspects every installed model (Tagbase's and third
parties': the task queue, sessions, the audit log…) for character, text and JSON columns, and
walks every file under the data directory, reading each as the encodings an upload may have.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.db import models
from django.utils import timezone

from tagbase.accounts.actors import Actor
from tagbase.audiences.models import (
    Audience,
    Membership,
    Operation,
    OperationKind,
    RemovedMembership,
)
from tagbase.audiences.services import (
    CannotUndo,
    add_customers_to_audience,
    create_audience,
    remove_customers_from_audience,
    undo_operation,
)
from tagbase.campaigns import engine
from tagbase.campaigns.models import Entry, OutboxMessage, Passage, SegmentWatch, Token
from tagbase.campaigns.tests.builders import chain, make_campaign, node
from tagbase.customers import services as customers
from tagbase.customers.erasure import erasers
from tagbase.customers.models import Customer, Erasure
from tagbase.imports import services as imports
from tagbase.imports.models import ImportJob, ImportRow, ImportStatus
from tagbase.imports.tests.helpers import identity_holds, run_import
from tagbase.testing import system_actor

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


# --- The two customers ------------------------------------------------------------------------

ERASED = {
    "external_id": "erp-ZX-40917",
    "last_name": "Zaryadkina",
    "first_name": "Evlampia",
    "middle_name": "Serafimovna",
    "phone": "8 (916) 402-17-93",
    "email": "Evlampia.Zaryadkina@Example.org",
    "card": "7788 9900 1122 3344",
    "attributes": {"nickname": "Lampa"},
}
KEPT = {
    "external_id": "erp-KP-55120",
    "last_name": "Ostapchuk",
    "first_name": "Miroslav",
    "middle_name": "Bogdanovich",
    "phone": "+7 903 555-81-26",
    "email": "miroslav.ostapchuk@example.net",
    "card": "5566 7788 9900 1122",
    "attributes": {"nickname": "Mirek"},
}


def needles(person: dict) -> list[str]:
    """What must not be found after the erasure: every way the data was written."""
    digits = re.sub(r"\D", "", person["phone"])[-10:]
    card = person["card"]
    return [
        person["external_id"],
        person["last_name"],
        person["first_name"],
        person["middle_name"],
        person["email"].lower(),
        "+7" + digits,
        digits,
        person["phone"],
        card,
        card.replace(" ", ""),
        person["attributes"]["nickname"],
    ]


def make_person(person: dict) -> Customer:
    rows = [{k: v for k, v in person.items() if k != "attributes"}]
    rows[0].update({f"attr.{k}": v for k, v in person["attributes"].items()})
    report = customers.upsert_customers(rows, actor=ACTOR)
    assert report.failed == 0, report.errors
    customer = Customer.objects.get(external_id=person["external_id"])
    customers.load_receipts(
        [
            {"external_id": person["external_id"], "number": f"R-{person['external_id']}-{n}",
             "date": f"2026-11-0{n}T12:00:00Z", "amount": "150.00", "store": "Omsk 1"}
            for n in (1, 2)
        ],
        actor=ACTOR,
    )  # fmt: skip
    customers.record_events(
        [
            {
                "external_id": person["external_id"],
                "name": "app_login",
                "payload": {"email": person["email"], "device": person["last_name"] + "-phone"},
            }
        ],
        actor=ACTOR,
    )
    return customer


def build_world(erased: Customer, kept: Customer) -> dict:
    """Both customers in audiences, the removal ledger, three imports (finished, previewed,
    queued) with stored files, staged rows and rejected-rows reports, and a campaign (entries,
    passages, waiting tokens, outbox messages, a segment watch)."""
    a = create_audience("Erasure A", actor=ACTOR)
    b = create_audience("Erasure B", actor=ACTOR)
    c = create_audience("Erasure C", actor=ACTOR)
    add_customers_to_audience(a, [erased.pk, kept.pk], actor=ACTOR, kind="api")
    add_customers_to_audience(b, [erased.pk], actor=ACTOR, kind="api")
    add_customers_to_audience(c, [erased.pk, kept.pk], actor=ACTOR, kind="api")
    earlier_removal = remove_customers_from_audience(
        c, [erased.pk, kept.pk], actor=ACTOR, kind="api"
    )  # both now in the ledger
    phone_file = (
        "phone\n"
        f"{ERASED['phone']}\n"  # added
        f"{KEPT['phone']}\n"
        "+7 999 000-00-01\n"  # not found
        f"+7{needles(ERASED)[6]}\n"  # duplicate of the first
        f"{ERASED['phone']} доб. 5\n"  # invalid: an extension; mentions the phone
        f"{KEPT['phone']} доб. 7\n"
    )
    finished = run_import(phone_file, id_type="phone", audience_id=a.pk)
    assert finished.status == ImportStatus.SUCCEEDED_WITH_REJECTIONS
    email_file = (
        f"{ERASED['email']};Erasure D\r\n"
        f"{KEPT['email']};Erasure D\r\n"
        f"{ERASED['email'].upper()};Erasure D\r\n"  # duplicate
        f'"{ERASED["last_name"]}, {ERASED["first_name"]} <{ERASED["email"]}>";Erasure D\r\n'
    )
    previewed = run_import(email_file, id_type="email", mode="per_row", dry_run=True)
    assert previewed.status == ImportStatus.PREVIEWED
    card_file = f"{ERASED['card']}\n{KEPT['card']}\n".encode("utf-16")
    queued = imports.start_import(
        [card_file],
        "cards.csv",
        imports.ImportRequest(id_type="card", audience_id=b.pk),
        actor=ACTOR,
        enqueue=False,
    )
    campaign = make_campaign(
        chain(
            node("t", "customer_registered"),
            node("mail", "send_message", channel="email", subject="Hello {{ customer.first_name }}",
                 template="Dear {{ customer.first_name }} {{ customer.last_name }}, welcome."),
            node("sms", "send_message", channel="sms", template="Hi {{ customer.first_name }}"),
            node("w", "wait", amount=3, unit="days"),
        )
    )  # fmt: skip
    now = timezone.now()
    engine.enter(campaign.pk, [erased.pk, kept.pk], now=now)
    engine.run_due(campaign.pk, now=now)
    SegmentWatch.objects.create(campaign=campaign, customer=erased)
    SegmentWatch.objects.create(campaign=campaign, customer=kept)
    return {
        "audiences": (a, b, c),
        "earlier_removal": earlier_removal,
        "jobs": (finished, previewed, queued),
        "campaign": campaign,
    }


# --- Searching everything ---------------------------------------------------------------------

TEXT_FIELDS = (models.CharField, models.TextField, models.JSONField)


def database_hits(words: list[str]) -> set[str]:
    """``Model.field`` of every row, in every installed model, whose text holds one of the words
    (case-insensitively; JSON as written, non-ASCII unescaped)."""
    lowered = [w.lower() for w in words]
    hits: set[str] = set()
    for model in apps.get_models(include_auto_created=True):
        fields = [f for f in model._meta.concrete_fields if isinstance(f, TEXT_FIELDS) and f.column]
        if not fields:
            continue
        for row in model._base_manager.values_list(*(f.attname for f in fields)).iterator():
            for field, value in zip(fields, row, strict=True):
                if value is None:
                    continue
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                if any(w in text.lower() for w in lowered):
                    hits.add(f"{model._meta.label}.{field.name}")
    return hits


def data_dir() -> Path:
    return Path(settings.TAGBASE_IMPORT_DIR).parent


def file_hits(words: list[str]) -> set[str]:
    """Every file under the data directory that holds one of the words, read as UTF-8,
    Windows-1251 and UTF-16, also with the digits alone (a phone written with separators)."""
    lowered = [w.lower() for w in words]
    digit_words = [w for w in lowered if w.isdigit()]
    hits: set[str] = set()
    for path in sorted(p for p in data_dir().rglob("*") if p.is_file()):
        raw = path.read_bytes()
        for encoding in ("utf-8", "cp1251", "utf-16"):
            text = raw.decode(encoding, "ignore").lower()
            digits = [re.sub(r"\D", "", line) for line in text.splitlines()]
            if any(w in text for w in lowered) or any(
                d in line for d in digit_words for line in digits
            ):
                hits.add(str(path.relative_to(data_dir())))
    return hits


# --- The test ---------------------------------------------------------------------------------


def test_an_erased_customer_is_found_nowhere_and_the_other_customer_keeps_everything():
    erased, kept = make_person(ERASED), make_person(KEPT)
    world = build_world(erased, kept)
    gone, stays = needles(ERASED), needles(KEPT)
    # The search finds what is there (else "nothing found" below would prove nothing).
    before = database_hits(gone)
    assert {
        "customers.Customer.last_name",
        "customers.Customer.phone",
        "customers.Customer.email_raw",
        "customers.Customer.attributes",
        "customers.Card.number",
        "customers.Event.payload",
        "imports.ImportRow.raw",
        "campaigns.OutboxMessage.to",
        "campaigns.OutboxMessage.body",
    } <= before, before
    assert len(file_hits(gone)) >= 5  # three uploads, two reports
    kept_files_before = file_hits(stays)
    kept_rows_before = database_hits(stays)
    counts_before = {a.pk: Audience.objects.get(pk=a.pk).member_count for a in world["audiences"]}
    ops_before = Operation.objects.count()

    result = customers.erase_customer(erased.pk, actor=system_actor())

    assert not result.already_erased
    assert database_hits(gone) == set()
    assert file_hits(gone) == set()
    # The other customer keeps every row and every file line.
    assert database_hits(stays) == kept_rows_before
    assert file_hits(stays) == kept_files_before
    assert Customer.objects.filter(pk=kept.pk).exists()
    assert kept.cards.count() == 1 and kept.receipts.count() == 2 and kept.events.count() == 1
    assert Entry.objects.filter(customer_id=kept.pk).exists()
    assert Passage.objects.filter(customer_id=kept.pk).exists()
    assert Token.objects.filter(customer_id=kept.pk).exists()
    assert SegmentWatch.objects.filter(customer_id=kept.pk).exists()
    assert OutboxMessage.objects.filter(customer_id=kept.pk).count() == 2
    # Nothing of the erased customer is left but their id in the history.
    assert not Customer.objects.filter(pk=erased.pk).exists()
    for model in (Entry, Passage, Token, SegmentWatch, Membership):
        assert not model.objects.filter(customer_id=erased.pk).exists(), model
    masked = OutboxMessage.objects.filter(customer__isnull=True)
    assert masked.count() == 2
    assert set(masked.values_list("to", "body", "subject")) == {("", "", "")}
    # Audiences: one recorded, non-undoable erasure operation per audience the customer was in;
    # counts exact (also checked after every test by conftest).
    a, b, c = world["audiences"]
    erasures = Operation.objects.filter(kind=OperationKind.ERASURE).order_by("audience_id")
    assert [(op.audience_id, op.removed) for op in erasures] == [(a.pk, 1), (b.pk, 1)]
    assert Operation.objects.count() == ops_before + 2
    for audience in (a, b):
        audience.refresh_from_db()
        assert audience.member_count == counts_before[audience.pk] - 1
    with pytest.raises(CannotUndo):
        undo_operation(erasures[0], actor=ACTOR)
    # The ledger keeps the id only; undoing an earlier removal does not bring them back.
    assert RemovedMembership.objects.filter(customer_id=erased.pk).count() == 3
    undo_operation(world["earlier_removal"], actor=ACTOR)
    assert set(Membership.objects.filter(audience=c).values_list("customer_id", flat=True)) == {
        kept.pk
    }
    # Imports: the jobs keep their counts and identity; lines keep their numbers.
    finished, previewed, queued = (ImportJob.objects.get(pk=j.pk) for j in world["jobs"])
    assert identity_holds(finished)
    masked_rows = ImportRow.objects.filter(job=previewed, raw__isnull=True, value__isnull=True)
    assert masked_rows.count() == 3
    report = (Path(settings.TAGBASE_IMPORT_DIR) / finished.rejects_name).read_text("utf-8")
    assert report.splitlines()[1].startswith("4,")  # not found (line 4) stays, line 5 and 6 gone
    assert [r.split(",")[0] for r in report.splitlines()[1:]] == ["4", "7"]
    stored = (Path(settings.TAGBASE_IMPORT_DIR) / finished.stored_name).read_text("utf-8")
    assert stored.split("\n")[1] == "" and stored.split("\n")[2] == KEPT["phone"]
    cards = (Path(settings.TAGBASE_IMPORT_DIR) / queued.stored_name).read_text("utf-16")
    assert cards == f"\n{KEPT['card']}\n"  # still UTF-16 with its BOM; line 1 emptied
    # The record: who, when, what — numbers only.
    record = Erasure.objects.get(sc_id=erased.pk)
    assert record.actor_label == "test"
    assert record.counts["audiences"]["memberships_removed"] == 2
    assert record.counts["imports"]["imports"] == 3
    assert record.counts["campaigns"]["messages_masked"] == 2
    assert record.counts["customers"]["cards_deleted"] == 1


def test_erasing_twice_does_nothing_the_second_time_and_says_so():
    erased = make_person(ERASED)
    audience = create_audience("Once", actor=ACTOR)
    add_customers_to_audience(audience, [erased.pk], actor=ACTOR, kind="api")
    first = customers.erase_customer(erased.pk, actor=system_actor())
    operations = Operation.objects.count()
    again = customers.erase_customer(erased.pk, actor=Actor.system("someone else"))
    assert again.already_erased and again.erasure.pk == first.erasure.pk
    assert again.erasure.actor_label == "test"
    assert Operation.objects.count() == operations
    assert Erasure.objects.count() == 1


def test_an_id_that_never_was_a_customer_is_not_found():
    with pytest.raises(customers.CustomerNotFound):
        customers.erase_customer(987_654_321, actor=system_actor())
    assert not Erasure.objects.exists()


def test_a_repeat_with_the_same_idempotency_key_returns_the_first_answer():
    one, two = make_person(ERASED), make_person(KEPT)
    first = customers.erase_customer(one.pk, actor=ACTOR, idempotency_key="k-1")
    replay = customers.erase_customer(one.pk, actor=ACTOR, idempotency_key="k-1")
    assert (replay.erasure.pk, replay.already_erased) == (first.erasure.pk, False)
    with pytest.raises(customers.ErasureIdempotencyConflict):
        customers.erase_customer(two.pk, actor=ACTOR, idempotency_key="k-1")
    assert Customer.objects.filter(pk=two.pk).exists()


def test_every_app_that_names_customers_registered_an_eraser():
    """A model with a foreign key to Customer or a ``customer_id`` column belongs to an app that
    erases its own data: a new app cannot keep customer data that erasure silently forgets."""
    naming = {
        model._meta.app_label
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if (field.is_relation and field.related_model is Customer) or field.column == "customer_id"
    }
    assert naming >= {"customers", "audiences", "imports", "campaigns"}
    assert naming - {"customers"} <= {eraser.app for eraser in erasers()}


@pytest.mark.django_db(transaction=True)
def test_on_sqlite_the_erased_bytes_leave_the_database_file_and_its_log():
    """Deleted rows linger in a database file's free space unless overwritten: the erasure runs
    with SQLite's secure_delete and empties the write-ahead log after it commits."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL reclaims freed space by VACUUM (docs/privacy.md)")
    erased = make_person(ERASED)
    make_person(KEPT)
    files = [Path(connection.settings_dict["NAME"])]
    files.append(files[0].with_name(files[0].name + "-wal"))

    def raw() -> bytes:
        return b"".join(f.read_bytes() for f in files if f.exists())

    with connection.cursor() as cur:
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    email = ERASED["email"].lower().encode()
    assert email in raw() and KEPT["email"].encode() in raw()
    customers.erase_customer(erased.pk, actor=system_actor())
    assert email not in raw()
    assert ERASED["last_name"].encode() not in raw()
    assert KEPT["email"].encode() in raw()
