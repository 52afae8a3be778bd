"""Set operations and membership as of a date through the API: previews and the overlap,
combining as a job (new audience, add, replace) and undoing it, idempotency, errors naming their
field, the as-of count, pages and CSV, and who may do what."""

from __future__ import annotations

import csv
import io

import pytest
from django.utils import timezone

from tagbase.accounts.models import Role
from tagbase.audiences.models import Audience, Membership, Operation
from tagbase.audiences.services import (
    add_customers_to_audience,
    create_audience,
    remove_customers_from_audience,
)
from tagbase.segments.services import create_segment
from tagbase.sets.models import SetJob
from tagbase.sets.pipeline import run_set_job
from tagbase.testing import make_customer, make_customers, system_actor

from .support import assert_error, send, session_client, token_client

pytestmark = pytest.mark.django_db
ACTOR = system_actor()


def members_of(audience_id: int) -> set[int]:
    return set(
        Membership.objects.filter(audience_id=audience_id).values_list("customer_id", flat=True)
    )


def world() -> tuple[list[int], Audience, Audience]:
    ids = make_customers(6)
    a = create_audience("VIP", actor=ACTOR)
    b = create_audience("Buyers", actor=ACTOR)
    add_customers_to_audience(a, ids[0:4], actor=ACTOR, kind="api")
    add_customers_to_audience(b, ids[2:6], actor=ACTOR, kind="api")
    return ids, a, b


def expr(op: str, a: Audience, b: Audience) -> dict:
    return {"op": op, "left": {"audience": a.pk}, "right": {"audience": b.pk}}


# --- Previews ---------------------------------------------------------------------------------


def test_preview_gives_the_regions_the_exact_result_and_the_change_in_a_target():
    ids, a, b = world()
    client, _ = token_client("read")
    body = {"expression": expr("difference", a, b), "audience": b.pk, "mode": "replace"}
    response = send(client, "POST", "/sets/preview", body)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["summary"] == "“VIP” \u2212 “Buyers”"
    assert [o["name"] for o in data["operands"]] == ["VIP", "Buyers"]
    assert [(r["operands"], r["count"]) for r in data["regions"]] == [
        ([0], 2),
        ([1], 2),
        ([0, 1], 2),
    ]
    assert (data["union"], data["result"]) == (6, 2)
    assert data["target"] == {
        "audience": b.pk,
        "name": "Buyers",
        "mode": "replace",
        "would_add": 2,
        "already_member": 0,
        "would_remove": 4,
        "count_after": 2,
    }
    assert members_of(b.pk) == set(ids[2:6])  # nothing changed


def test_overlap_of_an_audience_and_a_segment():
    moscow = [make_customer(city="Moscow").pk for _ in range(3)]
    vip = create_audience("VIP", actor=ACTOR)
    add_customers_to_audience(vip, [moscow[0], make_customer().pk], actor=ACTOR, kind="api")
    rule = {"op": "and", "rules": [{"field": "customer.city", "operator": "eq", "value": "moscow"}]}
    seg = create_segment("Moscow", rule, actor=ACTOR)
    client, _ = token_client("read")
    body = {"operands": [{"audience": vip.pk}, {"segment": seg.pk}]}
    data = send(client, "POST", "/sets/overlap", body).json()
    assert [(r["label"], r["count"]) for r in data["regions"]] == [
        ("“VIP” only", 1),
        ("segment “Moscow” only", 2),
        ("“VIP” \u2229 segment “Moscow”", 1),
    ]
    assert data["result"] == data["union"] == 4 and data["target"] is None


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"expression": {"audience": 0}}, "expression_invalid", "expression.audience"),
        (
            {"expression": {"op": "xor", "left": {}, "right": {}}},
            "expression_invalid",
            "expression.op",
        ),
        ({"expression": {"audience": 999999}}, "audience_not_found", "expression.audience"),
        ({"expression": {"segment": 999999}}, "segment_not_found", "expression.segment"),
        ({"expression": {"audience": 1}, "audience": 999999}, "audience_not_found", "audience"),
        ({"expression": {"audience": 1}, "mode": "merge"}, "validation_error", "mode"),
        ({"expression": {"audience": 1}, "extra": 1}, "validation_error", "extra"),
    ],
)
def test_an_invalid_preview_is_422_naming_the_field(body, code, field):
    _, a, _ = world()
    if body["expression"] == {"audience": 1}:
        body = {**body, "expression": {"audience": a.pk}}
    client, _ = token_client("read")
    assert_error(send(client, "POST", "/sets/preview", body), 422, code, field)


