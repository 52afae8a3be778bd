"""Admin → Audit log: admins only, filters, pages newest first, CSV export."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tagbase.accounts import audit
from tagbase.accounts.actors import Actor
from tagbase.accounts.models import Role
from tagbase.audiences.services import create_audience, delete_audience
from tagbase.testing import PASSWORD, make_user

pytestmark = pytest.mark.django_db
PAGE = "/audit/"
EXPORT = "/audit/export.csv"


def logged_in(role: str) -> Client:
    user = make_user(role)
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_an_admin_sees_the_entries_newest_first_with_links_to_live_targets():
    gone = create_audience("Gone", actor=Actor.system("alice"))
    kept = create_audience("Kept", actor=Actor.system("bob"))
    delete_audience(gone, actor=Actor.system("alice"))
    page = logged_in(Role.ADMIN).get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    rows = [html.index(f'id="audit-{e.pk}"') for e in audit.find_entries(audit.AuditFilter())]
    assert rows == sorted(rows) and len(rows) >= 4  # 3 audience entries + the admin's login
    assert f'href="/audiences/{kept.pk}/"' in html
    assert f'href="/audiences/{gone.pk}/"' not in html  # deleted: no link
    assert "audience.deleted" in html and "Audience deleted" in html


@pytest.mark.parametrize("role", [Role.MARKETER, Role.ANALYST])
@pytest.mark.parametrize("url", [PAGE, EXPORT])
def test_other_roles_get_403(role, url):
    assert logged_in(role).get(url).status_code == 403


@pytest.mark.parametrize("url", [PAGE, EXPORT])
def test_anonymous_visitors_are_sent_to_log_in(url):
    response = Client().get(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_only_admins_see_the_link_in_the_navigation():
    assert 'href="/audit/"' in logged_in(Role.ADMIN).get("/audiences/").content.decode()
    assert 'href="/audit/"' not in logged_in(Role.MARKETER).get("/audiences/").content.decode()


def test_filters_narrow_the_list_and_htmx_gets_only_the_results():
    create_audience("By Alice", actor=Actor.system("alice"))
    create_audience("By Bob", actor=Actor.system("bob"))
    admin = logged_in(Role.ADMIN)
    html = admin.get(PAGE, {"actor": "alice", "action": "audience."}).content.decode()
    assert "By Alice" in html and "By Bob" not in html
    part = admin.get(PAGE, {"actor": "bob"}, headers={"HX-Request": "true", "HX-Target": "results"})
    text = part.content.decode()
    assert text.lstrip().startswith('<section id="results"') and "By Bob" in text
    assert "By Alice" not in text


def test_an_unusable_filter_is_reported_and_the_others_still_apply():
    create_audience("By Alice", actor=Actor.system("alice"))
    create_audience("By Bob", actor=Actor.system("bob"))
    html = (
        logged_in(Role.ADMIN)
        .get(PAGE, {"actor": "alice", "since": "last tuesday", "target_id": "x"})
        .content.decode()
    )
    assert "could not be used" in html and "last tuesday" in html
    assert "By Alice" in html and "By Bob" not in html


def test_pages_hold_the_page_size(settings):
    settings.TAGBASE_PAGE_SIZE = 2
    for n in range(5):
        create_audience(f"Paged audience {n}", actor=Actor.system("alice"))
    admin = logged_in(Role.ADMIN)
    first = admin.get(PAGE, {"actor": "alice"}).content.decode()
    assert "Paged audience 4" in first and "Paged audience 3" in first
    assert "Paged audience 2" not in first
    third = admin.get(PAGE, {"actor": "alice", "page": 3}).content.decode()
    assert "Paged audience 0" in third and "Paged audience 1" not in third


def test_names_are_escaped():
    create_audience("<script>alert(1)</script>", actor=Actor.system("alice"))
    html = logged_in(Role.ADMIN).get(PAGE).content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_the_export_is_the_filtered_entries_as_formula_safe_csv():
    create_audience("=HYPERLINK(1)", actor=Actor.system("=cmd"))
    create_audience("Other", actor=Actor.system("bob"))
    response = logged_in(Role.ADMIN).get(EXPORT, {"action": "audience.created", "actor": "=cmd"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "id",
        "at",
        "actor_kind",
        "actor",
        "action",
        "target_type",
        "target_id",
        "summary",
    ]
    assert len(rows) == 2
    assert rows[1][3] == "'=cmd" and rows[1][4] == "audience.created"
    assert json.loads(rows[1][7]) == {"name": "=HYPERLINK(1)"}


def test_a_page_costs_the_same_queries_for_few_entries_or_many():
    admin = logged_in(Role.ADMIN)

    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin.get(PAGE).status_code == 200
        return len(captured)

    create_audience("First", actor=Actor.system("alice"))
    few = queries_for_page()
    for n in range(40):
        audience = create_audience(f"Many {n}", actor=Actor.system("alice"))
        if n % 2:
            delete_audience(audience, actor=Actor.system("alice"))
    assert queries_for_page() == few <= 12
