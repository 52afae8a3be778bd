"""Data → Imports in the web UI: the upload form and its limits, the report while a job runs and
after, preview → import → undo, cancel, the rejected-rows download, and who may do what.

No worker runs in these tests (the task backend is the database one): after an upload the test
runs the job itself with ``run_import_job``, as a worker would.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.handlers.wsgi import LimitedStream
from django.db import connection
from django.test import Client, RequestFactory
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tagbase.accounts.actors import Actor
from tagbase.accounts.models import Role
from tagbase.audiences import services as audience_services
from tagbase.audiences.models import Audience, Membership
from tagbase.imports import pipeline, report_page, services, views
from tagbase.imports.models import ImportJob, ImportStatus
from tagbase.testing import make_customer, make_user, system_actor

pytestmark = pytest.mark.django_db
ORIGINAL_EXAMPLE = b"123;\n124;\n125;\n245."


def client_for(role: str) -> Client:
    client = Client()
    client.force_login(make_user(role))
    return client


def customers(*sc_ids: int) -> None:
    for sc_id in sc_ids:
        make_customer(sc_id=sc_id)


def members(name: str) -> set[int]:
    audience = Audience.objects.filter(name=name).first()
    if audience is None:
        return set()
    return set(Membership.objects.filter(audience=audience).values_list("customer_id", flat=True))


def form_data(content: bytes | None = ORIGINAL_EXAMPLE, name: str = "ids.csv", **fields):  # type: ignore[no-untyped-def]
    data = {
        "mode": "single",
        "action": "add",
        "id_type": "sc_id",
        "audience": "",
        "audience_name": "",
        "encoding": "auto",
        "delimiter": "auto",
    }
    data.update({k: str(v) for k, v in fields.items()})
    if content is not None:
        data["file"] = SimpleUploadedFile(name, content, content_type="text/csv")
    return data


def upload(client: Client, content: bytes | None = ORIGINAL_EXAMPLE, **fields):  # type: ignore[no-untyped-def]
    return client.post(reverse("imports:import_new"), form_data(content, **fields))


def run(job_id: int) -> ImportJob:
    done = pipeline.run_import_job(job_id, owner="test")
    assert done is not None
    return done


def job_from(response) -> ImportJob:  # type: ignore[no-untyped-def]
    assert response.status_code == 302, response.content.decode()[:2000]
    match = re.fullmatch(r"/imports/(\d+)/", response["Location"])
    assert match, response["Location"]
    return ImportJob.objects.get(pk=int(match.group(1)))


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.content.decode()


def squash(html: str) -> str:
    """The page's text with tags removed and white space folded, for reading sentences."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def a_job(user=None, content: bytes = b"1\n", **request) -> ImportJob:  # type: ignore[no-untyped-def]
    actor = Actor.of_user(user) if user else system_actor()
    req = services.ImportRequest(**{"audience_name": "Jobs", **request})  # type: ignore[arg-type]
    return services.start_import([content], "f.csv", req, actor=actor, enqueue=False)


def htmx(target: str) -> dict[str, str]:
    return {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target}


def stored_files(settings) -> list[Path]:  # type: ignore[no-untyped-def]
    folder = Path(settings.TAGBASE_IMPORT_DIR)
    return sorted(folder.iterdir()) if folder.exists() else []


# --- Access ------------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page_from_every_import_page():
    job = a_job()
    pages = [
        reverse("imports:import_list"),
        reverse("imports:import_new"),
        reverse("imports:import_detail", args=[job.pk]),
        reverse("imports:import_cancel", args=[job.pk]),
        reverse("imports:import_undo", args=[job.pk]),
        reverse("imports:import_rejects", args=[job.pk]),
    ]
    posts = [
        reverse("imports:import_new"),
        reverse("imports:import_commit", args=[job.pk]),
        reverse("imports:import_cancel", args=[job.pk]),
        reverse("imports:import_undo", args=[job.pk]),
    ]
    responses = [(url, Client().get(url)) for url in pages]
    responses += [(url, Client().post(url)) for url in posts]
    for url, response in responses:
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.QUEUED


