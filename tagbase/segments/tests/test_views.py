"""Customers → User segments in the web UI: every page for every role, the builder's writes
(create, edit, rename, duplicate, delete) with their errors, the live count and *Select*,
*Include in a target audience* end to end (the job run in-process as a worker would), the CSV
export and a query-count ceiling on the list."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tagbase.accounts.models import Role
from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.audiences.services import add_customers_to_audience, create_audience
from tagbase.customers.models import Card, Receipt
from tagbase.customers.services import refresh_customer_stats
from tagbase.segments import pipeline, services
from tagbase.segments.models import JobStatus, Segment, SegmentJob
from tagbase.testing import make_customer, make_user, system_actor

pytestmark = pytest.mark.django_db
ACTOR = system_actor()


def rule(*conditions: dict, op: str = "and") -> dict:
    return {"op": op, "negate": False, "rules": list(conditions)}


def city(name: str = "Moscow", operator: str = "eq") -> dict:
    return {"field": "customer.city", "operator": operator, "value": name}


def in_city(count: int, name: str = "Moscow") -> list[int]:
    return [make_customer(city=name).pk for _ in range(count)]


def new_segment(name: str = "Muscovites", tree: dict | None = None) -> Segment:
    return services.create_segment(name, tree or rule(city()), actor=ACTOR)


def client_for(role: str) -> tuple[Client, object]:
    client = Client()
    user = make_user(role)
    client.force_login(user)
    return client, user


def htmx(target: str) -> dict[str, str]:
    return {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target}


def text(response) -> str:
    return response.content.decode()


def members(audience: Audience) -> set[int]:
    return set(Membership.objects.filter(audience=audience).values_list("customer_id", flat=True))


def url(name: str, *args: object) -> str:
    return reverse(f"segments:{name}", args=args)


# --- Access -----------------------------------------------------------------------------------


def reading_pages(segment: Segment, job: SegmentJob) -> list[str]:
    return [
        url("segment_list"),
        url("segment_detail", segment.pk),
        url("segment_job", job.pk),
        url("segment_export", segment.pk) + "?id_type=sc_id",
    ]


def write_pages(segment: Segment) -> list[str]:
    return [
        url("segment_create"),
        url("segment_edit", segment.pk),
        url("segment_rename", segment.pk),
        url("segment_duplicate", segment.pk),
        url("segment_delete", segment.pk),
        url("segment_include", segment.pk),
    ]


def a_segment_with_a_job() -> tuple[Segment, SegmentJob]:
    in_city(2)
    segment = new_segment()
    audience = create_audience("VIP", actor=ACTOR)
    job = services.include_in_audience(
        segment, action="add", audience_id=audience.pk, actor=ACTOR, enqueue=False
    )
    return segment, job


def test_anonymous_visitors_are_sent_to_the_login_page_from_every_page():
    segment, job = a_segment_with_a_job()
    posts = [*write_pages(segment), url("segment_refresh", segment.pk), url("segment_count")]
    responses = [(u, Client().get(u)) for u in reading_pages(segment, job) + write_pages(segment)]
    responses += [(u, Client().post(u)) for u in posts]
    for address, response in responses:
        assert response.status_code == 302, address
        assert response["Location"].startswith(reverse("login")), address


@pytest.mark.parametrize("role", [Role.MARKETER, Role.ANALYST, Role.ADMIN])
def test_every_reading_page_renders_for_every_role(role):
    segment, job = a_segment_with_a_job()
    client, _ = client_for(role)
    for address in reading_pages(segment, job):
        assert client.get(address).status_code == 200, address


def test_marketers_open_every_write_page():
    segment, _ = a_segment_with_a_job()
    client, _ = client_for(Role.MARKETER)
    for address in write_pages(segment):
        assert client.get(address).status_code == 200, address


def test_analysts_get_403_for_every_write_page_and_every_write_post_and_change_nothing():
    segment, _ = a_segment_with_a_job()
    audience = Audience.objects.get(name="VIP")
    client, _ = client_for(Role.ANALYST)
    for address in write_pages(segment):
        assert client.get(address).status_code == 403, address
    posts = [
        (url("segment_create"), {"name": "New", "rules": json.dumps(rule(city()))}),
        (url("segment_edit", segment.pk), {"name": "X", "rules": json.dumps(rule())}),
        (url("segment_rename", segment.pk), {"name": "Renamed"}),
        (url("segment_duplicate", segment.pk), {}),
        (url("segment_delete", segment.pk), {}),
        (url("segment_refresh", segment.pk), {}),
        (
            url("segment_include", segment.pk),
            {"action": "add", "audience": audience.pk, "token": "t1", "confirm": "1"},
        ),
    ]
    for address, data in posts:
        assert client.post(address, data).status_code == 403, address
    assert list(Segment.objects.values_list("name", flat=True)) == ["Muscovites"]
    assert SegmentJob.objects.count() == 1


def test_analysts_see_no_write_buttons_on_the_list_and_the_segment_page():
    segment, _ = a_segment_with_a_job()
    client, _ = client_for(Role.ANALYST)
    listing = text(client.get(url("segment_list")))
    page = text(client.get(url("segment_detail", segment.pk)))
    assert "Muscovites" in listing and "New segment" not in listing
    assert url("segment_edit", segment.pk) not in listing + page
    assert url("segment_include", segment.pk) not in page
    assert url("segment_refresh", segment.pk) not in page
    assert "Your role may export Tagbase IDs only" in page


# --- The list ---------------------------------------------------------------------------------


def test_the_list_shows_the_five_metrics_as_of_when_and_who_changed_it():
    ids = in_city(2) + in_city(2, "Omsk")
    now = timezone.now()
    Receipt.objects.create(customer_id=ids[0], number="r1", date=now, amount=Decimal("1000.00"))
    Receipt.objects.create(customer_id=ids[0], number="r2", date=now, amount=Decimal("234.50"))
    Receipt.objects.create(customer_id=ids[2], number="r3", date=now, amount=Decimal("3703.50"))
    refresh_customer_stats(ids)
    client, user = client_for(Role.MARKETER)
    services.create_segment("Muscovites", rule(city()), actor=system_actor())
    segment = Segment.objects.get()
    services.update_segment(segment, actor=type(ACTOR).of_user(user), description="Capital")

    page = text(client.get(url("segment_list")))

    row = page[page.index(f'id="segment-{segment.pk}"') :]
    row = row[: row.index("</tr>")]
    # 2 of 4 customers; 1,234.50 of 4,938.00 revenue; 1,234.50 over 2 receipts
    for shown in ("Muscovites", "Capital", ">2<", "50.00 %", "25.00 %", "617.25", "1,234.50"):
        assert shown in row, shown
    assert user.get_username() in row
    assert segment.metrics_at.strftime("%Y") in row
    assert url("segment_detail", segment.pk) in row and url("segment_edit", segment.pk) in row


def test_the_list_searches_by_name_ignoring_case_and_shows_an_empty_state():
    new_segment("Muscovites")
    new_segment("Omsk people", rule(city("Omsk")))
    client, _ = client_for(Role.MARKETER)

    found = text(client.get(url("segment_list") + "?q=  MUSCO", **htmx("results")))
    assert "Muscovites" in found and "Omsk people" not in found
    assert "<html" not in found  # only the results part
    nothing = text(client.get(url("segment_list") + "?q=zzz"))
    assert "No segment matches “zzz”" in nothing
    Segment.objects.all().delete()
    empty = text(client.get(url("segment_list")))
    assert "No user segments yet" in empty and url("segment_create") in empty


def test_the_list_runs_the_same_number_of_queries_for_3_and_30_segments():
    client, _ = client_for(Role.MARKETER)

    editor = make_user()  # one user: without select_related each row would still query it

    def queries_for(count: int) -> int:
        Segment.objects.all().delete()
        for n in range(count):
            Segment.objects.create(name=f"S{n:02}", rules=rule(), updated_by=editor)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url("segment_list")).status_code == 200
        return len(captured)

    few, many = queries_for(3), queries_for(30)
    assert few == many
    assert many <= 8


# --- The builder ------------------------------------------------------------------------------


def test_the_builder_page_carries_the_catalogue_and_the_names_for_its_pickers():
    vip = create_audience("VIP", actor=ACTOR)
    other = new_segment("Other")
    segment = new_segment("Muscovites")
    client, _ = client_for(Role.MARKETER)

    response = client.get(url("segment_edit", segment.pk))

    context = response.context
    groups = [g["group"] for g in context["catalogue"]]
    assert groups == ["Customer", "Receipts", "Cards", "Audiences", "Events", "Segments"]
    assert context["audience_names"] == [{"id": vip.pk, "name": "VIP"}]
    assert context["segment_names"] == [{"id": other.pk, "name": "Other"}]  # not itself
    page = text(response)
    for script in ("segment-catalogue", "segment-audiences", "segment-segments"):
        assert f'id="{script}" type="application/json"' in page
    assert 'name="rules"' in page and "segments/builder.js" in page
    assert json.loads(context["form"]["rules"].value()) == segment.rules


def test_saving_a_new_segment_creates_it_with_its_metrics_and_opens_its_page():
    in_city(3)
    in_city(1, "Omsk")
    client, user = client_for(Role.MARKETER)
    data = {
        "name": "  Muscovites ",
        "description": "Capital",
        "rules": json.dumps(rule(city(" moscow "))),
    }

    response = client.post(url("segment_create"), data, follow=True)

    segment = Segment.objects.get()
    assert response.redirect_chain[-1][0] == url("segment_detail", segment.pk)
    assert (segment.name, segment.description, segment.customers) == ("Muscovites", "Capital", 3)
    assert segment.rules["rules"][0]["value"] == "moscow"  # trimmed by the server
    assert segment.created_by == user
    page = text(response)
    assert "Segment “Muscovites” saved." in page
    assert "Customer. City equals “moscow”" in page


def test_saving_reports_a_missing_name_a_taken_name_and_a_rule_error_where_it_is():
    new_segment("Muscovites")
    client, _ = client_for(Role.MARKETER)
    good = json.dumps(rule(city()))

    no_name = client.post(url("segment_create"), {"name": "", "rules": good})
    taken = client.post(url("segment_create"), {"name": " MUSCOVITES", "rules": good})
    bad_value = {"field": "customer.age", "operator": "gte", "value": "thirty"}
    bad_rule = client.post(
        url("segment_create"), {"name": "Grown-ups", "rules": json.dumps(rule(city(), bad_value))}
    )
    not_json = client.post(url("segment_create"), {"name": "Broken", "rules": "{not json"})

    assert no_name.status_code == 200 and "This field is required." in text(no_name)
    assert "already exists" in text(taken)
    page = text(bad_rule)
    assert 'data-rule-error="rules[1].value"' in page
    assert "must be a whole number, not &#x27;thirty&#x27;" in page
    assert "The rule is not valid JSON" in text(not_json)
    assert list(Segment.objects.values_list("name", flat=True)) == ["Muscovites"]


def test_a_missing_audience_in_a_rule_is_reported_at_its_condition():
    client, _ = client_for(Role.MARKETER)
    tree = rule(city(), {"field": "audience", "operator": "in", "value": 999_999})
    page = text(client.post(url("segment_create"), {"name": "X", "rules": json.dumps(tree)}))
    assert 'data-rule-error="rules[1].value"' in page
    assert "audience 999999 does not exist" in page
    assert not Segment.objects.exists()


def test_editing_changes_the_name_and_the_rule_and_recomputes_the_metrics():
    in_city(2)
    in_city(3, "Omsk")
    segment = new_segment()
    client, _ = client_for(Role.MARKETER)
    data = {"name": "Omsk people", "description": "", "rules": json.dumps(rule(city("Omsk")))}

    response = client.post(url("segment_edit", segment.pk), data)

    assert response.status_code == 302 and response["Location"] == url("segment_detail", segment.pk)
    segment.refresh_from_db()
    assert (segment.name, segment.customers) == ("Omsk people", 3)
    assert segment.rules["rules"][0]["value"] == "Omsk"


def test_editing_refuses_a_rule_that_would_use_the_segment_through_another():
    first = new_segment("First")
    second = new_segment("Second", rule({"field": "segment", "operator": "in", "value": first.pk}))
    client, _ = client_for(Role.MARKETER)
    tree = rule({"field": "segment", "operator": "in", "value": second.pk})

    page = text(
        client.post(url("segment_edit", first.pk), {"name": "First", "rules": json.dumps(tree)})
    )

    assert 'data-rule-error="rules[0].value"' in page
    assert "a segment cannot include itself: “First” → “Second” → “First”" in page
    first.refresh_from_db()
    assert first.rules["rules"][0]["field"] == "customer.city"


def test_select_shows_the_five_metrics_the_first_members_and_the_rule_in_words():
    ids = in_city(3)
    in_city(1, "Omsk")
    Receipt.objects.create(
        customer_id=ids[1], number="r", date=timezone.now(), amount=Decimal("99.99")
    )
    refresh_customer_stats(ids)
    client, _ = client_for(Role.MARKETER)
    data = {"select": "1", "name": "", "rules": json.dumps(rule(city()))}

    part = text(client.post(url("segment_create"), data, **htmx("selection")))

    assert part.lstrip().startswith('<section id="selection"')
    for shown in (">3<", "75.00 %", "100.00 %", "99.99", "Customer. City equals “Moscow”"):
        assert shown in part, shown
    for sc_id in ids:
        assert reverse("customers:customer_detail", args=[sc_id]) in part
    assert "The first 3 of 3 customers" in part
    assert not Segment.objects.exists()


def test_select_without_javascript_renders_the_whole_page_without_requiring_a_name():
    in_city(1)
    client, _ = client_for(Role.MARKETER)
    data = {"select": "1", "name": "", "rules": json.dumps(rule(city()))}
    page = text(client.post(url("segment_create"), data))
    assert "<html" in page and 'id="selection"' in page and "The first 1 of 1 customer" in page
    assert "This field is required." not in page


def test_select_reports_a_rule_error_with_its_place():
    client, _ = client_for(Role.MARKETER)
    tree = rule(
        {
            "op": "or",
            "rules": [city(), {"field": "customer.age", "operator": "between", "value": [40, 30]}],
        }
    )
    part = text(
        client.post(
            url("segment_create"), {"select": "1", "rules": json.dumps(tree)}, **htmx("selection")
        )
    )
    assert 'data-rule-error="rules[0].rules[1].value"' in part
    assert "the first value must not be greater than the second" in part


# --- The live count ---------------------------------------------------------------------------


def test_the_live_count_answers_the_count_and_the_sentence():
    in_city(4)
    in_city(2, "Omsk")
    client, _ = client_for(Role.ANALYST)  # changes nothing: every role may count
    tree = rule(city(), city("Omsk"), op="or")
    data = client.post(url("segment_count"), {"rules": json.dumps(tree)}).json()
    assert data == {
        "count": 6,
        "count_text": "6",
        "summary": "Customer. City equals “Moscow” or Customer. City equals “Omsk”",
    }


def test_the_live_count_names_the_place_of_an_error():
    client, _ = client_for(Role.MARKETER)
    tree = rule(
        city(), {"op": "and", "rules": [{"field": "customer.age", "operator": "gte", "value": 300}]}
    )
    error = client.post(url("segment_count"), {"rules": json.dumps(tree)}).json()["error"]
    assert error == {
        "field": "rules[1].rules[0].value",
        "message": "must be between 0 and 200, not 300",
        "code": "invalid_rule",
    }
    broken = client.post(url("segment_count"), {"rules": "[1,"}).json()["error"]
    assert broken["field"] == "" and "not valid JSON" in broken["message"]


def test_the_live_count_checks_cycles_for_the_segment_being_edited():
    first = new_segment("First")
    second = new_segment("Second", rule({"field": "segment", "operator": "in", "value": first.pk}))
    client, _ = client_for(Role.MARKETER)
    tree = json.dumps(rule({"field": "segment", "operator": "in", "value": second.pk}))
    error = client.post(url("segment_count"), {"rules": tree, "segment": first.pk}).json()["error"]
    assert error["code"] == "segment_cycle" and error["field"] == "rules[0].value"


def test_the_live_count_is_a_post_only_view():
    client, _ = client_for(Role.MARKETER)
    assert client.get(url("segment_count")).status_code == 405


# --- One segment ------------------------------------------------------------------------------


def test_the_segment_page_shows_the_rule_the_metrics_and_pages_of_members(settings):
    settings.TAGBASE_PAGE_SIZE = 2
    ids = in_city(3)
    segment = new_segment()
    client, _ = client_for(Role.MARKETER)

    first = text(client.get(url("segment_detail", segment.pk)))
    second = text(
        client.get(url("segment_detail", segment.pk) + f"?after={ids[1]}", **htmx("members"))
    )

    assert "Customer. City equals “Moscow”" in first and "Figures as of" in first
    assert f'?after={ids[1]}"' in first
    assert reverse("customers:customer_detail", args=[ids[2]]) not in first
    assert reverse("customers:customer_detail", args=[ids[2]]) in second
    assert "<html" not in second and 'rel="next"' not in second


def test_the_segment_page_says_so_when_a_saved_rule_no_longer_validates():
    segment = new_segment()
    Segment.objects.filter(pk=segment.pk).update(
        rules=rule({"field": "customer.shoe_size", "operator": "eq", "value": 42})
    )
    client, _ = client_for(Role.MARKETER)
    page = text(client.get(url("segment_detail", segment.pk)))
    assert (
        "rule is no longer valid" in page and "unknown field &#x27;customer.shoe_size&#x27;" in page
    )


def test_refresh_recomputes_the_metrics_now():
    in_city(1)
    segment = new_segment()
    in_city(2)
    Segment.objects.filter(pk=segment.pk).update(metrics_at=timezone.now() - timedelta(days=1))
    client, _ = client_for(Role.MARKETER)

    response = client.post(url("segment_refresh", segment.pk), follow=True)

    segment.refresh_from_db()
    assert segment.customers == 3
    assert timezone.now() - segment.metrics_at < timedelta(minutes=1)
    assert "Metrics of “Muscovites” refreshed." in text(response)
    assert client.get(url("segment_refresh", segment.pk)).status_code == 405


def test_rename_in_the_dialog_renames_and_reports_a_taken_name_in_place():
    segment = new_segment()
    new_segment("Omsk people", rule(city("Omsk")))
    client, _ = client_for(Role.MARKETER)

    taken = client.post(url("segment_rename", segment.pk), {"name": "omsk PEOPLE"}, **htmx("modal"))
    done = client.post(url("segment_rename", segment.pk), {"name": "Capital"}, **htmx("modal"))

    assert taken.status_code == 200 and "already exists" in text(taken)
    assert "<html" not in text(taken)
    assert done["HX-Redirect"] == url("segment_detail", segment.pk)
    segment.refresh_from_db()
    assert segment.name == "Capital"


def test_duplicate_copies_the_rule_with_a_copy_name_or_the_given_one():
    segment = new_segment(
        "Muscovites", rule(city(), {"field": "customer.age", "operator": "gte", "value": 30})
    )
    client, _ = client_for(Role.MARKETER)

    client.post(url("segment_duplicate", segment.pk), {"name": ""})
    response = client.post(url("segment_duplicate", segment.pk), {"name": "Grown-up Muscovites"})

    copy = Segment.objects.get(name="Muscovites (copy)")
    named = Segment.objects.get(name="Grown-up Muscovites")
    assert copy.rules == named.rules == segment.rules
    assert response["Location"] == url("segment_detail", named.pk)


def test_delete_removes_the_segment_but_not_while_another_uses_it():
    used = new_segment("Used")
    user = new_segment("User of it", rule({"field": "segment", "operator": "in", "value": used.pk}))
    client, _ = client_for(Role.MARKETER)

    dialog = text(client.get(url("segment_delete", used.pk), **htmx("modal")))
    refused = client.post(url("segment_delete", used.pk), follow=True)

    assert "cannot be deleted" in dialog and "“User of it”" in dialog
    assert "Delete segment</button>" not in dialog
    assert "is used by “User of it”" in text(refused)
    assert Segment.objects.filter(pk=used.pk).exists()

    client.post(url("segment_delete", user.pk))
    gone = client.post(url("segment_delete", used.pk), follow=True)
    assert not Segment.objects.exists()
    assert "Segment “Used” deleted." in text(gone)


# --- Include in a target audience -------------------------------------------------------------


def include(client: Client, segment: Segment, **data: object):
    return client.post(url("segment_include", segment.pk), data, **htmx("modal"))


def test_the_dialog_shows_the_exact_number_that_will_be_added_or_removed():
    ids = in_city(3)
    in_city(2, "Omsk")
    vip = create_audience("VIP", actor=ACTOR)
    add_customers_to_audience(vip, [ids[0]], actor=ACTOR, kind="api")
    segment = new_segment()
    client, _ = client_for(Role.MARKETER)
    address = url("segment_include", segment.pk)

    dialog = text(client.get(address, **htmx("modal")))
    add = text(
        client.post(
            address, {"action": "add", "audience": vip.pk, "token": "t"}, **htmx("include-count")
        )
    )
    remove = text(
        client.post(
            address, {"action": "remove", "audience": vip.pk, "token": "t"}, **htmx("include-count")
        )
    )
    fresh = text(
        client.post(
            address,
            {"action": "add", "new_audience_name": "New", "token": "t"},
            **htmx("include-count"),
        )
    )

    assert f'<option value="{vip.pk}">VIP</option>' in dialog and 'name="token"' in dialog
    assert "<strong>2</strong> customers will be added to" in add and "“VIP”" in add
    assert "<strong>1</strong> customer will be removed from" in remove
    assert (
        "<strong>3</strong> customers will be added to" in fresh
        and "the new audience “New”" in fresh
    )
    assert not SegmentJob.objects.exists() and not Audience.objects.filter(name="New").exists()


def test_including_adds_the_members_once_shows_the_job_and_the_operation_can_be_undone():
    ids = in_city(3)
    in_city(1, "Omsk")
    vip = create_audience("VIP", actor=ACTOR)
    add_customers_to_audience(vip, [ids[0]], actor=ACTOR, kind="api")
    segment = new_segment()
    client, user = client_for(Role.MARKETER)
    data = {"action": "add", "audience": vip.pk, "token": "dialog-1", "confirm": "1"}

    first = text(include(client, segment, **data))
    again = text(include(client, segment, **data))  # a double submit of the same dialog

    job = SegmentJob.objects.get()
    assert (job.expected, job.status, job.created_by) == (2, JobStatus.QUEUED, user)
    assert 'hx-trigger="every 1s"' in first and "About 2 customers added to “VIP”" in first
    assert url("segment_job", job.pk) in again

    pipeline.run_segment_job(job.pk)  # what a worker does
    done = text(client.get(url("segment_job", job.pk), **htmx("job-status")))

    op = Operation.objects.get(kind=OperationKind.SEGMENT)
    assert "every 1s" not in done and "2 customers added to" in done
    assert f"as operation #{op.pk}" in done
    history = reverse("audiences:audience_detail", args=[vip.pk]) + f"#operation-{op.pk}"
    assert history in done
    assert members(vip) == set(ids)
    audience_page = text(client.get(reverse("audiences:audience_detail", args=[vip.pk])))
    assert reverse("audiences:operation_undo", args=[op.pk]) in audience_page

    client.post(reverse("audiences:operation_undo", args=[op.pk]))
    assert members(vip) == {ids[0]}


def test_including_can_remove_the_members_and_undo_puts_them_back():
    ids = in_city(2)
    others = in_city(1, "Omsk")
    vip = create_audience("VIP", actor=ACTOR)
    add_customers_to_audience(vip, ids + others, actor=ACTOR, kind="api")
    segment = new_segment()
    client, _ = client_for(Role.MARKETER)

    include(client, segment, action="remove", audience=vip.pk, token="r1", confirm="1")
    job = SegmentJob.objects.get()
    pipeline.run_segment_job(job.pk)
    page = text(client.get(url("segment_job", job.pk)))

    op = Operation.objects.get(kind=OperationKind.SEGMENT)
    assert (job.expected, op.removed) == (2, 2)
    assert "2 customers removed from" in page and "<html" in page
    assert members(vip) == set(others)
    client.post(reverse("audiences:operation_undo", args=[op.pk]))
    assert members(vip) == set(ids + others)


def test_including_in_a_new_audience_creates_it_and_refuses_the_wrong_combinations():
    ids = in_city(2)
    vip = create_audience("VIP", actor=ACTOR)
    segment = new_segment()
    client, _ = client_for(Role.MARKETER)

    nothing = text(include(client, segment, action="add", token="a", confirm="1"))
    both = text(
        include(
            client,
            segment,
            action="add",
            audience=vip.pk,
            new_audience_name="X",
            token="b",
            confirm="1",
        )
    )
    remove_new = text(
        include(client, segment, action="remove", new_audience_name="X", token="c", confirm="1")
    )
    taken = text(
        include(client, segment, action="add", new_audience_name=" vip ", token="d", confirm="1")
    )
    assert "Choose an audience or type the name of a new one." in nothing
    assert "not both" in both
    assert "can only be removed from an existing audience" in remove_new
    assert "already exists" in taken
    assert not SegmentJob.objects.exists()

    include(client, segment, action="add", new_audience_name="Fresh", token="e", confirm="1")
    fresh = Audience.objects.get(name="Fresh")
    pipeline.run_segment_job(SegmentJob.objects.get().pk)
    assert members(fresh) == set(ids)


def test_without_javascript_the_dialog_recounts_then_confirming_opens_the_job_page():
    in_city(2)
    vip = create_audience("VIP", actor=ACTOR)
    segment = new_segment()
    client, _ = client_for(Role.MARKETER)
    address = url("segment_include", segment.pk)

    recount = text(
        client.post(address, {"action": "add", "audience": vip.pk, "token": "n", "recount": "1"})
    )
    confirm = client.post(
        address, {"action": "add", "audience": vip.pk, "token": "n", "confirm": "1"}
    )

    assert "<html" in recount and "<strong>2</strong> customers will be added to" in recount
    job = SegmentJob.objects.get()
    assert confirm.status_code == 302 and confirm["Location"] == url("segment_job", job.pk)


def test_a_failed_job_says_why_and_the_segment_page_lists_recent_inclusions():
    in_city(1)
    vip = create_audience("VIP", actor=ACTOR)
    segment = new_segment()
    client, _ = client_for(Role.MARKETER)
    include(client, segment, action="add", audience=vip.pk, token="f", confirm="1")
    job = SegmentJob.objects.get()
    vip.delete()  # the audience is gone before a worker runs the job
    pipeline.run_segment_job(job.pk)

    page = text(client.get(url("segment_job", job.pk)))
    segment_page = text(client.get(url("segment_detail", segment.pk)))

    assert "The job failed:" in page and "The audience was deleted before the job ran." in page
    assert url("segment_job", job.pk) in segment_page and "failed" in segment_page
    assert client.get(url("segment_job", 999_999)).status_code == 404


# --- Export -----------------------------------------------------------------------------------


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_the_export_streams_one_identifier_type_formula_safe_leaving_out_customers_without_it():
    a = make_customer(city="Moscow", phone="+79161234567", external_id="=HYPERLINK(1)")
    b = make_customer(city="Moscow", external_id="P-2")
    make_customer(city="Omsk", phone="+79160000000")
    Card.objects.create(customer=a, number="1001")
    Card.objects.create(customer=a, number="1002")
    segment = new_segment()
    client, _ = client_for(Role.MARKETER)

    def export(id_type: str):
        return client.get(url("segment_export", segment.pk) + f"?id_type={id_type}")

    ids = export("sc_id")
    assert ids.streaming and ids["Content-Type"] == "text/csv; charset=utf-8"
    assert ids["Content-Disposition"] == f'attachment; filename="segment-{segment.pk}-sc_id.csv"'
    assert csv_rows(ids) == [["sc_id"], [str(a.pk)], [str(b.pk)]]
    assert csv_rows(export("phone")) == [["phone"], ["'+79161234567"]]
    assert csv_rows(export("external_id")) == [["external_id"], ["'=HYPERLINK(1)"], ["P-2"]]
    assert csv_rows(export("card")) == [["card"], ["1001"], ["1002"]]
    assert export("nonsense").status_code == 302


def test_analysts_may_export_tagbase_ids_only_as_for_audiences():
    make_customer(city="Moscow", phone="+79161234567")
    segment = new_segment()
    analyst, _ = client_for(Role.ANALYST)
    for id_type in ("external_id", "phone", "email", "card"):
        assert (
            analyst.get(url("segment_export", segment.pk) + f"?id_type={id_type}").status_code
            == 403
        )
    assert analyst.get(url("segment_export", segment.pk) + "?id_type=sc_id").status_code == 200
    page = text(analyst.get(url("segment_detail", segment.pk)))
    assert '<option value="sc_id">' in page and '<option value="phone">' not in page
