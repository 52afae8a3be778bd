"""Uploads past TAGBASE_IMPORT_MAX_BYTES are refused with 413 while they stream (or unread
when Content-Length already says so): no job, no stored file, no temporary file."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from django.core.files.uploadhandler import FileUploadHandler
from django.test import Client

from tagbase.accounts.models import Role
from tagbase.imports.models import ImportJob

from .support import assert_error, session_client, token_client
from .test_imports import importer, upload

pytestmark = pytest.mark.django_db

LIMIT = 200_000


class Spy(FileUploadHandler):
    """Placed after UploadLimit: records what of the file got past it."""

    started: list[str] = []
    received: list[int] = []

    def new_file(self, field_name, *args, **kwargs):  # type: ignore[no-untyped-def]
        Spy.started.append(field_name)

    def receive_data_chunk(self, raw_data, start):  # type: ignore[no-untyped-def]
        Spy.received.append(len(raw_data))
        return raw_data

    def file_complete(self, file_size):  # type: ignore[no-untyped-def]
        return None


@pytest.fixture(autouse=True)
def _small_limit_and_spy(settings, tmp_path):
    settings.TAGBASE_IMPORT_MAX_BYTES = LIMIT
    settings.FILE_UPLOAD_HANDLERS = [
        f"{__name__}.Spy",
        "django.core.files.uploadhandler.MemoryFileUploadHandler",
        "django.core.files.uploadhandler.TemporaryFileUploadHandler",
    ]
    # Files over 1 KB go to Django's temporary files, in a folder this test can inspect.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "django-uploads")
    (tmp_path / "django-uploads").mkdir()
    Spy.started.clear()
    Spy.received.clear()


def nothing_left(settings) -> bool:  # type: ignore[no-untyped-def]
    folder = settings.TAGBASE_IMPORT_DIR
    stored = folder.exists() and any(folder.iterdir())
    temporary = any(Path(settings.FILE_UPLOAD_TEMP_DIR).iterdir())
    return not ImportJob.objects.exists() and not stored and not temporary


def test_a_file_one_byte_over_the_limit_is_413_with_the_limit_in_the_message(settings):
    response = upload(importer(), b"1" * (LIMIT + 1), audience="A")
    error = assert_error(response, 413, "payload_too_large", "file")
    assert "200,000 bytes" in error["message"] and "TAGBASE_IMPORT_MAX_BYTES" in error["message"]
    assert nothing_left(settings)


def test_a_file_of_exactly_the_limit_is_accepted():
    response = upload(importer(), b"1\n" * (LIMIT // 2), audience="A")
    assert response.status_code == 202, response.content
    assert response.json()["size_bytes"] == LIMIT


def test_a_file_over_the_limit_is_refused_while_it_streams_not_after(settings):
    response = upload(importer(), b"1\n" * LIMIT, audience="A")  # twice the limit
    assert_error(response, 413, "payload_too_large")
    assert Spy.started == ["file"]
    assert sum(Spy.received) <= LIMIT  # the rest of the file was never passed on
    assert nothing_left(settings)


def test_a_body_whose_length_says_it_is_too_large_is_refused_unread(settings):
    response = upload(importer(), b"1\n" * (LIMIT + (1 << 20)), audience="A")
    assert_error(response, 413, "payload_too_large")
    assert Spy.started == [] and Spy.received == []
    assert nothing_left(settings)


def test_a_session_upload_over_the_limit_is_413_even_while_checking_csrf(settings):
    client = session_client(Role.MARKETER, enforce_csrf=True)
    csrf = secrets.token_hex(16)
    client.cookies["csrftoken"] = csrf
    response = upload(client, b"1" * (LIMIT + 1), audience="A", headers={"X-CSRFToken": csrf})
    assert_error(response, 413, "payload_too_large")
    assert nothing_left(settings)


@pytest.mark.parametrize("client", ["anonymous", "read token"])
def test_callers_who_may_not_import_are_refused_before_the_body_is_read(client, settings):
    caller = Client() if client == "anonymous" else token_client("read")[0]
    response = upload(caller, b"1" * (LIMIT * 2), audience="A")
    assert response.status_code in (401, 403)
    assert Spy.started == []
    assert nothing_left(settings)


def test_the_request_body_limit_for_json_does_not_apply_to_the_file(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = upload(importer(), b"1\n" * 5000, audience="A")
    assert response.status_code == 202, response.content
    assert response.json()["size_bytes"] == 10_000