@pytest.mark.parametrize("role", [Role.MARKETER, Role.ADMIN, Role.ANALYST])
def test_every_role_reads_the_list_and_the_report(role):
    job = a_job()
    client = client_for(role)
    assert client.get(reverse("imports:import_list")).status_code == 200
    assert client.get(reverse("imports:import_detail", args=[job.pk])).status_code == 200


def test_marketers_open_the_form_and_the_confirmations():
    job = a_job()
    client = client_for(Role.MARKETER)
    for url in (
        reverse("imports:import_new"),
        reverse("imports:import_cancel", args=[job.pk]),
        reverse("imports:import_undo", args=[job.pk]),
    ):
        assert client.get(url).status_code == 200, url


def test_analysts_get_403_for_the_form_every_post_and_the_rejected_rows(settings):
    customers(1)
    job = run(a_job(content=b"1\nx\n", dry_run=True).pk)
    assert job.status == ImportStatus.PREVIEWED
    client = client_for(Role.ANALYST)
    assert client.get(reverse("imports:import_new")).status_code == 403
    assert upload(client).status_code == 403
    for name in ("import_commit", "import_cancel", "import_undo"):
        assert client.post(reverse(f"imports:{name}", args=[job.pk])).status_code == 403, name
    assert client.get(reverse("imports:import_rejects", args=[job.pk])).status_code == 403
    assert ImportJob.objects.count() == 1 and len(stored_files(settings)) == 2  # file + rejects
    html = text(client.get(reverse("imports:import_detail", args=[job.pk])))
    assert reverse("imports:import_commit", args=[job.pk]) not in html
    assert reverse("imports:import_rejects", args=[job.pk]) not in html
    assert "your role cannot download it" in html


def test_an_unknown_import_is_404_on_every_page():
    client = client_for(Role.MARKETER)
    for name in ("import_detail", "import_cancel", "import_undo", "import_rejects"):
        assert client.get(reverse(f"imports:{name}", args=[999999])).status_code == 404, name
    for name in ("import_commit", "import_cancel", "import_undo"):
        assert client.post(reverse(f"imports:{name}", args=[999999])).status_code == 404, name


def test_the_sidebar_has_an_imports_entry_marked_current_on_import_pages():
    html = text(client_for(Role.ANALYST).get(reverse("imports:import_list")))
    assert re.search(r'href="/imports/" aria-current="page"[^>]*>.*Imports', html)


# --- The form ----------------------------------------------------------------------------------


def test_the_form_mirrors_the_original_product_and_shows_both_file_formats():
    html = text(client_for(Role.MARKETER).get(reverse("imports:import_new")))
    assert "Set one target audience to all customers from this file" in html
    assert "Assign each customer the target audience specified in the file" in html
    for label in ("Tagbase ID", "Partner system ID", "Phone", "E-mail", "Card number"):
        assert f">{label}</option>" in html
    for label in ("Windows-1251", "UTF-8", "Tab"):
        assert label in html
    assert "123;\n124;\n125;\n245." in html and "123; Audience 1\n124; Audience 2" in html
    assert re.search(r'<input type="checkbox" name="dry_run"[^>]* checked', html)
    assert 'enctype="multipart/form-data"' in html


def test_the_audience_the_user_came_from_is_preselected():
    vip = audience_services.create_audience("VIP", actor=system_actor())
    url = reverse("imports:import_new") + f"?audience={vip.pk}"
    html = text(client_for(Role.MARKETER).get(url))
    assert f'<option value="{vip.pk}" selected>VIP (0)</option>' in html
    html = text(client_for(Role.MARKETER).get(reverse("imports:import_new") + "?audience=x"))
    assert "selected>VIP" not in html


def test_the_target_audiences_page_button_opens_the_form():
    client = client_for(Role.MARKETER)
    html = text(client.get(reverse("audiences:audience_list")))
    assert f'href="{reverse("imports:import_new")}"' in html
    old = client.get(reverse("audiences:audience_import"), follow=True)
    assert old.redirect_chain[-1][0] == reverse("imports:import_new")
    assert "Set one target audience" in text(old)


