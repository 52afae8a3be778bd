"""Who may reach imports through the API, for the requests that are accepted (the refusals
are in test_imports_refusals.py)."""

from __future__ import annotations

import secrets

import pytest

from tagbase.accounts.models import Role
from tagbase.testing import make_customers

from .support import API, assert_error, session_client, token_client
from .test_imports import importer, run, upload

pytestmark = pytest.mark.django_db


def test_a_marketer_session_can_import_with_the_csrf_token():
    client = session_client(Role.MARKETER, enforce_csrf=True)
    csrf = secrets.token_hex(16)
    client.cookies["csrftoken"] = csrf
    response = upload(client, "1\n", audience="A", headers={"X-CSRFToken": csrf})
    assert response.status_code == 202, response.content


def test_an_analyst_may_read_reports_but_not_download_rejected_rows():
    job_id = upload(importer(), "abc\n", audience="A").json()["job_id"]
    run(job_id)
    analyst = session_client(Role.ANALYST)
    assert analyst.get(f"{API}/imports/{job_id}").status_code == 200
    assert analyst.get(f"{API}/imports").json()["count"] == 1
    assert_error(analyst.get(f"{API}/imports/{job_id}/rejects.csv"), 403, "forbidden")
    reader, _ = token_client("read")
    assert reader.get(f"{API}/imports/{job_id}/rejects.csv").status_code == 200


def test_a_marketers_session_may_download_rejected_rows():
    job_id = upload(importer(), "abc\n", audience="A").json()["job_id"]
    run(job_id)
    response = session_client(Role.MARKETER).get(f"{API}/imports/{job_id}/rejects.csv")
    assert response.status_code == 200


def test_an_admin_session_can_import():
    response = upload(session_client(Role.ADMIN), "1\n", audience="A")
    assert response.status_code == 202, response.content


def test_any_importer_may_act_on_an_import_another_one_started():
    # Single-tenant: imports are not private to the token or user that started them.
    (a,) = make_customers(1)
    job_id = upload(importer(), f"{a}\n", audience="A", dry_run="true").json()["job_id"]
    run(job_id)
    other, _ = token_client("import", name="shop")
    assert other.post(f"{API}/imports/{job_id}/commit").status_code == 202
    run(job_id)
    marketer = session_client(Role.MARKETER)
    undone = marketer.post(f"{API}/imports/{job_id}/undo")
    assert undone.status_code == 200 and undone.json()["undone"] is True
