"""Communications → Campaigns in the web UI: every page for every role, the list (search, only
active, empty states, a query-count ceiling), the campaign page (counts per step, run history,
the entries chart and its table), the status actions (activate, refused activation naming the
step, suspend, resume, deactivate after a confirmation), delete, and the editor page (what it
renders for the canvas, and its save without JavaScript with errors naming the step)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tagbase.accounts.actors import Actor
from tagbase.accounts.models import Role
from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.audiences.services import create_audience, delete_audience
from tagbase.campaigns import engine, services
from tagbase.campaigns.models import Campaign, CampaignStatus, Token
from tagbase.campaigns.tests.builders import ACTOR, chain, edge, graph, make_campaign, node
from tagbase.testing import make_customer, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_passwords(settings):  # type: ignore[no-untyped-def]
    """Personas log in with force_login: the slow production hasher is not worth its time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(role: str) -> tuple[Client, object]:
    client = Client()
    user = make_user(role)
    client.force_login(user)
    return client, user


def text(response) -> str:
    return response.content.decode()


def url(name: str, *args: object) -> str:
    return reverse(f"campaigns:{name}", args=args)


def json_block(page: str, element_id: str) -> object:
    """The value a page rendered with ``json_script`` under this id."""
    found = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>', page, re.S
    )
    assert found, element_id
    return json.loads(found.group(1))


def vip_chain(audience: Audience) -> dict:
    """Receipt issued → filter (city is Moscow) → positive: wait 7 days; negative: add to the
    audience."""
    return graph(
        node("receipt", "receipt_issued"),
        node("city", "filter", rules={"op": "and", "rules": [
            {"field": "customer.city", "operator": "eq", "value": "Moscow"}]}),
        node("later", "wait", amount=7, unit="days"),
        node("add", "audience", action="add", audience=audience.pk),
        edge("receipt", "city"),
        edge("city", "later", "positive"),
        edge("city", "add", "negative"),
    )  # fmt: skip


def a_campaign_that_ran() -> tuple[Campaign, Audience, list[int]]:
    """An active campaign three customers entered: one waits, two were added to the audience."""
    audience = create_audience("Outsiders", actor=ACTOR)
    ids = [make_customer(city="Moscow").pk, make_customer(city="Omsk").pk]
    ids.append(make_customer(city="Tver").pk)
    campaign = make_campaign(vip_chain(audience), name="Welcome VIPs")
    engine.enter(campaign.pk, ids)
    engine.run_due(campaign.pk)
    return campaign, audience, ids


# --- Access -----------------------------------------------------------------------------------


def reading_pages(campaign: Campaign) -> list[str]:
    return [url("campaign_list"), url("campaign_detail", campaign.pk)]


def write_pages(campaign: Campaign) -> list[str]:
    return [
        url("campaign_create"),
        url("campaign_edit", campaign.pk),
        url("campaign_deactivate", campaign.pk),
        url("campaign_delete", campaign.pk),
    ]


def write_posts(campaign: Campaign) -> list[str]:
    return [
        *write_pages(campaign),
        url("campaign_activate", campaign.pk),
        url("campaign_suspend", campaign.pk),
    ]


def test_anonymous_visitors_are_sent_to_the_login_page_from_every_page():
    campaign, _, _ = a_campaign_that_ran()
    responses = [(u, Client().get(u)) for u in reading_pages(campaign) + write_pages(campaign)]
    responses += [(u, Client().post(u)) for u in write_posts(campaign)]
    for address, response in responses:
        assert response.status_code == 302, address
        assert response["Location"].startswith(reverse("login")), address


@pytest.mark.parametrize("role", [Role.MARKETER, Role.ANALYST, Role.ADMIN])
def test_every_reading_page_renders_for_every_role(role):
    campaign, _, _ = a_campaign_that_ran()
    client, _ = client_for(role)
    for address in reading_pages(campaign):
        assert client.get(address).status_code == 200, address


