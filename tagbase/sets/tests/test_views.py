"""Combine audiences and Members on a date in the web UI: every page for every role, the live
preview with the overlap, confirming (the job run in-process as a worker would) with the link to
the operation and its undo, the no-JavaScript path, as-of pages and the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tagbase.accounts.models import Role
from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.audiences.services import (
    add_customers_to_audience,
    create_audience,
    remove_customers_from_audience,
)
from tagbase.segments.services import create_segment
from tagbase.sets import pipeline
from tagbase.sets.models import JobStatus, SetJob
from tagbase.testing import make_customer, make_customers, make_user, system_actor

pytestmark = pytest.mark.django_db
ACTOR = system_actor()


@pytest.fixture(autouse=True)
def _fast_passwords(settings):  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(role: str) -> Client:
    client = Client()
    client.force_login(make_user(role))
    return client


def htmx(target: str) -> dict[str, str]:
    return {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target}


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.content.decode()


def breadcrumbs(page: str) -> str:
    start = page.index('class="breadcrumbs"')
    return page[start : page.index("</nav>", start)]


def url(name: str, *args: object) -> str:
    return reverse(f"sets:{name}", args=args)


def members(audience: Audience) -> set[int]:
    return set(Membership.objects.filter(audience=audience).values_list("customer_id", flat=True))


def two_audiences() -> tuple[list[int], Audience, Audience]:
    ids = make_customers(6)
    a = create_audience("VIP", actor=ACTOR)
    b = create_audience("Buyers", actor=ACTOR)
    add_customers_to_audience(a, ids[0:4], actor=ACTOR, kind="api")
    add_customers_to_audience(b, ids[2:6], actor=ACTOR, kind="api")
    return ids, a, b


def form(a: Audience, b: Audience, **extra: object) -> dict[str, object]:
    data: dict[str, object] = {
        "first": f"audience:{a.pk}",
        "op1": "intersect",
        "second": f"audience:{b.pk}",
        "op2": "",
        "third": "",
        "target": "new",
        "new_audience_name": "Both",
        "token": "page-1",
    }
    data.update(extra)
    return data


# --- Access -----------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page():
    _, a, b = two_audiences()
    job = SetJob.objects.create(expression={}, summary="x", mode="add", audience_name="VIP")
    for address in [url("combine"), url("set_job", job.pk), url("as_of", a.pk)]:
        response = Client().get(address)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert Client().post(url("combine"), form(a, b, confirm="1")).status_code == 302
    assert not Audience.objects.filter(name="Both").exists()


def test_analysts_read_members_on_a_date_but_may_not_combine_or_export_personal_data():
    _, a, b = two_audiences()
    client = client_for(Role.ANALYST)
    assert client.get(url("combine")).status_code == 403
    assert client.post(url("combine"), form(a, b, confirm="1")).status_code == 403
    assert not SetJob.objects.exists()
    today = timezone.localdate().isoformat()
    page = text(client.get(url("as_of", a.pk) + f"?date={today}"))
    assert "Members at that moment" in page and "Your role may export Tagbase IDs only" in page
    assert 'value="phone"' not in page
    phone = client.get(url("as_of_export", a.pk) + f"?date={today}&id_type=phone")
    assert phone.status_code == 403
    assert client.get(url("as_of_export", a.pk) + f"?date={today}&id_type=sc_id").status_code == 200
    listing = text(client.get(reverse("audiences:audience_list")))
    assert url("combine") not in listing


def test_the_combine_page_is_reachable_from_target_audiences_and_an_audience_page():
    _, a, _ = two_audiences()
    client = client_for(Role.MARKETER)
    listing = text(client.get(reverse("audiences:audience_list")))
    detail = text(client.get(reverse("audiences:audience_detail", args=[a.pk])))
    assert url("combine") in listing
    assert f"{url('combine')}?first=audience:{a.pk}" in detail
    assert url("as_of", a.pk) in detail and "Members on a date" in detail
    page = text(client.get(f"{url('combine')}?first=audience:{a.pk}"))
    crumbs = breadcrumbs(page)
    assert "Customers" in crumbs and "Target audiences" in crumbs and "Combine" in crumbs
    assert f'<option value="audience:{a.pk}" selected>' in page


# --- Preview ----------------------------------------------------------------------------------


def test_the_live_preview_shows_the_exact_result_and_every_region_of_the_overlap():
    ids, a, b = two_audiences()
    seg = create_segment("Everyone", {"op": "and", "rules": []}, actor=ACTOR, refresh=False)
    client = client_for(Role.MARKETER)
    data = form(a, b, op2="difference", third=f"segment:{seg.pk}", new_audience_name="")
    part = text(client.post(url("combine"), data, **htmx("combine-preview")))
    assert "<html" not in part and 'id="combine-preview"' in part
    assert "<strong>0</strong> customers in the result" in part  # (A and B) minus everyone

    part = text(client.post(url("combine"), form(a, b), **htmx("combine-preview")))
    assert "<strong>2</strong> customers in the result" in part
    assert "(of 6 in any operand" in part
    assert "A new audience “Both” with 2 customers" in part
    rows = part[part.index("<tbody>") :]
    assert '“VIP” only</td><td class="num">2' in rows
    assert '“Buyers” only</td><td class="num">2' in rows
    assert '“VIP” \u2229 “Buyers”</td><td class="num">2' in rows
    assert '<circle cx="125"' in part  # the two-set diagram
    assert not Audience.objects.filter(name="Both").exists()  # a preview changes nothing

    target = create_audience("Target", actor=ACTOR)
    add_customers_to_audience(target, [ids[0], ids[2]], actor=ACTOR, kind="api")
    data = form(a, b, target="replace", audience=target.pk, new_audience_name="")
    part = text(client.post(url("combine"), data, **htmx("combine-preview")))
    assert "In “Target”: <strong>+1</strong> added, <strong>\u22121</strong> removed" in part


def test_the_preview_waits_for_both_operands_and_reports_a_half_chosen_third():
    _, a, b = two_audiences()
    client = client_for(Role.MARKETER)
    half = text(client.post(url("combine"), form(a, b, second=""), **htmx("combine-preview")))
    assert "Choose A, an operator and B" in half
    third = text(client.post(url("combine"), form(a, b, op2="union"), **htmx("combine-preview")))
    assert "Choose both the second operator and C, or neither." in third


# --- Confirm ----------------------------------------------------------------------------------


def test_combining_creates_one_job_runs_it_once_and_links_the_undoable_operation():
    ids, a, b = two_audiences()
    client = client_for(Role.MARKETER)
    first = client.post(url("combine"), form(a, b, confirm="1"))
    again = client.post(url("combine"), form(a, b, confirm="1"))  # a double submit
    job = SetJob.objects.get()
    assert first.status_code == 302 and first["Location"] == url("set_job", job.pk)
    assert again["Location"] == url("set_job", job.pk)
    waiting = text(client.get(url("set_job", job.pk)))
    assert 'hx-trigger="every 1s"' in waiting and "About 2 to add" in waiting

    pipeline.run_set_job(job.pk)  # what a worker does
    done = text(client.get(url("set_job", job.pk), **htmx("job-status")))
    op = Operation.objects.get(kind=OperationKind.SET)
    both = Audience.objects.get(name="Both")
    assert "every 1s" not in done and "2 customers added" in done
    assert reverse("audiences:audience_detail", args=[both.pk]) + f"#operation-{op.pk}" in done
    assert members(both) == {ids[2], ids[3]}

    history = text(client.get(reverse("audiences:audience_detail", args=[both.pk])))
    assert "Set operation" in history
    assert reverse("audiences:operation_undo", args=[op.pk]) in history
    client.post(reverse("audiences:operation_undo", args=[op.pk]))
    assert members(both) == set()


def test_replacing_shows_both_halves_in_the_history_and_undo_says_what_it_did():
    ids, a, b = two_audiences()
    client = client_for(Role.MARKETER)
    data = form(a, b, op1="union", target="replace", audience=a.pk, new_audience_name="")
    client.post(url("combine"), data | {"confirm": "1"})
    pipeline.run_set_job(SetJob.objects.get().pk)
    op = Operation.objects.get(kind=OperationKind.SET)
    assert (op.action, op.added, op.removed) == ("replace", 2, 0)
    history = text(client.get(reverse("audiences:audience_detail", args=[a.pk])))
    assert '+2</span> <span class="badge badge-error">\u22120</span> replaced' in history
    dialog = text(client.get(reverse("audiences:operation_undo", args=[op.pk])))
    assert "added <strong>2</strong> and removed <strong>0</strong>" in dialog
    response = client.post(reverse("audiences:operation_undo", args=[op.pk]), follow=True)
    assert "0 customers restored, 2 removed" in text(response)
    assert members(a) == set(ids[0:4])


def test_wrong_choices_are_reported_at_their_field_and_create_nothing():
    _, a, b = two_audiences()
    client = client_for(Role.MARKETER)
    cases = [
        (form(a, b, new_audience_name="", confirm="1"), "Type the name of the new audience."),
        (form(a, b, target="add", new_audience_name="", confirm="1"), "Choose the audience"),
        (form(a, b, op2="union", confirm="1"), "Choose both the second operator and C"),
        (form(a, b, new_audience_name=" vip ", confirm="1"), "already exists"),
        (form(a, b, first="audience:999999", confirm="1"), "Select a valid choice"),
    ]
    for data, message in cases:
        page = text(client.post(url("combine"), data))
        assert message in page, message
    assert not SetJob.objects.exists() and not Audience.objects.filter(name="Both").exists()


def test_without_javascript_the_page_previews_then_confirming_opens_the_job_page():
    _, a, b = two_audiences()
    client = client_for(Role.MARKETER)
    preview = text(client.post(url("combine"), form(a, b, recount="1")))
    assert "<html" in preview and "<strong>2</strong> customers in the result" in preview
    confirm = client.post(url("combine"), form(a, b, confirm="1"))
    assert confirm.status_code == 302 and not SetJob.objects.get().is_finished


def test_a_failed_job_says_why_and_an_unknown_job_is_404():
    _, a, b = two_audiences()
    client = client_for(Role.MARKETER)
    target = create_audience("Target", actor=ACTOR)
    data = form(a, b, target="add", audience=target.pk, new_audience_name="", confirm="1")
    client.post(url("combine"), data)
    job = SetJob.objects.get()
    target.delete()
    assert pipeline.run_set_job(job.pk).status == JobStatus.FAILED  # type: ignore[union-attr]
    page = text(client.get(url("set_job", job.pk)))
    assert "The job failed:" in page and "target audience was deleted" in page
    assert client.get(url("set_job", 999_999)).status_code == 404


# --- Members on a date ------------------------------------------------------------------------


def test_members_on_a_date_counts_pages_and_exports_who_was_in_the_audience_then(settings):
    settings.TAGBASE_PAGE_SIZE = 1
    ids = make_customers(3)
    vip = create_audience("VIP", actor=ACTOR)
    add_customers_to_audience(vip, ids, actor=ACTOR, kind="api")
    remove_customers_from_audience(vip, [ids[0]], actor=ACTOR, kind="api")
    client = client_for(Role.MARKETER)
    today = timezone.localdate().isoformat()  # today: as of now

    page = text(client.get(url("as_of", vip.pk) + f"?date={today}"))
    assert "<dd>2</dd>" in page and f">{ids[1]}</a>" in page and f">{ids[0]}</a>" not in page
    crumbs = breadcrumbs(page)
    assert "VIP" in crumbs and "Members on a date" in crumbs
    nxt = f"?date={today}&amp;after={ids[1]}"
    assert nxt in page
    second = text(
        client.get(url("as_of", vip.pk) + f"?date={today}&after={ids[1]}", **htmx("as-of-members"))
    )
    assert "<html" not in second and f">{ids[2]}</a>" in second and "Next" not in second

    export = client.get(url("as_of_export", vip.pk) + f"?date={today}&id_type=sc_id")
    body = b"".join(export.streaming_content).decode()  # type: ignore[attr-defined]
    assert list(csv.reader(io.StringIO(body))) == [["sc_id"], [str(ids[1])], [str(ids[2])]]
    assert export["Content-Disposition"].startswith("attachment")
    assert export["Cache-Control"] == "no-store"


def test_members_on_a_date_refuses_a_day_that_has_not_begun_and_a_missing_date():
    vip = create_audience("VIP", actor=ACTOR)
    client = client_for(Role.MARKETER)
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    page = text(client.get(url("as_of", vip.pk) + f"?date={tomorrow}"))
    assert "is in the future" in page and "Members at that moment" not in page
    bad = client.get(url("as_of_export", vip.pk) + "?id_type=sc_id")
    assert bad.status_code == 302 and bad["Location"] == url("as_of", vip.pk)
    assert client.get(url("as_of", 999_999)).status_code == 404
    blank = text(client.get(url("as_of", vip.pk)))
    assert "Show members" in blank and "Members at that moment" not in blank


def test_members_on_a_past_date_leave_out_those_who_joined_later():
    early, late = make_customer(), make_customer()
    vip = create_audience("VIP", actor=ACTOR)
    add_customers_to_audience(vip, [early.pk], actor=ACTOR, kind="api")
    Operation.objects.filter(audience=vip).update(created_at=timezone.now() - timedelta(days=3))
    Membership.objects.filter(audience=vip).update(set_at=timezone.now() - timedelta(days=3))
    add_customers_to_audience(vip, [late.pk], actor=ACTOR, kind="api")
    day = (timezone.localdate() - timedelta(days=2)).isoformat()
    page = text(client_for(Role.MARKETER).get(url("as_of", vip.pk) + f"?date={day}"))
    assert "<dd>1</dd>" in page and f">{early.pk}</a>" in page and f">{late.pk}</a>" not in page
