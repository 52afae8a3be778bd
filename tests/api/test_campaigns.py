"""Campaigns through the API: CRUD and versions, graph errors naming the node and the parameter,
statuses, the kinds catalogue, the journey activate → POST /events → audience → runs and stats,
and who may do what."""

from __future__ import annotations

import secrets

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from tagbase.accounts.models import Role, User
from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.audiences.services import create_audience, delete_audience
from tagbase.campaigns.models import Batch, Campaign, CampaignVersion
from tagbase.campaigns.tests.builders import chain, edge, graph, make_campaign, node
from tagbase.testing import make_customer, system_actor

from .support import assert_error, send, token_client

pytestmark = pytest.mark.django_db

ACTOR = system_actor()
IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
CAMPAIGN_KEYS = {
    "id", "name", "description", "status", "reentry_days", "trigger_kind", "version", "entered",
    "created_at", "created_by", "updated_at", "updated_by", "graph", "stats",
}  # fmt: skip


def session_client(role: str, *, enforce_csrf: bool = False) -> Client:
    """A client logged in to the UI as a new user of this role. Unlike support.session_client it
    skips password hashing (about a second per test): the session is the same."""
    user = User.objects.create(username=f"{role}{User.objects.count() + 1}", role=role)
    client = Client(enforce_csrf_checks=enforce_csrf)
    client.force_login(user)
    return client


def login_graph(audience_id: int, **payload: object) -> dict:
    """event_occurred "app_login" (with this payload match) → add to the audience."""
    trigger = node(
        "t", "event_occurred", name="app_login", **({"payload": payload} if payload else {})
    )
    return chain(trigger, node("vip", "audience", action="add", audience=audience_id))


def members_of(audience_id: int) -> set[int]:
    return set(
        Membership.objects.filter(audience_id=audience_id).values_list("customer_id", flat=True)
    )


def create(client, name: str, g: dict, **fields: object):
    return send(client, "POST", "/campaigns", {"name": name, "graph": g, **fields})


# --- CRUD -------------------------------------------------------------------------------------