@pytest.mark.parametrize(
    ("content", "fields", "field", "message"),
    [
        (None, {}, "file", "Choose the file to import."),
        (b"", {}, "file", "The file is empty"),
        (ORIGINAL_EXAMPLE, {"id_type": "passport"}, "id_type", "Choose the identifier type"),
        (ORIGINAL_EXAMPLE, {"mode": "both"}, "mode", "Choose the import mode"),
        (ORIGINAL_EXAMPLE, {"encoding": "koi8-r"}, "encoding", "Choose the encoding"),
        (ORIGINAL_EXAMPLE, {}, "audience", "Choose an audience or type the name of a new one."),
        (ORIGINAL_EXAMPLE, {"audience": "999999"}, "audience", "no longer exists"),
        (
            ORIGINAL_EXAMPLE,
            {"action": "remove", "audience_name": "Nobody has this name"},
            "audience_name",
            "There is no audience named",
        ),
        (ORIGINAL_EXAMPLE, {"audience_name": "a\u202eb"}, "audience_name", "control character"),
    ],
)
def test_the_form_names_each_wrong_field_and_starts_nothing(
    settings, content, fields, field, message
):
    response = upload(client_for(Role.MARKETER), content, **fields)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert any(message in e for e in errors[field]), errors
    assert f'id="id_{field}_error1"' in text(response)
    assert not ImportJob.objects.exists()
    assert stored_files(settings) == []


def test_choosing_an_audience_and_typing_a_name_at_once_is_refused():
    vip = audience_services.create_audience("VIP", actor=system_actor())
    response = upload(client_for(Role.MARKETER), audience=vip.pk, audience_name="Other")
    assert "not both" in response.context["form"].errors["audience_name"][0]
    assert "was not kept: choose it again" in text(response)
    assert not ImportJob.objects.exists()


def test_per_row_mode_ignores_the_mode_one_audience_fields():
    customers(123, 124)
    response = upload(
        client_for(Role.MARKETER),
        b"123; Audience 1\n124; Audience 2\n",
        mode="per_row",
        audience_name="Ignored",
    )
    job = run(job_from(response).pk)
    assert (job.mode, job.audience_name, job.status) == ("per_row", "", "succeeded")
    assert members("Audience 1") == {123} and members("Audience 2") == {124}
    assert not Audience.objects.filter(name="Ignored").exists()


# --- Upload limits -----------------------------------------------------------------------------


@pytest.fixture
def temp_uploads(settings, tmp_path):  # type: ignore[no-untyped-def]
    """Every upload goes to a temporary file in a folder of its own, to see what is left."""
    folder = tmp_path / "upload-tmp"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    return folder


def test_an_upload_announced_over_the_limit_is_refused_with_413_before_reading_it(
    settings, temp_uploads
):
    settings.TAGBASE_IMPORT_MAX_BYTES = 1000
    big = b"1\n" * 50_000  # 100 kB: past the limit plus the multipart allowance
    response = upload(client_for(Role.MARKETER), big, audience_name="Big")
    assert response.status_code == 413
    assert "larger than the limit of 1000\xa0bytes (1,000 bytes)" in text(response)
    assert not ImportJob.objects.exists()
    assert stored_files(settings) == []
    assert list(temp_uploads.iterdir()) == []  # the body was never parsed into a file


def test_an_upload_passing_the_limit_while_streaming_is_refused_and_leaves_nothing(
    settings, temp_uploads
):
    settings.TAGBASE_IMPORT_MAX_BYTES = 1000
    response = upload(client_for(Role.MARKETER), b"1\n" * 600, audience_name="Streamed")
    assert response.status_code == 413
    assert "larger than the limit" in text(response)
    assert "was not uploaded" in response.context["upload_problem"] + text(response)
    form = response.context["form"]
    assert form["audience_name"].value() == "Streamed"  # the choices are kept
    assert not form.errors  # refused by the upload handler, before the form or the service
    assert not ImportJob.objects.exists()
    assert stored_files(settings) == []
    assert list(temp_uploads.iterdir()) == []