def test_four_operands_are_too_many():
    _, a, b = world()
    client, _ = token_client("read")
    four = {"op": "union", "left": expr("union", a, b), "right": expr("union", a, b)}
    assert_error(
        send(client, "POST", "/sets/preview", {"expression": four}),
        422,
        "too_many_operands",
        "expression",
    )
    body = {"operands": [{"audience": a.pk}] * 4}
    assert_error(send(client, "POST", "/sets/overlap", body), 422, "expression_invalid", "operands")


# --- Combine ----------------------------------------------------------------------------------


def test_combining_into_a_new_audience_is_a_job_whose_operation_can_be_undone():
    ids, a, b = world()
    client, _ = token_client()
    body = {"expression": expr("intersect", a, b), "new_audience_name": "Both"}
    response = send(client, "POST", "/sets/combine", body)
    assert response.status_code == 202, response.content
    job = response.json()
    assert (job["status"], job["expected_added"], job["created_audience"]) == ("queued", 2, True)
    run_set_job(job["id"])
    done = send(client, "GET", f"/sets/jobs/{job['id']}").json()
    assert (done["status"], done["added"], done["removed"]) == ("succeeded", 2, 0)
    operation = send(client, "GET", f"/operations/{done['operation']}").json()
    assert (operation["kind"], operation["action"]) == ("set", "add")
    assert members_of(done["audience"]) == {ids[2], ids[3]}
    undone = send(client, "POST", f"/operations/{done['operation']}/undo")
    assert undone.status_code == 200 and members_of(done["audience"]) == set()


def test_replace_mode_adds_and_removes_as_one_replace_operation():
    ids, a, b = world()
    client, _ = token_client()
    body = {"expression": expr("difference", b, a), "audience": a.pk, "mode": "replace"}
    job = send(client, "POST", "/sets/combine", body).json()
    assert (job["expected_added"], job["expected_removed"]) == (2, 4)
    run_set_job(job["id"])
    done = send(client, "GET", f"/sets/jobs/{job['id']}").json()
    operation = send(client, "GET", f"/operations/{done['operation']}").json()
    assert (operation["action"], operation["added"], operation["removed"]) == ("replace", 2, 4)
    assert members_of(a.pk) == {ids[4], ids[5]}
    undo = send(client, "POST", f"/operations/{done['operation']}/undo").json()
    assert (undo["action"], undo["added"], undo["removed"]) == ("replace", 4, 2)
    assert members_of(a.pk) == set(ids[0:4])


def test_refusals_of_combine_name_their_field():
    _, a, b = world()
    client, _ = token_client()
    both = expr("union", a, b)
    cases = [
        ({"expression": both}, 422, "set_error", "audience"),
        (
            {"expression": both, "audience": a.pk, "new_audience_name": "X"},
            422,
            "set_error",
            "audience",
        ),
        (
            {"expression": both, "new_audience_name": "X", "mode": "replace"},
            422,
            "set_error",
            "mode",
        ),
        (
            {"expression": both, "new_audience_name": " vip "},
            409,
            "audience_name_taken",
            "new_audience_name",
        ),
        ({"expression": both, "new_audience_name": ""}, 422, "set_error", "audience"),
        ({"expression": both, "audience": 999999}, 422, "audience_not_found", "audience"),
    ]
    for body, status, code, field in cases:
        assert_error(send(client, "POST", "/sets/combine", body), status, code, field)
    assert not SetJob.objects.exists() and Audience.objects.count() == 2
    assert_error(send(client, "GET", "/sets/jobs/999999"), 404, "job_not_found")


