"""Audience exports (docs/exports.md): every identifier type, the ad-platform layouts with their
normalisation and hashing, formula safety, roles, streaming without materialising the audience,
and scheduled exports written atomically on a fake clock.

Expected hashes are written out as literals, computed outside Tagbase (``printf '%s' VALUE |
sha256sum``) from the normalised string the platform's rule gives, never by calling the code
under test.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tagbase.accounts.models import Role
from tagbase.audiences import exports, services
from tagbase.audiences.models import Audience, ExportSchedule
from tagbase.audiences.tasks import enqueue_due_exports
from tagbase.customers.models import Card, CardStatus, Customer
from tagbase.customers.services import upsert_customers
from tagbase.testing import make_customer, make_customers, make_user, system_actor

pytestmark = pytest.mark.django_db
ACTOR = system_actor()

# sha256 of the normalised strings (lower-case hex), computed independently with sha256sum.
SHA_EMAIL = (
    "df6c9204dec1b4d1e56ac24eb9bb8908e79361219e84d98f8767dfa1abd2263e"  # ivan.petrov@mail.ru
)
SHA_PHONE_E164 = "694e8de862e4f3198b67f7a4aa9f4dfb123c5b78b0a72460ce882c405b111e63"  # +79123456789
SHA_PHONE_DIGITS = "dbae582ee1f37b15623829ece40b66a8eb5162337ab0a8b7cf1b86cb300391bc"  # 79123456789
# Meta's help-centre example "+44 844 412 4653": E.164 +448444124653, digits 448444124653.
SHA_UK_E164 = "11f9231a47ccfd680a60606f73702bc2c0fb065a7f55c482269e51d9f9e868ae"
SHA_UK_DIGITS = "dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383"


def loaded(**row: str) -> Customer:
    """A customer created through the real ingestion path (contacts normalised there)."""
    upsert_customers([row], actor=ACTOR)
    return Customer.objects.get(external_id=row["external_id"])


def audience_of(name: str, ids: list[int]) -> Audience:
    audience = services.create_audience(name, actor=ACTOR)
    if ids:
        services.add_customers_to_audience(audience, ids, actor=ACTOR, kind="cli")
    return audience


def rows(audience: Audience, export_format: str, **kwargs) -> list[list[str]]:
    return list(exports.member_rows(audience.pk, export_format, **kwargs))


def parse(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


# --- Ad-platform layouts: normalisation and hashing -------------------------------------------


def ivan() -> Customer:
    return loaded(external_id="E1", email="  Ivan.Petrov@Mail.RU ", phone="8 (912) 345-67-89")


def test_google_hashes_the_trimmed_lower_case_email_and_the_e164_phone_with_its_plus():
    audience = audience_of("Google", [ivan().pk])
    assert rows(audience, "google") == [["Email", "Phone"], [SHA_EMAIL, SHA_PHONE_E164]]


def test_meta_hashes_the_email_alike_and_the_phone_as_digits_with_the_country_code():
    audience = audience_of("Meta", [ivan().pk])
    assert rows(audience, "meta") == [["email", "phone"], [SHA_EMAIL, SHA_PHONE_DIGITS]]


def test_the_meta_help_centre_example_number_hashes_as_its_digits():
    uk = loaded(external_id="UK", phone="+44 844 412 4653")
    audience = audience_of("UK", [uk.pk])
    assert rows(audience, "meta")[1] == ["", SHA_UK_DIGITS]
    assert rows(audience, "google")[1] == ["", SHA_UK_E164]


def test_members_without_one_contact_get_an_empty_cell_and_without_both_are_left_out():
    only_mail = loaded(external_id="M", email="only@mail.ru")
    only_phone = loaded(external_id="P", phone="+79123456789")
    neither = loaded(external_id="N", phone="12", email="not an address")
    loaded(external_id="O", email="outsider@mail.ru")  # not a member
    audience = audience_of("Partial", [only_mail.pk, only_phone.pk, neither.pk])
    sha_only = "59cb543df46f0d29db1504fabb2d59dea56c647936156c5912688d911792e5e9"  # only@mail.ru
    assert rows(audience, "google") == [
        ["Email", "Phone"],
        [sha_only, ""],
        ["", SHA_PHONE_E164],
    ]


def test_a_stored_phone_that_is_not_e164_is_left_empty_rather_than_hashed():
    odd = make_customer(external_id="X", phone="89123456789", email="odd@mail.ru")
    audience = audience_of("Odd", [odd.pk])
    assert rows(audience, "meta")[1][1] == ""


def test_hashes_are_lower_case_hex_so_no_cell_can_start_like_a_formula():
    audience = audience_of("Hex", [ivan().pk])
    body = b"".join(exports.csv_chunks(rows(audience, "google")))
    assert body == f"Email,Phone\r\n{SHA_EMAIL},{SHA_PHONE_E164}\r\n".encode()


# --- Identifier exports ------------------------------------------------------------------------


def test_every_identifier_type_exports_one_column_under_its_name():
    a = loaded(external_id="ERP-1", email="a@mail.ru", phone="+79123456789")
    b = loaded(external_id="ERP-2")
    Card.objects.create(number="A100", customer=a, status=CardStatus.ACTIVE)
    Card.objects.create(number="A101", customer=a, status=CardStatus.BLOCKED)
    Card.objects.create(number="B200", customer=b, status=CardStatus.ACTIVE)
    audience = audience_of("Types", [a.pk, b.pk])
    assert rows(audience, "sc_id") == [["sc_id"], [str(a.pk)], [str(b.pk)]]
    assert rows(audience, "external_id") == [["external_id"], ["ERP-1"], ["ERP-2"]]
    assert rows(audience, "phone") == [["phone"], ["+79123456789"]]
    assert rows(audience, "email") == [["email"], ["a@mail.ru"]]
    assert rows(audience, "card") == [["card"], ["A100"], ["B200"]]


def test_cells_that_a_spreadsheet_would_run_get_an_apostrophe_in_every_format():
    values = ['=HYPERLINK("http://x")', "+1", "-5", "@SUM(A1)", "\tTAB", "\rCR", "plain"]
    ids = [make_customer(external_id=v).pk for v in values]
    audience = audience_of("Formulas", ids)
    body = b"".join(exports.csv_chunks(rows(audience, "external_id")))
    assert parse(body) == [
        ["external_id"],
        *[["'" + v] for v in values[:-1]],
        ["plain"],
    ]


def test_a_bom_is_written_only_when_asked():
    audience = audience_of("Bom", make_customers(1))
    assert b"".join(exports.csv_chunks(rows(audience, "sc_id"), bom=True)).startswith(
        b"\xef\xbb\xbfsc_id\r\n"
    )
    assert b"".join(exports.csv_chunks(rows(audience, "sc_id"))).startswith(b"sc_id\r\n")


def test_an_unknown_format_is_refused_naming_the_choices():
    with pytest.raises(exports.ExportError, match="google, meta"):
        exports.parse_format("passport")


# --- Streaming: nothing is materialised ----------------------------------------------------------


def test_rows_are_read_a_keyset_batch_at_a_time_and_only_as_far_as_consumed():
    ids = make_customers(7, email="same@mail.ru")
    audience = audience_of("Lazy", ids)
    stream = exports.member_rows(audience.pk, "google", batch=3)
    with CaptureQueriesContext(connection) as first:
        taken = [next(stream) for _ in range(3)]  # header + 2 members
    assert len(first.captured_queries) == 1 and "LIMIT" in first.captured_queries[0]["sql"]
    with CaptureQueriesContext(connection) as rest:
        taken += list(stream)
    assert len(taken) == 8
    assert len(rest.captured_queries) == 2  # the batches of 3 and 1 (a short batch ends it)


def test_csv_blocks_pull_rows_lazily():
    pulled = 0

    def source():
        nonlocal pulled
        for n in range(10_000):
            pulled += 1
            yield [str(n)]

    blocks = exports.csv_chunks(source(), chunk_chars=1000)
    first = next(blocks)
    assert 1000 <= len(first) < 1100
    assert pulled < 300  # only what one block needs, not the 10,000 rows


# --- Pages: roles and the dialog ----------------------------------------------------------------


def client_for(role: str) -> Client:
    client = Client()
    client.force_login(make_user(role))
    return client


def download(client: Client, audience: Audience, **query: str):
    return client.get(reverse("audiences:audience_export", args=[audience.pk]), query)


def test_a_marketer_downloads_a_google_list_with_its_header_and_no_bom():
    audience = audience_of("Page", [ivan().pk])
    response = download(client_for(Role.MARKETER), audience, format="google", bom="1")
    assert response.streaming
    assert response["Cache-Control"] == "no-store"
    assert f"audience-{audience.pk}-google.csv" in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == (
        f"Email,Phone\r\n{SHA_EMAIL},{SHA_PHONE_E164}\r\n".encode()
    )


def test_an_identifier_list_from_the_page_has_no_header_and_a_bom_when_asked():
    ids = make_customers(2)
    audience = audience_of("Ids page", ids)
    response = download(client_for(Role.ANALYST), audience, format="sc_id", bom="1")
    assert b"".join(response.streaming_content) == f"\ufeff{ids[0]}\r\n{ids[1]}\r\n".encode()


@pytest.mark.parametrize("export_format", ["google", "meta", "email", "phone"])
def test_analysts_may_not_download_personal_data_hashed_or_not(export_format):
    audience = audience_of("Private", [ivan().pk])
    assert download(client_for(Role.ANALYST), audience, format=export_format).status_code == 403


def export_select(page: str) -> str:
    start = page.index('id="export-type"')
    return page[start : page.index("</select>", start)]


def test_the_dialog_offers_ad_platforms_to_marketers_only():
    audience = audience_of("Dialog", [])
    url = reverse("audiences:audience_detail", args=[audience.pk])
    marketer = export_select(client_for(Role.MARKETER).get(url).content.decode())
    analyst = export_select(client_for(Role.ANALYST).get(url).content.decode())
    assert 'value="google"' in marketer and 'value="meta"' in marketer
    assert 'value="google"' not in analyst and 'value="email"' not in analyst
    assert 'value="sc_id"' in analyst


# --- The command ------------------------------------------------------------------------------


def test_the_command_writes_a_platform_file_atomically_and_says_how_many_rows(tmp_path):
    audience = audience_of("Cli", [ivan().pk, make_customer().pk])
    out = io.StringIO()
    target = tmp_path / "meta.csv"
    call_command("audience", "export", "Cli", "--format", "meta", "-o", str(target), stdout=out)
    assert target.read_bytes() == f"email,phone\r\n{SHA_EMAIL},{SHA_PHONE_DIGITS}\r\n".encode()
    assert f"Wrote 1 rows of audience {audience.name!r}" in out.getvalue()
    assert [p.name for p in tmp_path.iterdir()] == ["meta.csv"]


def test_the_command_streams_to_stdout():
    ids = make_customers(3)
    audience_of("Stdout", ids)
    out = io.StringIO()
    call_command("audience", "export", "Stdout", stdout=out)
    assert out.getvalue() == "sc_id\r\n" + "".join(f"{i}\r\n" for i in ids)


# --- Scheduled exports ------------------------------------------------------------------------


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_next_run_is_the_local_time_in_time_zone_on_the_right_day(settings):
    settings.TIME_ZONE = "Europe/Moscow"  # UTC+3, no daylight saving
    at = time(3, 0)
    # Sunday 1 March 2026, 10:00 UTC = 13:00 in Moscow: today's 03:00 has passed.
    now = moment("2026-03-01T10:00:00")
    assert exports.next_run_after("daily", at, None, now) == moment("2026-03-02T00:00:00")
    assert exports.next_run_after("daily", at, None, moment("2026-03-01T23:59:00")) == moment(
        "2026-03-02T00:00:00"
    )
    # Weekly on Monday (0) and on Sunday (6): Sunday's slot today has passed, so next week.
    assert exports.next_run_after("weekly", at, 0, now) == moment("2026-03-02T00:00:00")
    assert exports.next_run_after("weekly", at, 6, now) == moment("2026-03-08T00:00:00")


def test_a_weekly_schedule_needs_a_weekday():
    audience = audience_of("Weekly", [])
    with pytest.raises(exports.ExportError, match="weekday"):
        exports.create_export_schedule(
            audience, export_format="sc_id", frequency="weekly", at_time=time(3), actor=ACTOR
        )


def test_a_due_schedule_is_claimed_once_and_writes_its_file_atomically(tmp_path, settings):
    settings.TIME_ZONE = "UTC"
    settings.TAGBASE_EXPORT_DIR = tmp_path / "exports"
    audience = audience_of("VIP клиенты", [ivan().pk])
    schedule = exports.create_export_schedule(
        audience,
        export_format="google",
        frequency="daily",
        at_time=time(3, 0),
        actor=ACTOR,
        now=moment("2026-03-01T10:00:00"),
    )
    assert schedule.next_run_at == moment("2026-03-02T03:00:00")
    assert exports.claim_due_schedules(moment("2026-03-02T02:59:59")) == []
    # Two workers sweep at the slot: the first claims it, the second finds nothing due.
    assert exports.claim_due_schedules(moment("2026-03-02T03:00:05")) == [schedule.pk]
    assert exports.claim_due_schedules(moment("2026-03-02T03:00:05")) == []
    schedule.refresh_from_db()
    assert schedule.next_run_at == moment("2026-03-03T03:00:00")

    done = exports.run_scheduled_export(schedule.pk, now=moment("2026-03-02T03:00:07"))
    name = f"vip-клиенты-{audience.pk}_google_20260302T030007Z.csv"
    written = tmp_path / "exports" / name
    assert done is not None and done.last_file == str(written) and done.last_rows == 1
    assert done.last_error == ""
    assert written.read_bytes() == f"Email,Phone\r\n{SHA_EMAIL},{SHA_PHONE_E164}\r\n".encode()
    assert os.stat(written).st_mode & 0o777 == 0o600
    assert [p.name for p in written.parent.iterdir()] == [name]  # no temporary file left
    # The same moment again never overwrites: a second file beside it.
    again = exports.run_scheduled_export(schedule.pk, now=moment("2026-03-02T03:00:07"))
    assert again is not None and again.last_file.endswith("_20260302T030007Z-2.csv")


def test_slots_missed_while_no_worker_ran_collapse_into_one_run(settings):
    settings.TIME_ZONE = "UTC"
    audience = audience_of("Missed", [])
    schedule = exports.create_export_schedule(
        audience,
        export_format="sc_id",
        frequency="daily",
        at_time=time(3, 0),
        actor=ACTOR,
        now=moment("2026-03-01T10:00:00"),
    )
    assert exports.claim_due_schedules(moment("2026-03-05T12:00:00")) == [schedule.pk]
    schedule.refresh_from_db()
    assert schedule.next_run_at == moment("2026-03-06T03:00:00")


def test_a_failed_write_leaves_no_file_and_records_the_error(tmp_path, settings, monkeypatch):
    settings.TAGBASE_EXPORT_DIR = tmp_path / "exports"
    audience = audience_of("Fails", make_customers(2))
    schedule = exports.create_export_schedule(
        audience, export_format="sc_id", frequency="daily", at_time=time(3), actor=ACTOR
    )

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(exports.os, "replace", broken_replace)
    done = exports.run_scheduled_export(schedule.pk, now=moment("2026-03-02T03:00:00"))
    assert done is not None and done.last_error == "OSError: [Errno 28] No space left on device"
    assert done.last_file == "" and done.last_rows is None
    assert list((tmp_path / "exports").iterdir()) == []  # the temporary file was removed


def test_the_sweeper_hook_claims_and_runs_due_exports(tmp_path, settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    settings.TAGBASE_EXPORT_DIR = tmp_path / "exports"
    audience = audience_of("Hook", make_customers(3))
    schedule = exports.create_export_schedule(
        audience,
        export_format="sc_id",
        frequency="weekly",
        weekday=0,
        at_time=time(3),
        actor=ACTOR,
        now=moment("2026-03-01T10:00:00"),
    )
    assert enqueue_due_exports(moment("2026-03-09T00:00:00")) == [schedule.pk]
    schedule.refresh_from_db()
    assert schedule.last_rows == 3 and Path(schedule.last_file).exists()


def test_deleting_the_audience_deletes_its_schedules_but_not_its_files(tmp_path, settings):
    settings.TAGBASE_EXPORT_DIR = tmp_path / "exports"
    audience = audience_of("Gone", make_customers(1))
    schedule = exports.create_export_schedule(
        audience, export_format="sc_id", frequency="daily", at_time=time(3), actor=ACTOR
    )
    done = exports.run_scheduled_export(schedule.pk)
    assert done is not None
    services.delete_audience(audience, actor=ACTOR)
    assert not ExportSchedule.objects.exists()
    assert Path(done.last_file).exists()


def test_the_schedule_commands_add_list_and_delete(settings):
    settings.TIME_ZONE = "UTC"
    audience_of("Sched", [])
    out = io.StringIO()
    call_command(
        "audience", "schedule-export", "Sched", "--format", "meta", "--at", "04:30",
        "--weekly", "friday", stdout=out,
    )  # fmt: skip
    schedule = ExportSchedule.objects.get()
    assert (schedule.frequency, schedule.weekday, schedule.at_time) == ("weekly", 4, time(4, 30))
    assert "weekly on Friday at 04:30" in out.getvalue()
    listed = io.StringIO()
    call_command("audience", "export-schedules", "--json", stdout=listed)
    assert '"format": "meta"' in listed.getvalue()
    call_command("audience", "unschedule-export", str(schedule.pk), stdout=io.StringIO())
    assert not ExportSchedule.objects.exists()
    with pytest.raises(CommandError, match="does not exist"):
        call_command("audience", "unschedule-export", str(schedule.pk))
    with pytest.raises(CommandError, match="HH:MM"):
        call_command("audience", "schedule-export", "Sched", "--format", "meta", "--at", "25:00")