def test_the_service_limit_also_holds_when_the_file_arrives_whole(settings, monkeypatch):
    # Our upload handler is left out: the service still refuses while copying the file.
    monkeypatch.setattr(views.uploads, "declared_too_large", lambda request: False)
    monkeypatch.setattr(views.uploads, "install", lambda request: type("H", (), {"exceeded": 0}))
    settings.TAGBASE_IMPORT_MAX_BYTES = 1000
    response = upload(client_for(Role.MARKETER), b"1\n" * 600, audience_name="Whole")
    assert response.status_code == 413
    assert "larger than the limit" in response.context["form"].errors["file"][0]
    assert not ImportJob.objects.exists() and stored_files(settings) == []


class BrokenBody:
    """A request body whose client goes away after ``keep`` bytes."""

    def __init__(self, data: bytes, keep: int) -> None:
        self.stream, self.keep = io.BytesIO(data), keep

    def read(self, size: int = -1) -> bytes:
        if self.stream.tell() >= self.keep:
            raise OSError("connection reset by peer")
        return self.stream.read(min(size if size >= 0 else self.keep, self.keep))

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


def test_an_interrupted_upload_leaves_no_job_and_no_temporary_file(settings, temp_uploads):
    body = encode_multipart(BOUNDARY, form_data(b"12345\n" * 20_000, audience_name="Cut"))
    request = RequestFactory().generic(
        "POST", reverse("imports:import_new"), body, content_type=MULTIPART_CONTENT
    )
    request._stream = LimitedStream(BrokenBody(body, keep=len(body) // 2), len(body))  # type: ignore[attr-defined]
    request.user = make_user(Role.MARKETER)
    response = views.import_new(request)
    assert response.status_code == 400
    assert "interrupted" in text(response)
    assert list(temp_uploads.iterdir()) == []
    assert not ImportJob.objects.exists() and stored_files(settings) == []


def test_a_finished_upload_leaves_no_temporary_file(settings, temp_uploads):
    customers(123, 124, 125, 245)
    job = job_from(upload(client_for(Role.MARKETER), audience_name="Kept"))
    assert list(temp_uploads.iterdir()) == []
    assert [p.name for p in stored_files(settings)] == [job.stored_name]


# --- The journey: preview, import, rejected rows, undo -----------------------------------------


def test_preview_then_import_then_download_rejects_then_undo(settings):
    customers(1, 2, 3, 4)
    vip = audience_services.create_audience("VIP", actor=system_actor())
    audience_services.add_customers_to_audience(vip, [1], actor=system_actor(), kind="ui")
    client = client_for(Role.MARKETER)
    content = b"id\n1\n2\n2\n3\n\n9\n=1+2\n-5\n"
    job = job_from(upload(client, content, audience=vip.pk, dry_run="on"))
    assert job.status == ImportStatus.QUEUED and job.dry_run

    queued = text(client.get(reverse("imports:import_detail", args=[job.pk])))
    assert 'hx-trigger="every 1s"' in queued and "<progress" in queued

    run(job.pk)
    preview = text(client.get(reverse("imports:import_detail", args=[job.pk])))
    assert "every 1s" not in preview
    assert "Nothing has changed yet" in preview
    assert "Importing now would add <strong>2</strong> customers" in preview
    identity = squash(
        re.search(r'<p class="identity[^"]*" id="identity">.*?</p>', preview, re.S)[0]
    )
    assert identity.startswith(
        "rows read 8 = blank 1 + invalid 2 + duplicates in the file 1 + not found 1 + "
        "ambiguous 0 + already members 1 + would be added 2"
    )
    assert "every row is accounted for" in identity
    assert "not_a_number" in preview and "A Tagbase ID must be a whole number" in preview
    assert members("VIP") == {1}

    response = client.post(reverse("imports:import_commit", args=[job.pk]))
    assert response["Location"] == reverse("imports:import_detail", args=[job.pk])
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.APPLYING
    done = run(job.pk)
    assert done.status == ImportStatus.SUCCEEDED_WITH_REJECTIONS
    assert members("VIP") == {1, 2, 3}

    report = text(client.get(reverse("imports:import_detail", args=[job.pk])))
    assert "Succeeded with rejections" in report
    assert "rows read 8 = blank 1 + invalid 2 + duplicates in the file 1 + not found 1" in squash(
        report
    )
    assert "already members 1 + added 2" in squash(report)
    main = report[report.index("<main") : report.index("</main>")]
    assert '<svg class="outcome-chart"' in main
    assert "<script" not in main and " style=" not in main and " on" + "click=" not in main

    download = client.get(reverse("imports:import_rejects", args=[job.pk]))
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="import-{job.pk}-rejected-rows.csv"' in download["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert rows[0] == ["line", "raw_value", "reason_code", "message"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        ("4", "2", "duplicate_in_file"),
        ("7", "9", "not_found"),
        ("8", "'=1+2", "not_a_number"),
        ("9", "'-5", "out_of_range"),
    ]

    dialog = text(client.get(reverse("imports:import_undo", args=[job.pk]), **htmx("modal")))
    assert "<html" not in dialog
    operation = done.targets.get().operation
    assert f"Operation #{operation.pk}" in dialog and "added <strong>2</strong> to “VIP”" in dialog
    response = client.post(reverse("imports:import_undo", args=[job.pk]), follow=True)
    assert members("VIP") == {1}
    assert f"Import #{job.pk} undone." in text(response)
    assert ImportJob.objects.get(pk=job.pk).undone_at is not None
    again = client.post(reverse("imports:import_undo", args=[job.pk]), follow=True)
    assert "already been undone" in text(again) and members("VIP") == {1}


def test_the_original_example_file_imports_through_the_form():
    customers(123, 124, 125, 245)
    client = client_for(Role.MARKETER)
    job = job_from(upload(client, ORIGINAL_EXAMPLE, audience_name="From the file"))
    done = run(job.pk)
    assert done.status == ImportStatus.SUCCEEDED, done.error_message
    assert (done.rows_read, done.added, done.invalid) == (4, 4, 0)
    assert members("From the file") == {123, 124, 125, 245}
    report = squash(text(client.get(reverse("imports:import_detail", args=[job.pk]))))
    assert "rows read 4 = blank 0 + invalid 0 + duplicates in the file 0 + not found 0 + " in report
    assert "already members 0 + added 4 — every row is accounted for" in report
    assert "From the file created by this import" in report
    assert "Rejected rows" not in report


def test_a_preview_can_be_discarded_and_a_committed_job_cannot_be_committed_again():
    customers(1)
    client = client_for(Role.MARKETER)
    job = job_from(upload(client, b"1\n", audience_name="Maybe", dry_run="on"))
    run(job.pk)
    client.post(reverse("imports:import_cancel", args=[job.pk]))
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.CANCELLED
    response = client.post(reverse("imports:import_commit", args=[job.pk]), follow=True)
    assert response.status_code == 200
    assert "only a previewed import can be committed" in text(response)
    assert not Audience.objects.filter(name="Maybe").exists()


def test_cancelling_a_queued_import_ends_it_and_applies_nothing():
    customers(1)
    client = client_for(Role.MARKETER)
    job = job_from(upload(client, b"1\n", audience_name="Never"))
    dialog = text(client.get(reverse("imports:import_cancel", args=[job.pk]), **htmx("modal")))
    assert "<html" not in dialog and "Cancel import #" in dialog
    response = client.post(reverse("imports:import_cancel", args=[job.pk]), follow=True)
    assert f"Import #{job.pk} cancelled" in text(response)
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.CANCELLED
    assert pipeline.run_import_job(job.pk, owner="test") is None
    assert not Audience.objects.filter(name="Never").exists()
    again = client.post(reverse("imports:import_cancel", args=[job.pk]), follow=True)
    assert again.status_code == 200


def test_cancel_and_undo_answer_htmx_with_a_client_redirect():
    customers(1)
    client = client_for(Role.MARKETER)
    job = job_from(upload(client, b"1\n", audience_name="Dialog"))
    response = client.post(reverse("imports:import_cancel", args=[job.pk]), **htmx("modal"))
    assert response["HX-Redirect"] == reverse("imports:import_detail", args=[job.pk])


def test_the_report_polls_while_the_job_works_and_stops_with_a_toast_when_it_rests():
    customers(1, 2)
    client = client_for(Role.MARKETER)
    job = job_from(upload(client, b"1\n2\n", audience_name="Watched"))
    url = reverse("imports:import_detail", args=[job.pk])
    part = text(client.get(url, **htmx("import-report")))
    assert part.lstrip().startswith('<div id="import-report" hx-get="')
    assert 'hx-trigger="every 1s"' in part and "<html" not in part
    run(job.pk)
    part = text(client.get(url, **htmx("import-report")))
    assert "every 1s" not in part
    assert 'hx-swap-oob="beforeend"' in part
    assert f"Import #{job.pk} finished: 2 added." in part
    assert f"Import #{job.pk} finished" not in text(client.get(url))  # shown once


def test_a_refused_file_shows_its_reason_line_offset_and_what_to_do():
    client = client_for(Role.MARKETER)
    job = job_from(upload(client, b"1\n2\x003\n", audience_name="Binary"))
    run(job.pk)
    html = text(client.get(reverse("imports:import_detail", args=[job.pk])))
    assert "The file was refused" in html and "BINARY_FILE" in html
    assert re.search(r"<dt>Line</dt><dd>2</dd>", html)
    assert "<dt>Byte offset</dt>" in html
    assert "save it as “CSV UTF-8”" in html
    assert "Rejected rows" not in html


def test_html_in_a_file_name_is_shown_as_text():
    client = client_for(Role.MARKETER)
    job = job_from(
        upload(client, b"1\n", name="<img src=x onerror=alert(1)>.csv", audience_name="X")
    )
    for url in (reverse("imports:import_detail", args=[job.pk]), reverse("imports:import_list")):
        html = text(client.get(url))
        assert "<img src=x" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;.csv" in html


def test_rejected_rows_are_404_when_there_is_no_file_any_more(settings):
    customers(1)
    job = run(a_job(content=b"1\n2\n").pk)
    client = client_for(Role.MARKETER)
    url = reverse("imports:import_rejects", args=[job.pk])
    assert client.get(url).status_code == 200
    services.purge_expired_files(now=job.finished_at + datetime.timedelta(days=999))
    assert client.get(url).status_code == 404
    html = text(client.get(reverse("imports:import_detail", args=[job.pk])))
    assert "no longer kept" in html and url not in html


# --- The list ----------------------------------------------------------------------------------


def test_the_list_shows_newest_first_with_counts_and_filters_by_status():
    customers(1, 2)
    user = make_user(Role.MARKETER, username="mia")
    done = run(a_job(user, b"1\n2\n9\n", audience_name="Done").pk)
    queued = a_job(user, b"1\n", audience_name="Waiting")
    client = client_for(Role.ANALYST)
    html = text(client.get(reverse("imports:import_list")))
    assert html.index(f"#{queued.pk}</strong>") < html.index(f"#{done.pk}</strong>")
    row = squash(re.search(rf'<tr id="import-{done.pk}">.*?</tr>', html, re.S)[0])
    assert row.startswith(f"#{done.pk} f.csv 6 bytes")
    assert "Add · Tagbase ID one audience Done Succeeded with rejections 3 +2 1 mia" in row
    filtered = text(client.get(reverse("imports:import_list") + "?status=running"))
    assert f"#{queued.pk}</strong>" in filtered and f"#{done.pk}</strong>" not in filtered
    part = text(client.get(reverse("imports:import_list") + "?status=rejected", **htmx("results")))
    assert "<html" not in part and "No import with this status" in part
    assert client.get(reverse("imports:import_list") + "?status=bogus&page=x").status_code == 200


def test_the_list_takes_the_same_number_of_queries_for_few_and_many_imports():
    customers(1)
    user = make_user(Role.MARKETER)
    client = client_for(Role.MARKETER)
    url = reverse("imports:import_list")

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    run(a_job(user, mode="per_row", audience_name="").pk)
    run(a_job(user).pk)
    few = queries()
    for n in range(12):
        job = a_job(user, b"1;Per row %d\n" % n, mode="per_row", audience_name="")
        if n % 2:
            run(job.pk)
    assert queries() == few
    assert few <= 8


# --- Safety nets -------------------------------------------------------------------------------


def test_the_upload_still_checks_the_csrf_token(settings):
    user = make_user(Role.MARKETER)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    customers(123, 124, 125, 245)
    refused = upload(client, audience_name="Forged")
    assert refused.status_code == 403
    assert not ImportJob.objects.exists() and stored_files(settings) == []
    client.get(reverse("imports:import_new"))
    token = client.cookies["csrftoken"].value
    data = form_data(audience_name="Genuine")
    data["csrfmiddlewaretoken"] = token
    assert job_from(client.post(reverse("imports:import_new"), data)).audience_name == "Genuine"


def test_a_job_no_worker_picks_up_says_a_worker_is_needed():
    job = a_job()
    url = reverse("imports:import_detail", args=[job.pk])
    client = client_for(Role.MARKETER)
    assert "No worker has picked this import up yet" not in text(client.get(url))
    ImportJob.objects.filter(pk=job.pk).update(
        created_at=job.created_at - datetime.timedelta(minutes=5)
    )
    assert "No worker has picked this import up yet" in text(client.get(url))


def test_cancelling_a_job_a_worker_holds_asks_the_worker_to_stop():
    job = a_job()
    future = job.created_at + datetime.timedelta(hours=1)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.VALIDATING, lease_owner="w1", lease_expires_at=future
    )
    client = client_for(Role.MARKETER)
    response = client.post(reverse("imports:import_cancel", args=[job.pk]), follow=True)
    html = text(response)
    assert f"Cancelling import #{job.pk}" in html
    assert "Cancelling: the worker stops at its next batch" in html
    assert reverse("imports:import_cancel", args=[job.pk]) not in html  # asked once
    job.refresh_from_db()
    assert job.cancel_requested and job.status == ImportStatus.VALIDATING


