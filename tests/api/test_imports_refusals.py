"""Imports through the API refuse bad requests with a 4xx naming the field, never a 500, and
leave neither a job nor a stored file behind; and only callers allowed to import may."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tagbase.accounts.models import Role
from tagbase.audiences.services import create_audience
from tagbase.imports.models import ImportJob
from tagbase.testing import system_actor

from .support import API, assert_error, session_client, token_client
from .test_imports import importer, upload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _nothing_is_left_behind(settings):
    """Every request in this file is refused: no job, no stored file."""
    yield
    assert not ImportJob.objects.exists()
    folder = settings.TAGBASE_IMPORT_DIR
    assert not folder.exists() or not any(folder.iterdir())


# --- Validation -------------------------------------------------------------------------------


def test_a_request_without_a_file_names_the_file_field():
    response = importer().post(f"{API}/imports", {"id_type": "sc_id", "audience": "A"})
    assert_error(response, 422, "validation_error", "file")


def test_a_json_body_is_refused_as_a_missing_file():
    response = importer().post(
        f"{API}/imports", {"id_type": "sc_id"}, content_type="application/json"
    )
    assert_error(response, 422, "validation_error", "file")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"mode": "both"}, "mode"),
        ({"mode": ""}, "mode"),
        ({"action": "delete"}, "action"),
        ({"id_type": "passport"}, "id_type"),
        ({"id_type": None}, "id_type"),
        ({"dry_run": "maybe"}, "dry_run"),
        ({"encoding": "koi8-r"}, "encoding"),
        ({"delimiter": "|"}, "delimiter"),
        ({"audience": "99999999999999999999"}, "audience"),
        ({"audience": "0"}, "audience"),
        ({"audience_name": "B"}, "audience_name"),  # with audience "A": one or the other
        ({"mode": "per_row"}, "audience"),  # per_row takes audiences from the file
        ({"dryrun": "true"}, "dryrun"),  # a misspelt field is not silently ignored
    ],
)
def test_bad_options_are_a_validation_error_naming_the_field(fields, field):
    error = assert_error(
        upload(importer(), "1\n", **{"audience": "A", **fields}), 422, "validation_error", field
    )
    assert error["details"][0]["field"] == field


def test_every_bad_option_is_listed_in_details():
    error = assert_error(
        upload(importer(), "1\n", mode="x", id_type="y", audience="A"), 422, "validation_error"
    )
    assert [d["field"] for d in error["details"]] == ["mode", "id_type"]


def test_a_field_sent_twice_is_refused():
    form = {"id_type": ["sc_id", "phone"], "audience": "A", "file": SimpleUploadedFile("f", b"1")}
    assert_error(importer().post(f"{API}/imports", form), 422, "validation_error", "id_type")


def test_two_files_are_refused():
    files = [SimpleUploadedFile("a.csv", b"1"), SimpleUploadedFile("b.csv", b"2")]
    form = {"id_type": "sc_id", "audience": "A", "file": files}
    assert_error(importer().post(f"{API}/imports", form), 422, "validation_error", "file")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, "audience_required"),
        ({"audience": "   "}, "audience_required"),
        ({"audience": "424242"}, "audience_not_found"),
        ({"audience": "Nobody", "action": "remove"}, "audience_not_found"),
        ({"audience": "VIP\u202egold"}, "name_control_character"),
        ({"audience": "x" * 201}, "name_too_long"),
    ],
)
def test_an_audience_that_cannot_be_the_target_is_422_naming_audience(fields, code):
    assert_error(upload(importer(), "1\n", **fields), 422, code, "audience")


def test_an_audience_name_that_does_not_exist_cannot_be_removed_from_even_by_audience_name():
    create_audience("Somebody", actor=system_actor())
    response = upload(importer(), "1\n", audience_name="Nobody", action="remove")
    assert_error(response, 422, "audience_not_found", "audience")


def test_a_broken_multipart_body_is_a_400():
    response = importer().post(
        f"{API}/imports",
        data=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n1',
        content_type="multipart/form-data; boundary=",
    )
    assert_error(response, 400, "malformed_multipart")


def test_more_form_fields_than_django_accepts_is_a_400(settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    extra = {f"x{i}": "1" for i in range(5)}
    assert_error(upload(importer(), "1\n", audience="A", **extra), 400, "bad_request")


@pytest.mark.parametrize("key", ["x" * 201, "caf\u00e9", "two words"])
def test_an_unusable_idempotency_key_is_refused(key):
    response = upload(importer(), "1\n", audience="A", headers={"Idempotency-Key": key})
    assert_error(response, 422, "validation_error", "Idempotency-Key")


def test_bad_input_on_the_other_import_endpoints_is_4xx():
    client = importer()
    assert_error(
        client.post(f"{API}/imports/1/commit", "{", "application/json"), 404, "import_not_found"
    )
    assert_error(client.delete(f"{API}/imports/1"), 405, "method_not_allowed")
    assert_error(client.get(f"{API}/imports?status=%00"), 422, "validation_error", "status")


# --- Who may import ---------------------------------------------------------------------------


def test_an_upload_without_credentials_is_401():
    response = upload(Client(enforce_csrf_checks=True), "1\n", audience="A")
    assert_error(response, 401, "not_authenticated")


@pytest.mark.parametrize("scopes", [("read",), ("write",), ("read", "write", "events")])
def test_a_token_without_the_import_scope_cannot_import(scopes):
    client, _ = token_client(*scopes)
    error = assert_error(upload(client, "1\n", audience="A"), 403, "missing_scope")
    assert "'import'" in error["message"]


def test_an_analysts_session_cannot_import():
    response = upload(session_client(Role.ANALYST), "1\n", audience="A")
    assert_error(response, 403, "forbidden")


def test_a_session_upload_needs_the_csrf_token():
    client = session_client(Role.MARKETER, enforce_csrf=True)
    assert_error(upload(client, "1\n", audience="A"), 403, "csrf_failed")


def test_an_import_only_token_cannot_read_reports_which_need_read():
    client, _ = token_client("import")
    assert_error(client.get(f"{API}/imports"), 403, "missing_scope")


@pytest.mark.parametrize("action", ["commit", "cancel", "undo"])
def test_acting_on_an_import_needs_the_import_scope_or_a_writing_role(action):
    for client in (token_client("read", "write")[0], session_client(Role.ANALYST)):
        response = client.post(f"{API}/imports/1/{action}")
        assert response.status_code == 403, response.content