def test_creating_a_campaign_answers_201_with_the_cleaned_graph_not_active_version_1():
    vip = create_audience("VIP", actor=ACTOR)
    client = session_client(Role.MARKETER)
    response = create(
        client, " Welcome ", login_graph(vip.pk), description="First login", reentry_days=30
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert set(data) == CAMPAIGN_KEYS
    assert (data["name"], data["description"], data["reentry_days"]) == (
        "Welcome",
        "First login",
        30,
    )
    assert (data["status"], data["version"], data["trigger_kind"]) == (
        "inactive", 1, "event_occurred",
    )  # fmt: skip
    assert data["entered"] == 0 and data["stats"] == {}
    assert data["created_by"] == data["updated_by"] and data["created_by"].startswith("marketer")
    assert [n["id"] for n in data["graph"]["nodes"]] == ["t", "vip"]
    assert data["graph"]["nodes"][1]["position"] == {"x": 0.0, "y": 0.0}
    assert data["graph"]["edges"] == [{"from": "t", "port": "out", "to": "vip"}]
    campaign = Campaign.objects.get(pk=data["id"])
    assert campaign.graph == data["graph"]
    assert CampaignVersion.objects.filter(campaign=campaign).count() == 1


def test_a_new_audience_named_in_the_graph_is_created_with_the_campaign():
    client, _ = token_client()
    g = chain(node("t", "customer_registered"), node("a", "audience", action="add",
                                                     new_audience="Newcomers"))  # fmt: skip
    data = create(client, "Newcomers", g).json()
    newcomers = Audience.objects.get(name="Newcomers")
    assert data["graph"]["nodes"][1]["params"] == {"action": "add", "audience": newcomers.pk}
    assert data["created_by"] is None  # a token without a user


def test_list_searches_filters_by_status_and_pages():
    vip = create_audience("VIP", actor=ACTOR)
    make_campaign(login_graph(vip.pk), name="Beta", active=True)
    make_campaign(login_graph(vip.pk), name="alpha", active=False)
    make_campaign(login_graph(vip.pk), name="Gamma", active=False)
    client, _ = token_client("read")
    listed = send(client, "GET", "/campaigns").json()
    assert [c["name"] for c in listed["items"]] == ["alpha", "Beta", "Gamma"]
    assert listed["count"] == 3 and "graph" not in listed["items"][0]
    assert listed["items"][0]["entered"] == 0
    assert [c["name"] for c in send(client, "GET", "/campaigns?q=BET").json()["items"]] == ["Beta"]
    active = send(client, "GET", "/campaigns?status=active").json()
    assert [c["name"] for c in active["items"]] == ["Beta"] and active["count"] == 1
    page = send(client, "GET", "/campaigns?limit=1&offset=1").json()
    assert [c["name"] for c in page["items"]] == ["Beta"] and page["count"] == 3
    assert_error(
        send(client, "GET", "/campaigns?status=running"), 422, "validation_error", "status"
    )


def test_every_save_is_a_new_version_and_the_versions_are_listed_newest_first():
    vip = create_audience("VIP", actor=ACTOR)
    other = create_audience("Other", actor=ACTOR)
    campaign = make_campaign(login_graph(vip.pk), name="C", active=False, reentry_days=7)
    client, _ = token_client()
    url = f"/campaigns/{campaign.pk}"

    renamed = send(client, "PATCH", url, {"name": "Renamed", "description": "d"})
    assert renamed.status_code == 200, renamed.content
    assert (renamed.json()["name"], renamed.json()["version"]) == ("Renamed", 2)
    assert renamed.json()["reentry_days"] == 7  # not sent: kept

    once = send(client, "PATCH", url, {"reentry_days": None}).json()
    assert (once["reentry_days"], once["version"]) == (None, 3)

    regraphed = send(client, "PATCH", url, {"graph": login_graph(other.pk)}).json()
    assert regraphed["version"] == 4
    assert regraphed["graph"]["nodes"][1]["params"]["audience"] == other.pk

    versions = send(client, "GET", f"{url}/versions").json()
    assert [v["version"] for v in versions["items"]] == [4, 3, 2, 1] and versions["count"] == 4
    assert versions["items"][3]["graph"]["nodes"][1]["params"]["audience"] == vip.pk
    assert versions["items"][3]["reentry_days"] == 7 and versions["items"][0]["name"] == "Renamed"
    page = send(client, "GET", f"{url}/versions?limit=1&offset=1").json()
    assert [v["version"] for v in page["items"]] == [3]


def test_an_update_must_change_something_and_refuses_unknown_fields():
    campaign = make_campaign(chain(node("t", "customer_registered")), active=False)
    client, _ = token_client()
    url = f"/campaigns/{campaign.pk}"
    assert_error(send(client, "PATCH", url, {}), 422, "validation_error")
    assert_error(send(client, "PATCH", url, {"name": None, "graph": None}), 422, "validation_error")
    assert_error(send(client, "PATCH", url, {"grpah": {}}), 422, "validation_error", "grpah")
    assert Campaign.objects.get(pk=campaign.pk).version == 1


def test_delete_answers_204_and_then_the_campaign_is_404():
    campaign = make_campaign(chain(node("t", "customer_registered")), active=True)
    client, _ = token_client()
    assert send(client, "DELETE", f"/campaigns/{campaign.pk}").status_code == 204
    assert not Campaign.objects.exists()
    for method, path in [
        ("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/activate"), ("POST", "/suspend"),
        ("POST", "/deactivate"), ("GET", "/runs"), ("GET", "/stats"), ("GET", "/versions"),
    ]:  # fmt: skip
        body = {"name": "x"} if method == "PATCH" else None
        response = send(client, method, f"/campaigns/{campaign.pk}{path}", body)
        error = assert_error(response, 404, "campaign_not_found", None)
        assert str(campaign.pk) in error["message"]
    assert_error(send(client, "GET", "/campaigns/0"), 422, "validation_error", "campaign_id")


def test_refusals_of_name_and_reentry_name_their_field():
    make_campaign(chain(node("t", "customer_registered")), name="Loyal Customers", active=False)
    client, _ = token_client()
    g = chain(node("t", "customer_registered"))
    assert_error(create(client, "loyal  customers", g), 409, "campaign_name_taken", "name")
    assert_error(create(client, "   ", g), 422, "campaign_name_invalid", "name")
    assert_error(create(client, "R", g, reentry_days=36_501), 422, "campaign_error", "reentry_days")
    assert_error(create(client, "R", g, reentry_days=-1), 422, "campaign_error", "reentry_days")
    assert_error(create(client, "R", g, reentry_days="x"), 422, "validation_error", "reentry_days")
    assert_error(create(client, "R", [1]), 422, "validation_error", "graph")
    assert_error(
        send(client, "POST", "/campaigns", {"name": "R"}), 422, "validation_error", "graph"
    )
    assert Campaign.objects.count() == 1


# --- Graph errors: the editor's contract ------------------------------------------------------


def _bad_graphs(audience_id: int) -> list[tuple[dict, str, str | None, str | None]]:
    """(graph, code, node, field)"""
    trigger = node("t", "customer_registered")
    add = node("a", "audience", action="add", audience=audience_id)
    return [
        (chain(node("t", "event_occurred")), "invalid_graph", "t", "name"),
        (chain(trigger, node("w", "wait", amount=0, unit="days")), "invalid_graph", "w", "amount"),
        (chain(trigger, node("w", "wait", amount=1, unit="weeks")), "invalid_graph", "w", "unit"),
        (graph(trigger, node("t2", "customer_registered")), "one_trigger", None, None),
        (graph(add), "one_trigger", None, None),
        (
            graph(trigger, add, node("b", "wait", amount=1, unit="days"),
                  edge("t", "a"), edge("a", "b"), edge("b", "a")),
            "cycle", "b", None,
        ),
        (graph(trigger, add), "unreachable", "a", None),
        (graph(trigger, add, edge("t", "a", "positive")), "invalid_port", "t", "port"),
        (chain(trigger, node("x", "teleport")), "unknown_kind", "x", "kind"),
        (
            chain(trigger, node("a", "audience", action="add", audience=987654)),
            "audience_not_found", "a", "audience",
        ),
        (
            chain(trigger, node("f", "filter", rules={"op": "xor", "rules": []})),
            "invalid_graph", "f", "rules",
        ),
        ({"nodes": "no"}, "invalid_graph", None, None),
    ]  # fmt: skip


def test_graph_errors_answer_422_naming_the_node_and_the_parameter():
    vip = create_audience("VIP", actor=ACTOR)
    client, _ = token_client()
    for g, code, node_id, field in _bad_graphs(vip.pk):
        response = create(client, "Bad", g)
        error = assert_error(response, 422, code, field)
        assert set(error) == {"code", "message", "field", "node"}, error
        assert error["node"] == node_id, (code, error)
        if node_id:
            assert error["message"].startswith(f"node {node_id!r}"), error
        if node_id and field:
            assert error["message"].startswith(f"node {node_id!r}, {field}: "), error
    assert not Campaign.objects.exists()


# Graphs of the wrong JSON types: an unhashable id or kind, a position too big or infinite.
T = {"id": "t", "kind": "customer_registered"}


@pytest.mark.parametrize(
    ("g", "code"),
    [
        ({"nodes": [T], "edges": [{"from": "t", "port": ["out"], "to": "t"}]}, "invalid_port"),
        ({"nodes": [{**T, "position": [1, 2]}], "edges": []}, "invalid_graph"),
        ({"nodes": [{**T, "id": 7}], "edges": []}, "invalid_graph"),
        ({"nodes": [T], "edges": ["t->t"]}, "invalid_graph"),
        ({"nodes": [T], "edges": [{"from": ["t"], "to": "t"}]}, "invalid_graph"),
        ({"nodes": [T], "edges": [{"from": "t", "to": {"a": 1}}]}, "invalid_graph"),
        ({"nodes": [{**T, "kind": ["date"]}], "edges": []}, "unknown_kind"),
        ({"nodes": [{**T, "position": {"x": 10**400, "y": 0}}], "edges": []}, "invalid_graph"),
        ({"nodes": [{**T, "position": {"x": "1e400", "y": 0}}], "edges": []}, "invalid_graph"),
        ({"nodes": [{**T, "position": {"x": 0, "y": -2e6}}], "edges": []}, "invalid_graph"),
    ],
)  # fmt: skip
def test_a_graph_of_the_wrong_types_is_a_422_graph_error_never_a_500(g, code):
    client, _ = token_client()
    error = assert_error(create(client, "Odd", g), 422, code)
    assert "node" in error
    assert not Campaign.objects.exists()


def test_a_bad_graph_in_an_update_changes_nothing():
    vip = create_audience("VIP", actor=ACTOR)
    campaign = make_campaign(login_graph(vip.pk), active=False)
    client, _ = token_client()
    bad = chain(node("t", "customer_registered"), node("w", "wait", amount=0, unit="days"))
    error = assert_error(
        send(client, "PATCH", f"/campaigns/{campaign.pk}", {"name": "New", "graph": bad}),
        422,
        "invalid_graph",
        "amount",
    )
    assert error["node"] == "w" and error["message"] == "node 'w', amount: must be at least 1"
    saved = Campaign.objects.get(pk=campaign.pk)
    assert (saved.name, saved.version, saved.graph) == (campaign.name, 1, campaign.graph)


# --- Statuses ---------------------------------------------------------------------------------


def test_activate_suspend_and_deactivate_answer_the_campaign_with_its_status():
    campaign = make_campaign(chain(node("t", "customer_registered")), active=False)
    client = session_client(Role.ADMIN)
    url = f"/campaigns/{campaign.pk}"
    for action, status in [
        ("activate", "active"), ("activate", "active"), ("suspend", "suspended"),
        ("activate", "active"), ("deactivate", "inactive"),
    ]:  # fmt: skip
        response = send(client, "POST", f"{url}/{action}")
        assert response.status_code == 200, response.content
        assert response.json()["status"] == status
        assert Campaign.objects.get(pk=campaign.pk).status == status
        assert response.json()["updated_by"].startswith("admin")
    assert response.json()["version"] == 1  # statuses are not versions


def test_activation_is_refused_naming_the_node_when_its_audience_is_gone():
    vip = create_audience("VIP", actor=ACTOR)
    campaign = make_campaign(login_graph(vip.pk), active=False)
    delete_audience(vip, actor=ACTOR)
    client, _ = token_client()
    error = assert_error(
        send(client, "POST", f"/campaigns/{campaign.pk}/activate"),
        422,
        "audience_not_found",
        "audience",
    )
    assert error["node"] == "vip"
    assert Campaign.objects.get(pk=campaign.pk).status == "inactive"


# --- Kinds ------------------------------------------------------------------------------------


def test_kinds_lists_triggers_and_actions_with_their_parameters_and_ports():
    client = session_client(Role.ANALYST)
    body = send(client, "GET", "/campaigns/kinds").json()
    triggers = {k["kind"]: k for k in body["triggers"]}
    actions = {k["kind"]: k for k in body["actions"]}
    assert set(triggers) == {
        "customer_registered", "receipt_issued", "event_occurred", "date", "repeat",
        "days_since_registration", "entered_segment",
    }  # fmt: skip
    assert {"audience", "filter", "wait", "send_message", "split", "control_group"} <= set(actions)
    assert all(k["trigger"] for k in body["triggers"]) and not any(
        k["trigger"] for k in body["actions"]
    )
    name = triggers["event_occurred"]["params"][0]
    assert (name["name"], name["type"], name["required"]) == ("name", "text", True)
    assert actions["filter"]["ports"] == ["positive", "negative"]
    wait = {p["name"]: p for p in actions["wait"]["params"]}
    assert wait["amount"]["min"] == 1 and wait["unit"]["choices"] == ["minutes", "hours", "days"]


# --- The journey: events in → audience, runs and statistics out -------------------------------


@override_settings(TASKS=IMMEDIATE)
def test_an_event_posted_lets_matching_customers_into_an_active_campaign(
    django_capture_on_commit_callbacks,
):
    promo, other, stranger = make_customer(), make_customer(), make_customer()
    vip = create_audience("VIP", actor=ACTOR)
    client = session_client(Role.MARKETER)
    created = create(client, "Promo logins", login_graph(vip.pk, screen="promo"))
    campaign_id = created.json()["id"]
    assert send(client, "POST", f"/campaigns/{campaign_id}/activate").json()["status"] == "active"

    sender, _ = token_client("events", name="app")
    events = [
        {"sc_id": promo.pk, "name": "app_login", "payload": {"screen": "promo", "os": "ios"}},
        {"sc_id": other.pk, "name": "app_login", "payload": {"screen": "home"}},
        {"sc_id": stranger.pk, "name": "visit", "payload": {"screen": "promo"}},
        {"sc_id": 987654, "name": "app_login", "payload": {"screen": "promo"}},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        report = send(sender, "POST", "/events", {"events": events})
    assert report.status_code == 200, report.content
    assert report.json()["created"] == 3 and report.json()["failed"] == 1
    assert members_of(vip.pk) == {promo.pk}
    op = Operation.objects.get(audience=vip, kind=OperationKind.CAMPAIGN)
    assert op.source_ref == f"campaign {campaign_id} step vip" and op.added == 1

    runs = send(client, "GET", f"/campaigns/{campaign_id}/runs").json()["items"]
    assert len(runs) == 1
    run = runs[0]
    assert (run["trigger_kind"], run["requested"], run["entered"], run["version"]) == (
        "event_occurred", 1, 1, 1,
    )  # fmt: skip
    assert run["context"] == {"trigger": "event_occurred"}
    assert [(s["node"], s["kind"], s["count_in"], s["counts_out"]) for s in run["steps"]] == [
        ("t", "event_occurred", 1, {"out": 1}),
        ("vip", "audience", 1, {"out": 1}),
    ]
    assert all(s["error"] == "" and s["finished_at"] for s in run["steps"])

    stats = send(client, "GET", f"/campaigns/{campaign_id}/stats?days=7").json()
    assert stats["nodes"]["vip"] == {
        "in": 1, "out": {"out": 1}, "stopped": 0, "runs": 1, "errors": 0, "last_error": "",
    }  # fmt: skip
    assert len(stats["entries_per_day"]) == 7
    assert stats["entries_per_day"][-1] == {
        "date": timezone.localdate().isoformat(), "entered": 1,
    }  # fmt: skip
    detail = send(client, "GET", f"/campaigns/{campaign_id}").json()
    assert detail["entered"] == 1 and detail["stats"]["t"]["out"] == {"out": 1}

    # Suspended, it lets no one in: the same event again makes no batch.
    send(client, "POST", f"/campaigns/{campaign_id}/suspend")
    with django_capture_on_commit_callbacks(execute=True):
        send(sender, "POST", "/events", {"events": events[:1]})
    assert Batch.objects.filter(campaign_id=campaign_id).count() == 1


@override_settings(TASKS=IMMEDIATE)
def test_the_reentry_interval_counts_customers_kept_out_in_the_runs(
    django_capture_on_commit_callbacks,
):
    customer = make_customer()
    vip = create_audience("VIP", actor=ACTOR)
    campaign = make_campaign(login_graph(vip.pk), reentry_days=None)  # at most once
    sender, _ = token_client("events", name="app")
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            body = {"events": [{"sc_id": customer.pk, "name": "app_login"}]}
            assert send(sender, "POST", "/events", body).status_code == 200
    client, _ = token_client("read")
    runs = send(client, "GET", f"/campaigns/{campaign.pk}/runs").json()["items"]
    assert [(r["requested"], r["entered"], len(r["steps"])) for r in runs] == [(1, 0, 1), (1, 1, 2)]
    assert send(client, "GET", f"/campaigns/{campaign.pk}/runs?limit=1").json()["items"] == runs[:1]
    assert send(client, "GET", f"/campaigns/{campaign.pk}").json()["entered"] == 1


# --- Who may ----------------------------------------------------------------------------------


def _writes(campaign_id: int, g: dict) -> list[tuple[str, str, object]]:
    url = f"/campaigns/{campaign_id}"
    return [
        ("POST", "/campaigns", {"name": "X", "graph": g}),
        ("PATCH", url, {"name": "Y"}),
        ("POST", f"{url}/activate", None),
        ("POST", f"{url}/suspend", None),
        ("POST", f"{url}/deactivate", None),
        ("DELETE", url, None),
    ]


def _reads(campaign_id: int) -> list[str]:
    url = f"/campaigns/{campaign_id}"
    return ["/campaigns", "/campaigns/kinds", url, f"{url}/runs", f"{url}/stats", f"{url}/versions"]


def test_an_analyst_reads_everything_and_changes_nothing():
    g = chain(node("t", "customer_registered"))
    campaign = make_campaign(g, name="C", active=False)
    client = session_client(Role.ANALYST)
    for path in _reads(campaign.pk):
        assert send(client, "GET", path).status_code == 200, path
    for method, path, body in _writes(campaign.pk, g):
        assert_error(send(client, method, path, body), 403, "forbidden")
    saved = Campaign.objects.get()
    assert (saved.name, saved.status, saved.version) == ("C", "inactive", 1)


def test_a_read_token_reads_and_a_write_token_without_read_only_writes():
    g = chain(node("t", "customer_registered"))
    campaign = make_campaign(g, name="C", active=False)
    reader, _ = token_client("read")
    for path in _reads(campaign.pk):
        assert send(reader, "GET", path).status_code == 200, path
    for method, path, body in _writes(campaign.pk, g):
        assert_error(send(reader, method, path, body), 403, "missing_scope")
    writer, _ = token_client("write")
    for path in _reads(campaign.pk):
        assert_error(send(writer, "GET", path), 403, "missing_scope")
    events_only, _ = token_client("events", name="app")
    assert_error(send(events_only, "GET", "/campaigns"), 403, "missing_scope")
    assert_error(
        send(events_only, "POST", "/campaigns", {"name": "X", "graph": g}), 403, "missing_scope"
    )
    assert Campaign.objects.get().name == "C"
    assert send(writer, "POST", f"/campaigns/{campaign.pk}/activate").status_code == 200


def test_a_marketer_session_writes_with_the_csrf_token_and_not_without():
    client = session_client(Role.MARKETER, enforce_csrf=True)
    g = chain(node("t", "customer_registered"))
    assert_error(create(client, "UI", g), 403, "csrf_failed")
    csrf = secrets.token_hex(16)  # what the editor reads from the csrftoken cookie
    client.cookies["csrftoken"] = csrf
    created = send(client, "POST", "/campaigns", {"name": "UI", "graph": g}, HTTP_X_CSRFTOKEN=csrf)
    assert created.status_code == 201, created.content
    saved = send(
        client, "PATCH", f"/campaigns/{created.json()['id']}", {"graph": g}, HTTP_X_CSRFTOKEN=csrf
    )
    assert saved.status_code == 200 and saved.json()["version"] == 2


def test_without_credentials_every_route_is_401(client):
    assert_error(send(client, "GET", "/campaigns"), 401, "not_authenticated")
    assert_error(send(client, "GET", "/campaigns/kinds"), 401, "not_authenticated")
    assert_error(send(client, "POST", "/campaigns/1/activate"), 401, "not_authenticated")