def test_an_idempotency_key_replays_the_first_job_and_refuses_another_request():
    _, a, b = world()
    client, _ = token_client()
    body = {"expression": expr("union", a, b), "audience": a.pk}
    key = {"HTTP_IDEMPOTENCY_KEY": "combine-1"}
    first = send(client, "POST", "/sets/combine", body, **key).json()
    again = send(client, "POST", "/sets/combine", body, **key).json()
    assert again["id"] == first["id"] and SetJob.objects.count() == 1
    other = {**body, "mode": "replace"}
    assert_error(
        send(client, "POST", "/sets/combine", other, **key),
        422,
        "idempotency_key_reused",
        "Idempotency-Key",
    )


# --- As of a date -----------------------------------------------------------------------------


def test_as_of_answers_the_count_the_pages_and_the_csv():
    ids, a, _ = world()
    remove_customers_from_audience(a, [ids[0]], actor=ACTOR, kind="api")
    client, _ = token_client("read")
    today = timezone.localdate().isoformat()
    data = send(client, "GET", f"/sets/as-of/{a.pk}?at={today}").json()
    assert (data["audience"], data["audience_name"], data["count"]) == (a.pk, "VIP", 3)
    seen: list[int] = []
    after = 0
    while True:
        page = send(client, "GET", f"/sets/as-of/{a.pk}/members?at={today}&after={after}&limit=2")
        body = page.json()
        seen += [item["sc_id"] for item in body["items"]]
        if body["next_after"] is None:
            break
        after = body["next_after"]
    assert seen == ids[1:4]
    response = send(client, "GET", f"/sets/as-of/{a.pk}/members.csv?at={today}")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows == [["sc_id"], *([str(i)] for i in ids[1:4])]
    assert response["Cache-Control"] == "no-store"


def test_as_of_refuses_the_future_a_bad_moment_and_an_unknown_audience():
    _, a, _ = world()
    client, _ = token_client("read")
    assert_error(
        send(client, "GET", f"/sets/as-of/{a.pk}?at=2999-01-01"), 422, "moment_in_future", "at"
    )
    assert_error(
        send(client, "GET", f"/sets/as-of/{a.pk}?at=2025-13-01"), 422, "invalid_moment", "at"
    )
    assert_error(send(client, "GET", f"/sets/as-of/{a.pk}"), 422, "validation_error", "at")
    assert_error(send(client, "GET", "/sets/as-of/999999?at=2025-01-01"), 404, "audience_not_found")


# --- Who may ----------------------------------------------------------------------------------


def test_a_read_token_previews_and_reads_but_cannot_combine():
    _, a, b = world()
    client, _ = token_client("read")
    body = {"expression": expr("union", a, b), "new_audience_name": "X"}
    assert_error(send(client, "POST", "/sets/combine", body), 403, "missing_scope")
    assert not Audience.objects.filter(name="X").exists()


def test_an_analyst_previews_and_exports_sc_ids_only_and_cannot_combine():
    _, a, b = world()
    client = session_client(Role.ANALYST)
    assert (
        send(client, "POST", "/sets/preview", {"expression": expr("union", a, b)}).status_code
        == 200
    )
    body = {"expression": expr("union", a, b), "new_audience_name": "X"}
    assert_error(send(client, "POST", "/sets/combine", body), 403, "forbidden")
    today = timezone.localdate().isoformat()
    phones = send(client, "GET", f"/sets/as-of/{a.pk}/members.csv?at={today}&id_type=phone")
    assert_error(phones, 403, "forbidden")
    ids_csv = send(client, "GET", f"/sets/as-of/{a.pk}/members.csv?at={today}&id_type=sc_id")
    assert ids_csv.status_code == 200


def test_a_marketer_session_combines():
    _, a, b = world()
    client = session_client(Role.MARKETER)
    body = {"expression": expr("union", a, b), "new_audience_name": "All"}
    assert send(client, "POST", "/sets/combine", body).status_code == 202
    assert Operation.objects.filter(kind="set").count() == 0  # queued, not run


def test_without_credentials_everything_is_401(client):
    for method, path in [
        ("POST", "/sets/preview"),
        ("POST", "/sets/overlap"),
        ("POST", "/sets/combine"),
        ("GET", "/sets/jobs/1"),
        ("GET", "/sets/as-of/1?at=2025-01-01"),
    ]:
        assert_error(
            send(client, method, path, {} if method == "POST" else None), 401, "not_authenticated"
        )