def test_remove_mode_through_the_form_accounts_for_members_and_non_members():
    customers(1, 2, 3)
    vip = audience_services.create_audience("VIP", actor=system_actor())
    audience_services.add_customers_to_audience(vip, [1, 2], actor=system_actor(), kind="ui")
    client = client_for(Role.MARKETER)
    job = job_from(upload(client, b"1\n3\n7\n", action="remove", audience=vip.pk, dry_run="on"))
    run(job.pk)
    preview = squash(text(client.get(reverse("imports:import_detail", args=[job.pk]))))
    assert "Importing now would remove 1 customer." in preview
    assert "not found 1 + ambiguous 0 + not members 1 + would be removed 1" in preview
    client.post(reverse("imports:import_commit", args=[job.pk]))
    run(job.pk)
    assert members("VIP") == {2}
    report = squash(text(client.get(reverse("imports:import_detail", args=[job.pk]))))
    assert "rows read 3 = blank 0 + invalid 0 + duplicates in the file 0 + not found 1 + " in report
    assert "not members 1 + removed 1 — every row is accounted for" in report


def test_a_file_that_adds_and_removes_is_previewed_reported_per_audience_and_undone():
    customers(1, 2, 3, 4)
    vip = audience_services.create_audience("VIP", actor=system_actor())
    audience_services.add_customers_to_audience(vip, [1, 2], actor=system_actor(), kind="ui")
    client = client_for(Role.MARKETER)
    content = b"1;VIP;-\n3;VIP;+\n4;Fresh;+\n2;Gone;-\n1;VIP;+\n"
    job = job_from(upload(client, content, mode="per_row", dry_run="on"))
    run(job.pk)
    preview = squash(text(client.get(reverse("imports:import_detail", args=[job.pk]))))
    assert "Importing now would add 2 customers, remove 0 customers and create 1 audience" in (
        preview
    )
    assert (
        "rows read 5 = blank 0 + invalid 2 + duplicates in the file 0 + not found 0 + "
        "ambiguous 0 + already members 0 + would be added 2 + not members 1 + would be removed 0"
        " — every row is accounted for"
    ) in preview
    assert "conflicting_action" in preview and "none of those lines is applied" in preview
    assert "Fresh to be created +1 0 — —" in preview
    assert "Gone does not exist — — \u22120 1" in preview
    assert "VIP existing +1 0 \u22120 0" in preview  # its remove row conflicts: none left
    assert members("VIP") == {1, 2}

    client.post(reverse("imports:import_commit", args=[job.pk]))
    done = run(job.pk)
    assert done.status == ImportStatus.SUCCEEDED_WITH_REJECTIONS
    assert members("VIP") == {1, 2, 3} and members("Fresh") == {4}
    report = squash(text(client.get(reverse("imports:import_detail", args=[job.pk]))))
    assert "already members 0 + added 2 + not members 1 + removed 0 — every row" in report
    assert "Fresh created" in report and "Gone does not exist" in report

    dialog = text(client.get(reverse("imports:import_undo", args=[job.pk]), **htmx("modal")))
    assert "added <strong>1</strong> to “VIP”" in dialog
    assert "added <strong>1</strong> to “Fresh”" in dialog
    client.post(reverse("imports:import_undo", args=[job.pk]))
    assert members("VIP") == {1, 2} and members("Fresh") == set()


