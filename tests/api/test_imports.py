"""File imports through the API: upload, the report, list, commit, cancel, undo, rejected rows.

No worker runs in tests: a test runs the pipeline itself with ``run`` where a worker would.
Refusals (validation, size, permissions, idempotency) are in the test_imports_*.py files.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse
from django.test import Client

from tagbase.audiences.models import Audience, Membership
from tagbase.audiences.services import add_customers_to_audience, create_audience
from tagbase.imports import queries, services
from tagbase.imports.models import ImportJob
from tagbase.imports.pipeline import run_import_job
from tagbase.imports.schemas import ImportAudienceOut, ImportOut
from tagbase.testing import make_customer, make_customers, system_actor

from .support import API, assert_error, token_client

pytestmark = pytest.mark.django_db


# --- Helpers (also used by the other test_imports_*.py files) --------------------------------


def upload(
    client: Client,
    data: bytes | str,
    *,
    name: str = "audience.csv",
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> HttpResponse:
    """POST /imports with ``data`` as the file; id_type defaults to sc_id; a field given as
    None is left out of the form."""
    raw = data.encode() if isinstance(data, str) else data
    form = {"id_type": "sc_id", **fields}
    form = {key: value for key, value in form.items() if value is not None}
    form["file"] = SimpleUploadedFile(name, raw, "text/csv")
    return client.post(f"{API}/imports", form, headers=headers or {})


def run(job_id: int) -> ImportJob:
    """What a worker would do: run the job to its next resting state."""
    done = run_import_job(job_id, owner="test")
    assert done is not None
    return done


def importer() -> Client:
    """A partner system allowed to import and to read the reports."""
    client, _ = token_client("import", "read")
    return client


def identity_holds(report: dict[str, Any]) -> bool:
    parts = ("blank", "invalid", "duplicate_in_file", "not_found", "ambiguous")
    parts += ("already_member", "added", "not_member", "removed")
    return report["rows_read"] == sum(report[key] for key in parts)


def members(audience_id: int) -> set[int]:
    return set(
        Membership.objects.filter(audience_id=audience_id).values_list("customer_id", flat=True)
    )


# --- Upload -----------------------------------------------------------------------------------


def test_an_upload_answers_202_with_the_queued_job_and_its_links():
    a, b = make_customers(2)
    response = upload(importer(), f"{a}\n{b}\n", audience="Summer VIP", name="june.csv")
    assert response.status_code == 202, response.content
    body = response.json()
    job = ImportJob.objects.get()
    assert body["job_id"] == job.pk
    assert (body["status"], body["mode"], body["action"], body["identifier_type"]) == (
        "queued", "single", "add", "sc_id",
    )  # fmt: skip
    assert (body["audience"], body["audience_id"], body["dry_run"]) == ("Summer VIP", None, False)
    assert (body["file_name"], body["size_bytes"], body["source"]) == (
        "june.csv",
        len(f"{a}\n{b}\n"),
        "api",
    )
    assert body["created_by"] == "token:erp"
    assert body["links"] == {
        "self": f"{API}/imports/{job.pk}",
        "rejects": None,
        "commit": None,
        "cancel": f"{API}/imports/{job.pk}/cancel",
        "undo": None,
    }
    assert not Audience.objects.exists()  # a new audience is created when the import applies


def test_the_upload_is_stored_under_a_generated_name_with_its_sha256(settings):
    response = upload(importer(), "1\n", audience="A", name="../../etc/passwd.csv")
    body = response.json()
    job = ImportJob.objects.get(pk=body["job_id"])
    assert body["file_name"] == "passwd.csv"
    stored = list(settings.TAGBASE_IMPORT_DIR.iterdir())
    assert [p.name for p in stored] == [job.stored_name]
    assert stored[0].read_bytes() == b"1\n"
    assert body["sha256"] == "4355a46b19d348dc2f57c046f8ef63d4538ebb936000f3c9ee954a27460dd865"


def test_an_existing_audience_is_chosen_by_id_or_by_name_in_any_case():
    audience = create_audience("Summer VIP", actor=system_actor())
    client = importer()
    by_id = upload(client, "1\n", audience=str(audience.pk)).json()
    by_name = upload(client, "1\n", audience="  summer vip ").json()
    assert (by_id["audience_id"], by_id["audience"]) == (audience.pk, "Summer VIP")
    assert (by_name["audience_id"], by_name["audience"]) == (audience.pk, "Summer VIP")


def test_audience_name_names_an_audience_made_of_digits():
    audience = create_audience("2024", actor=system_actor())
    body = upload(importer(), "1\n", audience_name="2024").json()
    assert (body["audience_id"], body["audience"]) == (audience.pk, "2024")


def test_the_options_reach_the_job():
    body = upload(
        importer(),
        "a@example.com\n",
        mode="per_row",
        action="remove",
        id_type="email",
        dry_run="true",
        encoding="cp1251",
        delimiter="tab",
    ).json()
    job = ImportJob.objects.get(pk=body["job_id"])
    assert (job.mode, job.action, job.id_type, job.dry_run) == ("per_row", "remove", "email", True)
    assert (job.encoding_requested, job.delimiter_requested) == ("cp1251", "tab")
    assert (body["audience"], body["audience_id"]) == (None, None)
    assert (body["not_member"], body["removed"], body["added"]) == (0, 0, 0)


def test_a_marketer_session_can_import_and_is_recorded_as_the_user():
    from .support import session_client

    response = upload(session_client(), "1\n", audience="From the UI")
    assert response.status_code == 202
    job = ImportJob.objects.get()
    assert response.json()["created_by"] == job.created_by.username


# --- The whole journey ------------------------------------------------------------------------


def test_a_dry_run_is_previewed_then_committed_applied_reported_and_undone():
    a, b, c = make_customers(3)
    audience = create_audience("Summer VIP", actor=system_actor())
    add_customers_to_audience(audience, [c], actor=system_actor(), kind="cli")
    data = f"{a}\n{b}\n{c}\n\n{a}\n999999999\nabc\n"
    client = importer()

    created = upload(client, data, audience="Summer VIP", dry_run="true")
    assert created.status_code == 202
    job_id = created.json()["job_id"]

    assert run(job_id).status == "previewed"
    preview = client.get(f"{API}/imports/{job_id}").json()
    assert preview["status"] == "previewed" and preview["progress"] == 100
    counts = {k: preview[k] for k in ("rows_read", "blank", "invalid", "duplicate_in_file")}
    assert counts == {"rows_read": 7, "blank": 1, "invalid": 1, "duplicate_in_file": 1}
    assert (preview["not_found"], preview["ambiguous"]) == (1, 0)
    assert (preview["already_member"], preview["added"]) == (1, 2)
    assert preview["invalid_by_reason"] == {"not_a_number": 1}
    assert identity_holds(preview)
    assert preview["links"]["commit"] == f"{API}/imports/{job_id}/commit"
    assert members(audience.pk) == {c}  # a preview applies nothing

    committed = client.post(f"{API}/imports/{job_id}/commit")
    assert committed.status_code == 202
    assert committed.json()["status"] == "applying" and committed.json()["dry_run"] is False

    run(job_id)
    final = client.get(f"{API}/imports/{job_id}").json()
    assert final["status"] == "succeeded_with_rejections"
    assert (final["already_member"], final["added"], final["rejected_rows"]) == (1, 2, 3)
    assert identity_holds(final)
    assert len(final["operations"]) == 1 and final["finished_at"] is not None
    assert final["links"]["undo"] == f"{API}/imports/{job_id}/undo"
    assert final["links"]["cancel"] is None and final["links"]["commit"] is None
    assert members(audience.pk) == {a, b, c}

    rejects = client.get(f"{API}/imports/{job_id}/rejects.csv")
    assert rejects.status_code == 200
    assert rejects["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(b"".join(rejects.streaming_content).decode())))
    assert rows[0] == ["line", "raw_value", "reason_code", "message"]
    assert [r[:3] for r in rows[1:]] == [
        ["5", str(a), "duplicate_in_file"],
        ["6", "999999999", "not_found"],
        ["7", "abc", "not_a_number"],
    ]

    undone = client.post(f"{API}/imports/{job_id}/undo")
    assert undone.status_code == 200
    assert undone.json()["undone"] is True and undone.json()["links"]["undo"] is None
    assert members(audience.pk) == {c}  # the member from before the import stays
    assert_error(client.post(f"{API}/imports/{job_id}/undo"), 409, "cannot_undo")


def test_a_per_row_import_creates_the_audiences_named_in_the_file():
    a, b = make_customers(2)
    client = importer()
    job_id = upload(client, f"{a}; Alpha\n{b}; Beta\n", mode="per_row").json()["job_id"]
    run(job_id)
    report = client.get(f"{API}/imports/{job_id}").json()
    assert report["status"] == "succeeded" and sorted(report["audiences_created"]) == [
        "Alpha",
        "Beta",
    ]
    assert members(Audience.objects.get(name="Alpha").pk) == {a}
    assert len(report["operations"]) == 2


def test_a_remove_import_reports_removed_and_not_member():
    a, b = make_customers(2)
    audience = create_audience("Leaving", actor=system_actor())
    add_customers_to_audience(audience, [a], actor=system_actor(), kind="cli")
    client = importer()
    job_id = upload(client, f"{a}\n{b}\n", audience="Leaving", action="remove").json()["job_id"]
    run(job_id)
    report = client.get(f"{API}/imports/{job_id}").json()
    assert (report["action"], report["removed"], report["not_member"]) == ("remove", 1, 1)
    assert (report["added"], report["already_member"]) == (0, 0)  # no row asked to add
    assert identity_holds(report)
    assert members(audience.pk) == set()


def test_a_file_refused_as_a_whole_reports_its_reason_and_has_no_rejects_file():
    client = importer()
    job_id = upload(client, b"", audience="Empty").json()["job_id"]
    run(job_id)
    report = client.get(f"{API}/imports/{job_id}").json()
    assert report["status"] == "rejected"
    assert report["error"]["code"] == "EMPTY_FILE" and report["error"]["message"]
    assert report["links"]["rejects"] is None and report["links"]["undo"] is None
    assert_error(client.get(f"{API}/imports/{job_id}/rejects.csv"), 404, "not_found")


def test_phones_in_every_local_habit_match_one_customer_through_the_api():
    customer = make_customer(phone="+79123456789")
    audience = create_audience("Phones", actor=system_actor())
    data = "+7 (912) 345-67-89\n8 912 345 67 89\n79123456789\n"
    job_id = upload(importer(), data, id_type="phone", audience=str(audience.pk)).json()["job_id"]
    run(job_id)
    report = importer().get(f"{API}/imports/{job_id}").json()
    assert (report["added"], report["duplicate_in_file"]) == (1, 2)
    assert members(audience.pk) == {customer.pk}


# --- The report's shape -----------------------------------------------------------------------


@pytest.mark.parametrize("action", ["add", "remove"])
def test_the_report_schema_has_exactly_the_keys_of_the_report_plus_links(action):
    create_audience("Shape", actor=system_actor())
    job = services.start_import(
        [b"1\n"],
        "f.csv",
        services.ImportRequest(action=action, audience_name="Shape"),
        actor=system_actor(),
        enqueue=False,
    )
    report = queries.job_report(run(job.pk))
    assert [*report, "links"] == list(ImportOut.model_fields)
    assert [*report["audiences"][0]] == list(ImportAudienceOut.model_fields)


# --- List and detail --------------------------------------------------------------------------


def test_the_list_shows_every_callers_imports_newest_first_and_filters_by_status():
    client = importer()
    first = upload(client, "1\n", audience="A").json()["job_id"]
    other, _ = token_client("import", "read", name="shop")
    second = upload(other, "", audience="B").json()["job_id"]
    run(second)

    body = client.get(f"{API}/imports").json()
    assert [i["job_id"] for i in body["items"]] == [second, first]
    assert (body["count"], body["limit"], body["offset"]) == (2, 50, 0)
    assert {i["created_by"] for i in body["items"]} == {"token:erp", "token:shop"}

    rejected = client.get(f"{API}/imports?status=rejected").json()
    assert [i["job_id"] for i in rejected["items"]] == [second] and rejected["count"] == 1
    page = client.get(f"{API}/imports?limit=1&offset=1").json()
    assert [i["job_id"] for i in page["items"]] == [first] and page["count"] == 2


def test_the_list_refuses_an_unknown_status_and_limits_out_of_range():
    client = importer()
    assert_error(client.get(f"{API}/imports?status=done"), 422, "validation_error", "status")
    assert_error(client.get(f"{API}/imports?limit=0"), 422, "validation_error", "limit")
    assert_error(client.get(f"{API}/imports?limit=1001"), 422, "validation_error", "limit")
    assert_error(client.get(f"{API}/imports?offset=-1"), 422, "validation_error", "offset")


def test_an_unknown_import_is_404_and_a_malformed_id_is_422():
    client = importer()
    for path in ("", "/commit", "/cancel", "/undo", "/rejects.csv"):
        method = client.get if path in ("", "/rejects.csv") else client.post
        assert_error(method(f"{API}/imports/999999{path}"), 404, "import_not_found")
    assert_error(client.get(f"{API}/imports/0"), 422, "validation_error", "job_id")
    assert_error(client.get(f"{API}/imports/{2**63}"), 422, "validation_error", "job_id")
    assert_error(client.get(f"{API}/imports/abc"), 422, "validation_error", "job_id")


# --- Commit, cancel, undo ---------------------------------------------------------------------


def test_only_a_previewed_import_can_be_committed():
    client = importer()
    job_id = upload(client, "1\n", audience="A").json()["job_id"]
    error = assert_error(client.post(f"{API}/imports/{job_id}/commit"), 409, "not_previewed")
    assert "queued" in error["message"]
    assert ImportJob.objects.get(pk=job_id).status == "queued"


def test_a_queued_import_is_cancelled_at_once_and_cancelling_again_is_harmless():
    client = importer()
    job_id = upload(client, "1\n", audience="A").json()["job_id"]
    response = client.post(f"{API}/imports/{job_id}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled" and body["links"]["cancel"] is None
    again = client.post(f"{API}/imports/{job_id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert run_import_job(job_id, owner="test") is None  # nothing left for a worker


def test_a_previewed_import_can_be_cancelled_instead_of_committed():
    (a,) = make_customers(1)
    client = importer()
    job_id = upload(client, f"{a}\n", audience="A", dry_run="1").json()["job_id"]
    run(job_id)
    assert client.post(f"{API}/imports/{job_id}/cancel").json()["status"] == "cancelled"
    assert_error(client.post(f"{API}/imports/{job_id}/commit"), 409, "not_previewed")
    assert not Membership.objects.exists()


def test_a_finished_import_cannot_be_cancelled_and_an_unfinished_one_cannot_be_undone():
    (a,) = make_customers(1)
    client = importer()
    job_id = upload(client, f"{a}\n", audience="A").json()["job_id"]
    assert_error(client.post(f"{API}/imports/{job_id}/undo"), 409, "cannot_undo")
    run(job_id)
    assert_error(client.post(f"{API}/imports/{job_id}/cancel"), 409, "already_finished")


# --- Rejected rows ----------------------------------------------------------------------------


def test_rejected_values_that_look_like_formulas_are_escaped_in_the_csv():
    client = importer()
    job_id = upload(client, "=HYPERLINK(1)\n+7 000\n", id_type="phone", audience="A").json()[
        "job_id"
    ]
    run(job_id)
    response = client.get(f"{API}/imports/{job_id}/rejects.csv")
    text = b"".join(response.streaming_content).decode()
    raw_values = [row[1] for row in csv.reader(io.StringIO(text))][1:]
    assert raw_values == ["'=HYPERLINK(1)", "'+7 000"]
    assert response["Cache-Control"] == "no-store"
    assert 'filename="import-' in response["Content-Disposition"]


def test_the_rejects_of_a_preview_can_be_read_before_committing():
    client = importer()
    job_id = upload(client, "abc\n", audience="A", dry_run="true").json()["job_id"]
    assert_error(client.get(f"{API}/imports/{job_id}/rejects.csv"), 404, "not_found")  # not yet
    run(job_id)
    body = client.get(f"{API}/imports/{job_id}").json()
    assert body["links"]["rejects"] == f"{API}/imports/{job_id}/rejects.csv"
    assert client.get(body["links"]["rejects"]).status_code == 200


def test_purged_rejects_are_404_and_the_report_stays(settings):
    client = importer()
    job_id = upload(client, "abc\n", audience="A").json()["job_id"]
    run(job_id)
    ImportJob.objects.filter(pk=job_id).update(finished_at="2000-01-01T00:00:00Z")
    assert services.purge_expired_files() == 1
    error = assert_error(client.get(f"{API}/imports/{job_id}/rejects.csv"), 404, "not_found")
    assert "purged" in error["message"]
    report = client.get(f"{API}/imports/{job_id}").json()
    assert report["invalid"] == 1 and report["links"]["rejects"] is None
