"""Segments through the API: CRUD, rule errors naming the place, preview figures, including the
members in an audience (and undoing it), idempotency, jobs, members pages, CSV and who may."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tagbase.accounts.models import Role
from tagbase.audiences.models import Audience, Membership, Operation
from tagbase.audiences.services import add_customers_to_audience, create_audience
from tagbase.customers.models import CustomerStats
from tagbase.segments.models import Segment, SegmentJob
from tagbase.segments.pipeline import run_segment_job
from tagbase.segments.services import create_segment
from tagbase.testing import make_customer, system_actor

from .support import assert_error, send, session_client, token_client

pytestmark = pytest.mark.django_db

ACTOR = system_actor()


def city_rule(city: str = "Moscow") -> dict:
    return {"op": "and", "rules": [{"field": "customer.city", "operator": "eq", "value": city}]}


def segment(name: str, rules: dict | None = None) -> Segment:
    return create_segment(name, rules or city_rule(), actor=ACTOR)


def in_city(count: int, city: str = "Moscow") -> list[int]:
    return [make_customer(city=city).pk for _ in range(count)]


def members_of(audience_id: int) -> set[int]:
    return set(
        Membership.objects.filter(audience_id=audience_id).values_list("customer_id", flat=True)
    )


# --- CRUD -------------------------------------------------------------------------------------


def test_creating_a_segment_answers_201_with_its_rule_summary_and_metrics():
    in_city(2)
    in_city(1, "Kazan")
    client, _ = token_client()
    body = {"name": " Moscow ", "description": "Capital", "rules": city_rule(" Moscow ")}
    response = send(client, "POST", "/segments", body)
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["name"], data["description"]) == ("Moscow", "Capital")
    assert data["rules"]["rules"][0]["value"] == "Moscow"  # trimmed as saved
    assert "Moscow" in data["summary"]
    assert data["metrics"]["customers"] == 2
    assert data["metrics"]["as_of"] is not None
    assert Segment.objects.get(pk=data["id"]).customers == 2


def test_list_detail_update_and_delete():
    first = segment("Beta")
    segment("alpha", city_rule("Kazan"))
    client, _ = token_client()
    listed = send(client, "GET", "/segments").json()
    assert [s["name"] for s in listed["items"]] == ["alpha", "Beta"]
    assert listed["count"] == 2 and "metrics" in listed["items"][0]
    assert [s["name"] for s in send(client, "GET", "/segments?q=BET").json()["items"]] == ["Beta"]

    detail = send(client, "GET", f"/segments/{first.pk}").json()
    assert detail["id"] == first.pk and detail["uses"] == []

    in_city(3, "Kazan")
    patched = send(
        client, "PATCH", f"/segments/{first.pk}", {"name": "Gamma", "rules": city_rule("Kazan")}
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["name"] == "Gamma"
    assert patched.json()["metrics"]["customers"] == 3  # recomputed with the new rule

    assert send(client, "DELETE", f"/segments/{first.pk}").status_code == 204
    assert not Segment.objects.filter(pk=first.pk).exists()
    assert_error(send(client, "GET", f"/segments/{first.pk}"), 404, "segment_not_found")


def test_an_update_must_change_something_and_refuses_unknown_fields():
    made = segment("S")
    client, _ = token_client()
    assert_error(send(client, "PATCH", f"/segments/{made.pk}", {}), 422, "validation_error")
    assert_error(
        send(client, "PATCH", f"/segments/{made.pk}", {"nmae": "x"}),
        422,
        "validation_error",
        "nmae",
    )


def test_a_taken_name_is_409_after_case_folding():
    segment("Loyal Customers")
    client, _ = token_client()
    body = {"name": "loyal  customers", "rules": city_rule()}
    assert_error(send(client, "POST", "/segments", body), 409, "segment_name_taken", "name")


def test_an_unknown_segment_is_404_and_an_out_of_range_id_422():
    client, _ = token_client()
    assert_error(send(client, "GET", "/segments/999999"), 404, "segment_not_found")
    assert_error(send(client, "GET", "/segments/0"), 422, "validation_error", "segment_id")


def test_duplicate_copies_the_rule_with_a_new_name():
    original = segment("VIP")
    client, _ = token_client()
    first = send(client, "POST", f"/segments/{original.pk}/duplicate")
    assert first.status_code == 201, first.content
    assert first.json()["name"] == "VIP (copy)"
    assert first.json()["rules"] == original.rules
    second = send(client, "POST", f"/segments/{original.pk}/duplicate?name=Other")
    assert second.json()["name"] == "Other"
    again = send(client, "POST", f"/segments/{original.pk}/duplicate")
    assert again.json()["name"] == "VIP (copy 2)"


def test_refresh_recomputes_the_metrics():
    made = segment("Moscow")
    assert made.customers == 0
    in_city(4)
    client, _ = token_client()
    response = send(client, "POST", f"/segments/{made.pk}/refresh")
    assert response.status_code == 200
    assert response.json()["metrics"]["customers"] == 4
    assert Segment.objects.get(pk=made.pk).customers == 4


def test_the_field_catalogue_lists_groups_fields_and_operators():
    client, _ = token_client("read")
    body = send(client, "GET", "/segments/fields").json()
    groups = [g["group"] for g in body["groups"]]
    assert groups == ["Customer", "Receipts", "Cards", "Audiences", "Events", "Segments"]
    fields = {f["id"]: f for g in body["groups"] for f in g["fields"]}
    assert fields["events.count"]["params"] == ["event", "days"]
    assert {o["id"] for o in fields["customer.city"]["operators"]} >= {"eq", "in_list"}


# --- Rule errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "code", "field"),
    [
        (
            {"op": "and", "rules": [{"field": "customer.age", "operator": "gte", "value": "abc"}]},
            "invalid_rule",
            "rules[0].value",
        ),
        (
            {"op": "and", "rules": [{"op": "or", "rules": [{"field": "nope", "operator": "eq"}]}]},
            "invalid_rule",
            "rules[0].rules[0].field",
        ),
        ({"op": "xor", "rules": []}, "invalid_rule", "op"),
        (
            {"op": "and", "rules": [{"field": "audience", "operator": "in", "value": 987654}]},
            "invalid_rule",
            "rules[0].value",
        ),
    ],
)
def test_an_invalid_rule_is_422_naming_the_place(rules, code, field):
    client, _ = token_client()
    error = assert_error(
        send(client, "POST", "/segments", {"name": "Bad", "rules": rules}), 422, code, field
    )
    assert error["message"].startswith(f"{field}: ")
    assert not Segment.objects.exists()
    # The preview refuses it alike.
    assert_error(send(client, "POST", "/segments/preview", {"rules": rules}), 422, code, field)


def test_rules_that_are_not_an_object_are_a_validation_error():
    client, _ = token_client()
    response = send(client, "POST", "/segments", {"name": "Bad", "rules": [1]})
    assert_error(response, 422, "validation_error", "rules")


def test_a_segment_that_would_use_itself_is_refused_naming_the_chain():
    a = segment("A")
    b = segment(
        "B", {"op": "and", "rules": [{"field": "segment", "operator": "in", "value": a.pk}]}
    )
    client, _ = token_client()
    uses_b = {"op": "or", "rules": [{"field": "segment", "operator": "in", "value": b.pk}]}
    error = assert_error(
        send(client, "PATCH", f"/segments/{a.pk}", {"rules": uses_b}),
        422,
        "segment_cycle",
        "rules[0].value",
    )
    assert "“A”" in error["message"] and "“B”" in error["message"]
    assert Segment.objects.get(pk=a.pk).rules == a.rules
    # A preview for the segment being edited is refused the same way.
    body = {"rules": uses_b, "segment_id": a.pk}
    assert_error(send(client, "POST", "/segments/preview", body), 422, "segment_cycle")


def test_a_segment_used_by_another_cannot_be_deleted():
    a = segment("Base")
    segment("User", {"op": "and", "rules": [{"field": "segment", "operator": "in", "value": a.pk}]})
    client, _ = token_client()
    error = assert_error(send(client, "DELETE", f"/segments/{a.pk}"), 409, "segment_in_use")
    assert "“User”" in error["message"]
    assert Segment.objects.filter(pk=a.pk).exists()


# --- Preview ----------------------------------------------------------------------------------


def stats(sc_id: int, receipts: int, total: str) -> None:
    CustomerStats.objects.update_or_create(
        customer_id=sc_id,
        defaults={"receipt_count": receipts, "total_amount": Decimal(total)},
    )


def test_preview_gives_the_five_metrics_and_a_sample_in_sc_id_order():
    moscow = in_city(3)
    others = in_city(5, "Kazan")
    stats(moscow[0], 2, "100.00")
    stats(moscow[1], 1, "50.01")
    stats(others[0], 1, "249.99")
    client, _ = token_client("read")
    response = send(client, "POST", "/segments/preview", {"rules": city_rule(), "sample": 2})
    assert response.status_code == 200, response.content
    data = response.json()
    m = data["metrics"]
    assert m["customers"] == 3
    assert Decimal(m["percent_customers"]) == Decimal("37.50")  # 3 of 8
    assert Decimal(m["percent_revenue"]) == Decimal("37.50")  # 150.01 of 400.00, half-up
    assert Decimal(m["average_receipt"]) == Decimal("50.00")  # 150.01 / 3, half-up
    assert Decimal(m["total_value"]) == Decimal("150.01")
    assert [c["sc_id"] for c in data["sample"]] == moscow[:2]
    assert "Moscow" in data["summary"]
    assert not Segment.objects.exists()  # nothing saved


def test_preview_of_an_empty_rule_matches_everyone_and_without_receipts_has_no_average():
    in_city(2)
    client, _ = token_client("read")
    data = send(client, "POST", "/segments/preview", {"rules": {"op": "and", "rules": []}}).json()
    assert data["metrics"]["customers"] == 2
    assert data["metrics"]["average_receipt"] is None
    assert Decimal(data["metrics"]["percent_revenue"]) == 0


# --- Include in a target audience -------------------------------------------------------------


def test_adding_members_to_an_audience_runs_as_a_job_and_can_be_undone():
    moscow = in_city(3)
    in_city(2, "Kazan")
    target = create_audience("Target", actor=ACTOR)
    add_customers_to_audience(target, [moscow[0]], actor=ACTOR, kind="api")
    made = segment("Moscow")
    client, _ = token_client()
    response = send(
        client, "POST", f"/segments/{made.pk}/audience", {"action": "add", "audience": target.pk}
    )
    assert response.status_code == 202, response.content
    job = response.json()
    assert (job["status"], job["expected"], job["audience"]) == ("queued", 2, target.pk)
    assert members_of(target.pk) == {moscow[0]}  # nothing yet: the worker does it

    run_segment_job(job["id"])
    done = send(client, "GET", f"/segments/jobs/{job['id']}").json()
    assert (done["status"], done["added"], done["removed"]) == ("succeeded", 2, 0)
    assert members_of(target.pk) == set(moscow)
    op = Operation.objects.get(pk=done["operation"])
    assert op.kind == "segment" and op.actor_label == "token:erp"

    undo = send(client, "POST", f"/operations/{done['operation']}/undo")
    assert undo.status_code == 200, undo.content
    assert members_of(target.pk) == {moscow[0]}


def test_removing_members_from_an_audience():
    moscow = in_city(2)
    kazan = in_city(2, "Kazan")
    target = create_audience("Target", actor=ACTOR)
    add_customers_to_audience(target, moscow + kazan, actor=ACTOR, kind="api")
    made = segment("Moscow")
    client, _ = token_client()
    body = {"action": "remove", "audience": target.pk}
    job = send(client, "POST", f"/segments/{made.pk}/audience", body).json()
    assert job["expected"] == 2
    run_segment_job(job["id"])
    done = send(client, "GET", f"/segments/jobs/{job['id']}").json()
    assert (done["status"], done["removed"]) == ("succeeded", 2)
    assert members_of(target.pk) == set(kazan)


def test_a_new_audience_name_creates_the_audience_at_once():
    in_city(2)
    made = segment("Moscow")
    client, _ = token_client()
    body = {"action": "add", "new_audience_name": "Fresh"}
    job = send(client, "POST", f"/segments/{made.pk}/audience", body).json()
    fresh = Audience.objects.get(name="Fresh")
    assert job["audience"] == fresh.pk and job["audience_name"] == "Fresh"
    run_segment_job(job["id"])
    assert len(members_of(fresh.pk)) == 2


def test_refusals_of_include_name_their_field():
    made = segment("Moscow")
    create_audience("Taken", actor=ACTOR)
    client, _ = token_client()
    url = f"/segments/{made.pk}/audience"
    assert_error(
        send(client, "POST", url, {"action": "add", "new_audience_name": "taken"}),
        409,
        "audience_name_taken",
        "new_audience_name",
    )
    assert_error(
        send(client, "POST", url, {"action": "add", "audience": 987654}),
        422,
        "audience_not_found",
        "audience",
    )
    assert_error(
        send(client, "POST", url, {"action": "remove", "new_audience_name": "New"}),
        422,
        "segment_error",
        "new_audience_name",
    )
    assert_error(send(client, "POST", url, {"action": "add"}), 422, "segment_error", "audience")
    assert_error(
        send(client, "POST", url, {"action": "move", "audience": 1}),
        422,
        "validation_error",
        "action",
    )
    assert_error(
        send(client, "POST", "/segments/987654/audience", {"action": "add", "audience": 1}),
        404,
        "segment_not_found",
    )
    assert not SegmentJob.objects.exists()
    assert not Audience.objects.filter(name="New").exists()


def test_an_idempotency_key_replays_the_first_job_and_refuses_another_request():
    in_city(1)
    made = segment("Moscow")
    target = create_audience("Target", actor=ACTOR)
    other = create_audience("Other", actor=ACTOR)
    client, _ = token_client()
    url = f"/segments/{made.pk}/audience"
    headers = {"headers": {"Idempotency-Key": "crm-2024-06-01-1"}}
    first = send(client, "POST", url, {"action": "add", "audience": target.pk}, **headers)
    again = send(client, "POST", url, {"action": "add", "audience": target.pk}, **headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert SegmentJob.objects.count() == 1
    assert_error(
        send(client, "POST", url, {"action": "add", "audience": other.pk}, **headers),
        422,
        "idempotency_key_reused",
        "Idempotency-Key",
    )
    # Keys are per caller: another token's identical key makes its own job.
    other_client, _ = token_client(name="crm")
    third = send(other_client, "POST", url, {"action": "add", "audience": target.pk}, **headers)
    assert third.json()["id"] != first.json()["id"]
    bad = {"headers": {"Idempotency-Key": "has space"}}
    assert_error(
        send(client, "POST", url, {"action": "add", "audience": target.pk}, **bad),
        422,
        "validation_error",
        "Idempotency-Key",
    )


def test_a_job_that_does_not_exist_is_404():
    client, _ = token_client("read")
    assert_error(send(client, "GET", "/segments/jobs/987654"), 404, "job_not_found")


# --- Members ----------------------------------------------------------------------------------


def test_walking_the_members_pages_returns_every_member_exactly_once():
    moscow = in_city(5)
    in_city(2, "Kazan")
    made = segment("Moscow")
    client, _ = token_client("read")
    seen, after, pages = [], 0, 0
    while True:
        page = send(client, "GET", f"/segments/{made.pk}/members?after={after}&limit=2").json()
        seen += [m["sc_id"] for m in page["items"]]
        pages += 1
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == moscow and pages == 3
    full = send(client, "GET", f"/segments/{made.pk}/members?limit=5").json()
    assert full["next_after"] is None and len(full["items"]) == 5


def test_the_members_csv_has_a_header_and_one_identifier_a_line():
    a = make_customer(city="Moscow", phone="+79990000001")
    b = make_customer(city="Moscow")
    make_customer(city="Kazan", phone="+79990000002")
    made = segment("Moscow")
    client, _ = token_client("read")
    response = send(client, "GET", f"/segments/{made.pk}/members.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f"segment-{made.pk}-sc_id.csv" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    assert text.splitlines() == ["sc_id", str(a.pk), str(b.pk)]
    phones = send(client, "GET", f"/segments/{made.pk}/members.csv?id_type=phone")
    assert b"".join(phones.streaming_content).decode().splitlines() == ["phone", "'+79990000001"]
    assert_error(
        send(client, "GET", f"/segments/{made.pk}/members.csv?id_type=shoe"),
        422,
        "validation_error",
        "id_type",
    )


# --- Who may ----------------------------------------------------------------------------------


def test_a_read_token_reads_and_previews_but_cannot_change():
    made = segment("Moscow")
    target = create_audience("Target", actor=ACTOR)
    client, _ = token_client("read")
    assert send(client, "GET", f"/segments/{made.pk}").status_code == 200
    assert send(client, "POST", "/segments/preview", {"rules": city_rule()}).status_code == 200
    refused = [
        send(client, "POST", "/segments", {"name": "X", "rules": city_rule()}),
        send(client, "PATCH", f"/segments/{made.pk}", {"name": "Y"}),
        send(client, "DELETE", f"/segments/{made.pk}"),
        send(client, "POST", f"/segments/{made.pk}/duplicate"),
        send(client, "POST", f"/segments/{made.pk}/refresh"),
        send(client, "POST", f"/segments/{made.pk}/audience", {"action": "add", "audience": 1}),
    ]
    for response in refused:
        assert_error(response, 403, "missing_scope")
    assert Segment.objects.count() == 1 and not SegmentJob.objects.exists()
    assert target.member_count == 0


def test_a_write_token_without_read_cannot_preview_or_list():
    client, _ = token_client("write")
    assert_error(send(client, "GET", "/segments"), 403, "missing_scope")
    assert_error(
        send(client, "POST", "/segments/preview", {"rules": city_rule()}), 403, "missing_scope"
    )


def test_an_analyst_previews_and_exports_sc_ids_only_and_cannot_write():
    make_customer(city="Moscow", phone="+79990000001")
    made = segment("Moscow")
    client = session_client(Role.ANALYST)
    assert send(client, "POST", "/segments/preview", {"rules": city_rule()}).status_code == 200
    assert send(client, "GET", f"/segments/{made.pk}/members.csv").status_code == 200
    assert_error(
        send(client, "GET", f"/segments/{made.pk}/members.csv?id_type=phone"), 403, "forbidden"
    )
    assert_error(
        send(client, "POST", "/segments", {"name": "X", "rules": city_rule()}), 403, "forbidden"
    )


def test_a_marketer_session_creates_and_includes():
    in_city(1)
    client = session_client(Role.MARKETER)
    created = send(client, "POST", "/segments", {"name": "M", "rules": city_rule()})
    assert created.status_code == 201
    body = {"action": "add", "new_audience_name": "From UI"}
    job = send(client, "POST", f"/segments/{created.json()['id']}/audience", body)
    assert job.status_code == 202 and job.json()["expected"] == 1


def test_without_credentials_reads_and_previews_are_401(client):
    assert_error(send(client, "GET", "/segments"), 401, "not_authenticated")
    response = send(client, "POST", "/segments/preview", {"rules": city_rule()})
    assert_error(response, 401, "not_authenticated")