def test_marketers_open_every_write_page():
    campaign, _, _ = a_campaign_that_ran()
    client, _ = client_for(Role.MARKETER)
    for address in write_pages(campaign):
        assert client.get(address).status_code == 200, address


def test_analysts_get_403_for_every_write_page_and_post_and_change_nothing():
    campaign, _, _ = a_campaign_that_ran()
    client, _ = client_for(Role.ANALYST)
    for address in write_pages(campaign):
        assert client.get(address).status_code == 403, address
    for address in write_posts(campaign):
        assert client.post(address, {"name": "X", "graph": "{}"}).status_code == 403, address
    campaign.refresh_from_db()
    assert (campaign.name, campaign.status, campaign.version) == ("Welcome VIPs", "active", 1)
    assert Token.objects.filter(campaign=campaign).count() == 1


def test_analysts_see_no_write_buttons_on_the_list_and_the_campaign_page():
    campaign, _, _ = a_campaign_that_ran()
    client, _ = client_for(Role.ANALYST)
    listing = text(client.get(url("campaign_list")))
    page = text(client.get(url("campaign_detail", campaign.pk)))
    assert "Welcome VIPs" in listing and "New campaign" not in listing
    for address in write_posts(campaign):
        assert address not in listing + page, address


def test_the_sidebar_has_a_campaigns_entry_marked_current_on_campaign_pages():
    client, _ = client_for(Role.MARKETER)
    page = text(client.get(url("campaign_list")))
    link = re.search(r'<a href="/campaigns/"[^>]*>', page)
    assert link and 'aria-current="page"' in link.group(0)
    assert "Communications" in page


# --- The list ---------------------------------------------------------------------------------


def test_the_list_shows_status_trigger_customers_entered_and_who_created_and_updated():
    campaign, _, _ = a_campaign_that_ran()
    client, user = client_for(Role.MARKETER)
    services.update_campaign(campaign, actor=Actor.of_user(user), description="For new VIPs")
    make_campaign(chain(node("reg", "customer_registered")), name="Registered", active=False)

    page = text(client.get(url("campaign_list")))

    row = page[page.index(f'id="campaign-{campaign.pk}"') :]
    row = row[: row.index("</tr>")]
    for shown in ("Welcome VIPs", "For new VIPs", "Active", "Receipt issued", ">3<", "v2"):
        assert shown in row, shown
    assert user.get_username() in row
    assert url("campaign_detail", campaign.pk) in row and url("campaign_edit", campaign.pk) in row
    other = page[page.index("Registered") :]
    assert "Not active" in other[: other.index("</tr>")]


def test_the_list_searches_by_name_and_filters_the_active_ones():
    make_campaign(chain(node("r", "customer_registered")), name="Spring sale")
    make_campaign(chain(node("r", "customer_registered")), name="Spring welcome", active=False)
    make_campaign(chain(node("r", "customer_registered")), name="Autumn")
    client, _ = client_for(Role.MARKETER)

    def names(query: str) -> list[str]:
        page = text(client.get(url("campaign_list") + query))
        return re.findall(r"<strong>([^<]+)</strong></a>", page)

    assert names("") == ["Autumn", "Spring sale", "Spring welcome"]
    assert names("?q=%20SPRING%20") == ["Spring sale", "Spring welcome"]
    assert names("?active=on") == ["Autumn", "Spring sale"]
    assert names("?q=spring&active=on") == ["Spring sale"]
    assert names("?q=winter") == []


def test_the_list_says_why_it_is_empty():
    client, _ = client_for(Role.MARKETER)
    assert "No campaigns yet" in text(client.get(url("campaign_list")))
    make_campaign(chain(node("r", "customer_registered")), name="Paused", active=False)
    assert "No campaign is active" in text(client.get(url("campaign_list") + "?active=on"))
    assert "No campaign matches “zzz”" in text(client.get(url("campaign_list") + "?q=zzz"))
    analyst, _ = client_for(Role.ANALYST)
    Campaign.objects.all().delete()
    assert "New campaign" not in text(analyst.get(url("campaign_list")))