def test_removed_and_added_members_of_one_audience_are_shown_side_by_side():
    customers(1, 2, 3)
    vip = audience_services.create_audience("VIP", actor=system_actor())
    audience_services.add_customers_to_audience(vip, [1, 2], actor=system_actor(), kind="ui")
    client = client_for(Role.MARKETER)
    job = job_from(upload(client, b"1;VIP;-\n3;VIP;+\n2;VIP;+\n", mode="per_row"))
    run(job.pk)
    html = text(client.get(reverse("imports:import_detail", args=[job.pk])))
    row = squash(re.search(r'<tr id="audience-1">.*?</tr>', html, re.S)[0])
    add_op, remove_op = (t.operation_id for t in job.targets.order_by("action"))
    assert row == f"VIP existing #{add_op} add #{remove_op} remove +1 1 \u22121 0"
    assert (
        f"Import #{job.pk} finished: 1 added, 1 removed."
        == report_page.finished_message(ImportJob.objects.get(pk=job.pk))[1]
    )
    listing = squash(text(client.get(reverse("imports:import_list"))))
    assert "1 audience" in listing and "+1 / \u22121" in listing


def test_an_add_only_report_leaves_out_the_remove_counters():
    customers(1)
    client = client_for(Role.MARKETER)
    job = job_from(upload(client, b"1\n", audience_name="Plain"))
    run(job.pk)
    html = text(client.get(reverse("imports:import_detail", args=[job.pk])))
    assert 'id="count-added"' in html and 'id="count-removed"' not in html
    assert "not members" not in squash(html).lower()


def test_mode_single_refuses_an_add_remove_file_and_says_which_mode_reads_it():
    customers(1, 2)
    client = client_for(Role.MARKETER)
    job = job_from(upload(client, b"1\n2;-\n", audience_name="Signs"))
    run(job.pk)
    html = squash(text(client.get(reverse("imports:import_detail", args=[job.pk]))))
    assert "ACTION_COLUMN_IN_SINGLE_MODE" in html and "Line 2, column 2" in html
    assert "Assign each customer the target audience specified in the file" in html
    assert not Audience.objects.filter(name="Signs").exists()


def test_the_outcome_bar_fills_its_width_and_never_hides_a_small_outcome():
    job = ImportJob(rows_read=1_000_001, added=1_000_000, invalid=1, action="add")
    bar = report_page.outcome_bar(job)
    assert [seg["counter"].key for seg in bar] == ["added", "invalid"]
    assert sum(seg["width"] for seg in bar) == pytest.approx(1000, abs=0.05)
    assert bar[1]["width"] >= 5.9 and bar[1]["x"] == pytest.approx(bar[0]["width"], abs=0.01)
    assert report_page.outcome_bar(ImportJob(action="add")) == []
