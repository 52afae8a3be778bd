"""Graph validation: every refusal names the node (and the parameter) so the editor can show it
on the canvas; saving creates new audiences and keeps versions."""

from __future__ import annotations

import pytest

from tagbase.audiences.models import Audience
from tagbase.audiences.services import create_audience
from tagbase.campaigns import graph as graphs
from tagbase.campaigns import services
from tagbase.campaigns.nodes import GraphError
from tagbase.campaigns.tests.builders import ACTOR, chain, edge, graph, make_campaign, node

T = node("t", "customer_registered")
W = node("w", "wait", amount=1, unit="days")


@pytest.mark.parametrize(
    ("raw", "where", "message"),
    [
        ([], (None, None), "must be an object"),
        (graph(W), (None, None), "exactly one trigger (found none)"),
        (graph(T, node("t2", "receipt_issued"), W, edge("t", "w"), edge("t2", "w")),
         (None, None), "exactly one trigger (found 't', 't2')"),
        (graph(T, node("t", "wait", amount=1, unit="days")), ("t", None), "two nodes have this id"),
        (graph(T, node("x", "teleport")), ("x", "kind"), "unknown kind 'teleport'"),
        (graph(T, node("w", "wait", unit="days"), edge("t", "w")), ("w", "amount"), "is required"),
        (graph(T, node("w", "wait", amount="soon", unit="days"), edge("t", "w")),
         ("w", "amount"), "must be a whole number"),
        (graph(T, node("w", "wait", amount=0, unit="days"), edge("t", "w")),
         ("w", "amount"), "must be at least 1"),
        (graph(T, node("w", "wait", amount=1, unit="weeks"), edge("t", "w")),
         ("w", "unit"), "must be one of minutes, hours, days"),
        (graph(T, node("w", "wait", amount=1, unit="days", colour="red"), edge("t", "w")),
         ("w", "colour"), "has no parameter 'colour'"),
        (graph(T, W, edge("t", "w", "positive")), ("t", "port"), "has no output 'positive'"),
        (graph(T, node("f", "filter", segment=1), W, edge("t", "f"), edge("f", "w", "out")),
         ("f", "port"), "has no output 'out' (it has positive, negative)"),
        (graph(T, W, edge("t", "w"), edge("w", "t")), ("t", None), "nothing can lead into"),
        (graph(T, W, node("v", "wait", amount=1, unit="days"), edge("t", "w"), edge("w", "v"),
               edge("v", "w")), ("v", None), "loops back to node 'w'"),
        (graph(T, W), ("w", None), "is not connected to the trigger"),
        (graph(T, W, edge("t", "nowhere")), ("t", None), "goes to an unknown node 'nowhere'"),
        (graph(T, node("f", "filter"), edge("t", "f")),
         ("f", "rules"), "a rule or a saved segment"),
        (graph(T, node("f", "filter", rules={"op": "xor"}), edge("t", "f")),
         ("f", "rules"), "op: must be 'and' or 'or'"),
        (graph(T, node("s", "split", percentages=[50, 40]), edge("t", "s")),
         ("s", "percentages"), "add up to 100"),
        (graph(T, node("a", "audience", action="add"), edge("t", "a")),
         ("a", "audience"), "choose an audience or type a new audience name"),
        (graph(T, node("a", "audience", action="remove", new_audience="X"), edge("t", "a")),
         ("a", "new_audience"), "only be removed from an existing audience"),
        (graph(T, node("m", "send_message", channel="email", template="Hi"), edge("t", "m")),
         ("m", "subject"), "is required for an e-mail"),
        (graph(T, node("m", "send_message", channel="sms", template="{% if %}"), edge("t", "m")),
         ("m", "template"), "template error"),
        (graph(node("t", "repeat", every="week", time="09:00")), ("t", "weekday"), "is required"),
        (graph(node("t", "date", at="tomorrow")), ("t", "at"), "must be a date and time"),
        (graph(node("t", "repeat", every="day", time="25:00")), ("t", "time"), "HH:MM"),
        (graph(T, node("n", "notify_manager", email="boss"), edge("t", "n")),
         ("n", "email"), "must be an e-mail address"),
    ],
)  # fmt: skip
def test_an_invalid_graph_is_refused_naming_the_node(raw, where, message):
    with pytest.raises(GraphError) as caught:
        graphs.validate(raw)
    assert (caught.value.node, caught.value.field) == where
    assert message in caught.value.message
    if where[0]:
        assert caught.value.message.startswith(f"node {where[0]!r}")


def test_a_valid_graph_is_cleaned():
    raw = graph(
        node("t", "receipt_issued", min_amount="100.5"),
        node("s", "split", percentages=["30", 70]),
        edge("t", "s"),
    )
    cleaned = graphs.validate(raw)
    params = {n["id"]: n["params"] for n in cleaned["nodes"]}
    assert params == {"t": {"min_amount": "100.5"}, "s": {"percentages": [30, 70]}}
    assert graphs.Graph(cleaned).order() == ["t", "s"]


@pytest.mark.django_db
def test_references_to_missing_audiences_and_segments_are_refused():
    for bad, field in (
        (node("a", "audience", action="add", audience=999_999), "audience"),
        (node("a", "select_segment", segment=999_999), "segment"),
        (node("a", "filter", rules={"op": "and", "rules": [
            {"field": "audience", "operator": "in", "value": 999_999}]}), "rules"),
    ):  # fmt: skip
        with pytest.raises(GraphError) as caught:
            services.create_campaign("C", graph(T, bad, edge("t", "a")), actor=ACTOR)
        assert (caught.value.node, caught.value.field) == ("a", field)
        assert "999999 does not exist" in caught.value.message


@pytest.mark.django_db
def test_saving_creates_new_audiences_and_every_save_is_a_version():
    g = chain(T, node("a", "audience", action="add", new_audience="Brand new"))
    campaign = services.create_campaign("Welcome", g, actor=ACTOR, reentry_days=30)
    audience = Audience.objects.get(name="Brand new")
    assert campaign.graph["nodes"][1]["params"] == {"action": "add", "audience": audience.pk}
    assert (campaign.trigger_kind, campaign.version) == ("customer_registered", 1)
    again = services.update_campaign(campaign, actor=ACTOR, name="Welcome!", reentry_days=None)
    assert (again.version, again.reentry_days) == (2, None)
    assert list(again.versions.values_list("version", "name")) == [(2, "Welcome!"), (1, "Welcome")]
    with pytest.raises(services.CampaignNameTaken):
        services.create_campaign(" welcome! ", g, actor=ACTOR)
    with pytest.raises(services.CampaignError, match="re-entry interval"):
        services.create_campaign("Other", g, actor=ACTOR, reentry_days=-1)


@pytest.mark.django_db
def test_activation_is_refused_when_an_audience_was_deleted_since_saving():
    from tagbase.audiences.services import delete_audience

    audience = create_audience("Soon gone", actor=ACTOR)
    campaign = make_campaign(
        chain(T, node("a", "audience", action="add", audience=audience.pk)), active=False
    )
    delete_audience(audience, actor=ACTOR)
    with pytest.raises(GraphError, match="does not exist"):
        services.activate_campaign(campaign, actor=ACTOR)