def test_an_htmx_search_gets_only_the_results():
    make_campaign(chain(node("r", "customer_registered")), name="Spring sale")
    client, _ = client_for(Role.MARKETER)
    response = client.get(
        url("campaign_list") + "?q=spring", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="results"
    )
    body = text(response)
    assert body.lstrip().startswith('<section id="results"') and "Spring sale" in body
    assert "<html" not in body


def test_the_list_makes_as_many_queries_for_30_campaigns_as_for_3():
    client, _ = client_for(Role.MARKETER)

    def queries_for(count: int) -> int:
        Campaign.objects.all().delete()
        for i in range(count):
            campaign = make_campaign(chain(node("r", "customer_registered")), name=f"C{i}")
            engine.enter(campaign.pk, [make_customer().pk])
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url("campaign_list")).status_code == 200
        return len(captured)

    assert queries_for(30) == queries_for(3)


# --- The campaign page ------------------------------------------------------------------------


def test_the_campaign_page_shows_counts_per_step_the_run_history_and_entries_per_day():
    campaign, _, _ = a_campaign_that_ran()
    client, _ = client_for(Role.ANALYST)

    page = text(client.get(url("campaign_detail", campaign.pk)))

    steps = page[page.index('id="steps-title"') : page.index('id="chart-title"')]
    assert steps.index('id="step-receipt"') < steps.index('id="step-city"')
    city = steps[steps.index('id="step-city"') :]
    city = city[: city.index("</tr>")]
    assert "Filter customers" in city
    assert "positive <strong>1</strong>" in city and "negative <strong>2</strong>" in city
    add = steps[steps.index('id="step-add"') :]
    assert "Add to audience “Outsiders”" in add[: add.index("</tr>")]
    assert "Waiting at a step now</dt><dd>1</dd>" in page
    assert "Customers entered</dt><dd>3</dd>" in page
    # The run history: one batch, its steps in order with their counts
    runs = page[page.index('id="runs-title"') :]
    assert runs.count('<tr id="run-') == 1
    assert "Filter customers" in runs and "positive 1 · negative 2" in runs
    # The chart: an SVG with a title and a bar per day, and the same days as a table
    assert '<title id="chart-svg-title">' in page
    assert page.count('<rect class="bar') == 30
    today = timezone.localdate().strftime("%Y-%m-%d")
    assert f'<time datetime="{today}">' in page
    table = page[page.index(f'<time datetime="{today}">') :]
    assert '<td class="num">3</td>' in table[: table.index("</tr>")]
    # The canvas reads the graph and the counts from the page
    assert json_block(page, "campaign-graph") == campaign.graph
    stats = json_block(page, "campaign-stats")
    assert stats["city"]["out"] == {"positive": 1, "negative": 2}


def test_a_campaign_that_never_ran_says_so():
    campaign = make_campaign(chain(node("r", "customer_registered")), name="Quiet", active=False)
    client, _ = client_for(Role.MARKETER)
    page = text(client.get(url("campaign_detail", campaign.pk)))
    assert "The campaign has not run." in page
    assert "0 in all" in page
    assert client.get(url("campaign_detail", campaign.pk + 1000)).status_code == 404


# --- Status -----------------------------------------------------------------------------------


def test_a_marketer_activates_suspends_resumes_and_deactivates_a_campaign():
    campaign, _, _ = a_campaign_that_ran()
    client, user = client_for(Role.MARKETER)

    response = client.post(url("campaign_suspend", campaign.pk), follow=True)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SUSPENDED and campaign.updated_by == user
    assert "suspended: waiting customers stay" in text(response)
    assert Token.objects.filter(campaign=campaign).count() == 1
    assert ">Resume</button>" in text(response)

    response = client.post(url("campaign_activate", campaign.pk), follow=True)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE and "resumed" in text(response)

    confirm = text(client.get(url("campaign_deactivate", campaign.pk)))
    assert "1 customer waiting at a step leaves the campaign" in confirm
    assert "suspend the campaign instead" in confirm
    assert Campaign.objects.get().status == CampaignStatus.ACTIVE  # the GET changed nothing
    response = client.post(url("campaign_deactivate", campaign.pk), follow=True)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.INACTIVE
    assert Token.objects.filter(campaign=campaign).count() == 0
    assert "deactivated" in text(response) and ">Activate</button>" in text(response)


def test_the_deactivate_confirmation_opens_in_the_dialog_with_htmx():
    campaign, _, _ = a_campaign_that_ran()
    client, _ = client_for(Role.MARKETER)
    body = text(
        client.get(
            url("campaign_deactivate", campaign.pk),
            HTTP_HX_REQUEST="true",
            HTTP_HX_TARGET="modal",
        )
    )
    assert body.lstrip().startswith("<article>") and 'id="modal-title"' in body
    response = client.post(url("campaign_deactivate", campaign.pk), HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == url("campaign_detail", campaign.pk)


def test_activation_is_refused_with_the_step_named_when_its_audience_was_deleted():
    campaign, audience, _ = a_campaign_that_ran()
    services.deactivate_campaign(campaign, actor=ACTOR)
    delete_audience(audience, actor=ACTOR)
    client, _ = client_for(Role.MARKETER)

    response = client.post(url("campaign_activate", campaign.pk))

    page = text(response)
    assert response.status_code == 200
    assert "The campaign cannot be activated" in page
    assert f"step <code>add</code>, audience: audience {audience.pk} does not exist" in page
    assert 'data-error-node="add"' in page  # the canvas marks the step
    assert Campaign.objects.get().status == CampaignStatus.INACTIVE


# --- Delete -----------------------------------------------------------------------------------


def test_deleting_a_campaign_asks_first_then_keeps_the_audience_operations():
    campaign, audience, _ = a_campaign_that_ran()
    client, _ = client_for(Role.MARKETER)

    confirm = text(client.get(url("campaign_delete", campaign.pk)))
    assert "Delete “Welcome VIPs”?" in confirm and "This campaign is active" in confirm
    assert Campaign.objects.count() == 1

    response = client.post(url("campaign_delete", campaign.pk))
    assert response.status_code == 302 and response["Location"] == url("campaign_list")
    assert Campaign.objects.count() == 0
    assert Membership.objects.filter(audience=audience).count() == 2
    assert Operation.objects.filter(kind=OperationKind.CAMPAIGN).count() == 1
    assert client.get(url("campaign_detail", campaign.pk)).status_code == 404


# --- The editor page --------------------------------------------------------------------------


def test_the_editor_page_renders_what_the_canvas_needs():
    campaign, audience, _ = a_campaign_that_ran()
    client, _ = client_for(Role.MARKETER)

    page = text(client.get(url("campaign_edit", campaign.pk)))

    config = json_block(page, "campaign-config")
    assert config["campaign"] == campaign.pk
    assert config["updateUrl"] == f"/api/v1/campaigns/{campaign.pk}"
    assert config["createUrl"] == "/api/v1/campaigns"
    kinds = json_block(page, "campaign-kinds")
    filters = next(k for k in kinds["actions"] if k["kind"] == "filter")
    assert filters["ports"] == ["positive", "negative"]
    assert {p["name"]: p["type"] for p in filters["params"]} == {
        "rules": "rules",
        "segment": "segment",
    }
    assert {k["kind"] for k in kinds["triggers"]} >= {"receipt_issued", "date", "repeat"}
    assert json_block(page, "campaign-graph") == campaign.graph
    assert json_block(page, "campaign-stats")["add"]["in"] == 2
    assert json_block(page, "segment-audiences") == [{"id": audience.pk, "name": "Outsiders"}]
    assert json_block(page, "segment-catalogue")  # the rule builder's fields
    assert "This campaign is active." in page
    assert "vendor/drawflow/drawflow.min.js" in page and "campaigns/editor.js" in page


def test_without_javascript_the_editor_saves_a_new_campaign_from_json():
    audience = create_audience("VIP", actor=ACTOR)
    client, user = client_for(Role.MARKETER)
    posted = {
        "name": "Welcome VIPs",
        "description": "New members",
        "reentry_days": "365",
        "graph": json.dumps(vip_chain(audience)),
    }

    response = client.post(url("campaign_create"), posted)

    campaign = Campaign.objects.get()
    assert response.status_code == 302 and response["Location"] == url(
        "campaign_detail", campaign.pk
    )
    assert (campaign.reentry_days, campaign.created_by, campaign.status) == (365, user, "inactive")
    assert [n["id"] for n in campaign.graph["nodes"]] == ["receipt", "city", "later", "add"]
    edited = dict(posted, reentry_days="", name="Welcome VIPs 2")
    assert client.post(url("campaign_edit", campaign.pk), edited).status_code == 302
    campaign.refresh_from_db()
    assert (campaign.name, campaign.reentry_days, campaign.version) == ("Welcome VIPs 2", None, 2)


def test_without_javascript_a_graph_error_names_the_step_and_nothing_is_saved():
    audience = create_audience("VIP", actor=ACTOR)
    broken = vip_chain(audience)
    broken["nodes"][2]["params"]["amount"] = 0
    client, _ = client_for(Role.MARKETER)

    response = client.post(url("campaign_create"), {"name": "X", "graph": json.dumps(broken)})

    page = text(response)
    assert response.status_code == 200 and Campaign.objects.count() == 0
    assert "At step <code>later</code>, parameter <code>amount</code>: must be at least 1" in page
    # What was typed comes back, not an empty graph
    assert json_block(page, "campaign-graph") == broken


def test_without_javascript_a_taken_name_and_bad_json_are_shown_on_their_fields():
    make_campaign(chain(node("r", "customer_registered")), name="Spring")
    client, _ = client_for(Role.MARKETER)
    good = json.dumps(chain(node("r", "customer_registered")))
    taken = text(client.post(url("campaign_create"), {"name": " spring ", "graph": good}))
    assert "A campaign named &#x27;spring&#x27; already exists." in taken
    bad = text(client.post(url("campaign_create"), {"name": "Other", "graph": "{nodes"}))
    assert "The graph is not valid JSON" in bad
    assert Campaign.objects.count() == 1


def test_the_editor_lists_audiences_and_saved_segments_for_the_pickers():
    from tagbase.segments.services import create_segment

    create_audience("Zeta", actor=ACTOR)
    create_audience("Alpha", actor=ACTOR)
    create_segment("Muscovites", {"op": "and", "rules": []}, actor=ACTOR)
    client, _ = client_for(Role.MARKETER)
    page = text(client.get(url("campaign_create")))
    assert [a["name"] for a in json_block(page, "segment-audiences")] == ["Alpha", "Zeta"]
    assert [s["name"] for s in json_block(page, "segment-segments")] == ["Muscovites"]
    assert json_block(page, "campaign-config")["campaign"] is None
    assert json_block(page, "campaign-graph") == {"nodes": [], "edges": []}


def test_a_campaign_whose_tokens_wait_a_week_shows_them_as_waiting():
    campaign, _, _ = a_campaign_that_ran()
    client, _ = client_for(Role.MARKETER)
    engine.run_due(campaign.pk, now=timezone.now() + timedelta(days=8))
    page = text(client.get(url("campaign_detail", campaign.pk)))
    assert "Waiting at a step now</dt><dd>0</dd>" in page
    later = page[page.index('id="step-later"') :]
    assert "out <strong>1</strong>" in later[: later.index("</tr>")]
