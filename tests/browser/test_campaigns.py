"""The campaign editor in a real browser: build trigger → filter → add to a new audience by
dragging palette items onto the canvas and connecting ports with the mouse, set the filter's
rule with the segment rule builder (in its dialog) and the new audience's name, save through
the REST API, open the editor again and find the same graph (nodes, parameters, edges); then a
step left without a required parameter is refused by the API and shown red on that step and in
the side panel, and saves once it is filled in.

Screenshots of the editor and the campaign page, at a desktop and a phone width, go to
``test-artifacts/browser/campaigns_*.png``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import expect

from tagbase.audiences.models import Audience
from tagbase.campaigns.models import Campaign
from tagbase.testing import make_customer

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
DESKTOP = {"width": 1440, "height": 1000}
PHONE = {"width": 420, "height": 900}


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"campaigns_{name}.png"), full_page=True)


def step(page, node_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f".drawflow-node[data-node='{node_id}']")


def drop(page, kind: str, x: int, y: int) -> None:  # type: ignore[no-untyped-def]
    """Drag a palette item onto the canvas at (x, y) of the canvas."""
    page.locator(f".palette-item[data-kind='{kind}']").drag_to(
        page.locator("#campaign-canvas"), target_position={"x": x, "y": y}
    )


def connect(page, source: str, port: str, target: str) -> None:  # type: ignore[no-untyped-def]
    """Press on the source step's output port and release on the target step."""
    out = step(page, source).locator(f".output[data-port='{port}']").bounding_box()
    into = step(page, target).locator(".cnode-title").bounding_box()
    assert out and into
    page.mouse.move(out["x"] + out["width"] / 2, out["y"] + out["height"] / 2)
    page.mouse.down()
    page.mouse.move(into["x"] + 20, into["y"] + into["height"] / 2, steps=8)
    page.mouse.up()


def editor_graph(page) -> dict:  # type: ignore[no-untyped-def]
    """The graph as the canvas would save it (the page's JSON field follows the canvas)."""
    return json.loads(page.locator("#id_graph").input_value())


def test_a_marketer_builds_saves_and_reopens_a_chain_and_sees_a_refusal_on_its_step(
    logged_in_page,
):
    make_customer(city="Moscow")
    make_customer(city="Omsk")
    page = logged_in_page("marketer")
    page.set_viewport_size(DESKTOP)
    page.goto("/campaigns/")
    expect(page.get_by_text("No campaigns yet")).to_be_visible()
    page.get_by_role("button", name="New campaign").first.click()
    expect(page.get_by_role("heading", name="New campaign", level=1)).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Welcome VIPs")
    page.get_by_label("Re-entry after (days)").fill("365")

    # Three steps dragged from the palette; the palette offers one trigger only
    drop(page, "receipt_issued", 60, 60)
    expect(step(page, "receipt_issued_1")).to_be_visible()
    expect(page.locator(".palette-item[data-kind='date']")).to_be_disabled()
    drop(page, "filter", 310, 60)
    drop(page, "audience", 560, 220)
    expect(page.locator(".drawflow-node")).to_have_count(3)

    connect(page, "receipt_issued_1", "out", "filter_1")
    connect(page, "filter_1", "positive", "audience_1")
    expect(page.locator("#campaign-canvas svg.connection")).to_have_count(2)

    # The filter's rule, with the segment rule builder in its dialog
    step(page, "filter_1").locator(".cnode-title").click()
    panel = page.locator("#node-panel")
    expect(panel.get_by_role("heading", name="Filter customers")).to_be_visible()
    expect(panel.locator(".port-item[data-port='positive']")).to_contain_text("audience_1")
    panel.get_by_role("button", name="Set the rule…").click()
    dialog = page.get_by_role("dialog", name="Rule of step filter_1")
    expect(dialog).to_be_visible()
    attribute = dialog.get_by_role("combobox", name="Attribute")
    attribute.click()
    attribute.press_sequentially("customer cit")
    dialog.get_by_role("listbox", name="Attributes").get_by_role(
        "option", name=re.compile("^City")
    ).click()
    dialog.get_by_label("Value").fill("moscow")
    expect(dialog.locator("#live-count")).to_have_text("1")  # the builder's live count
    shot(page, "1_rule_dialog")
    dialog.get_by_role("button", name="Use this rule").click()
    expect(dialog).to_be_hidden()
    expect(panel.locator("#param-rules-summary")).to_contain_text("Customer. City equals “moscow”")
    expect(step(page, "filter_1").locator(".cnode-summary")).to_have_text("Rule of 1 condition")

    # Add to a new audience
    step(page, "audience_1").locator(".cnode-title").click()
    expect(panel.get_by_role("heading", name="Audience action")).to_be_visible()
    panel.get_by_label("Audience", exact=True).select_option(label="New audience…")
    panel.get_by_label("Name of the new audience").fill("VIP")
    expect(step(page, "audience_1").locator(".cnode-summary")).to_have_text(
        "Add to new audience “VIP”"
    )
    shot(page, "2_editor_desktop")

    page.get_by_role("button", name="Save campaign").click()
    expect(page.get_by_role("heading", name=re.compile("^Welcome VIPs"), level=1)).to_be_visible()
    expect(page.get_by_text("Campaign “Welcome VIPs” saved (version 1).")).to_be_visible()
    campaign = Campaign.objects.get()
    vip = Audience.objects.get(name="VIP")
    assert campaign.reentry_days == 365 and campaign.status == "inactive"
    nodes = {n["id"]: n for n in campaign.graph["nodes"]}
    assert nodes["audience_1"]["params"] == {"action": "add", "audience": vip.pk}
    assert nodes["filter_1"]["params"]["rules"]["rules"] == [
        {"field": "customer.city", "operator": "eq", "value": "moscow"}
    ]
    assert campaign.graph["edges"] == [
        {"from": "receipt_issued_1", "port": "out", "to": "filter_1"},
        {"from": "filter_1", "port": "positive", "to": "audience_1"},
    ]
    expect(page.locator(".drawflow-node")).to_have_count(3)  # the read-only canvas
    shot(page, "3_campaign_page_desktop")

    # The editor again: the same graph comes back, positions included
    page.get_by_role("button", name="Edit").click()
    expect(page.locator(".drawflow-node")).to_have_count(3)
    expect(page.locator("#campaign-canvas svg.connection")).to_have_count(2)
    assert editor_graph(page) == campaign.graph
    step(page, "audience_1").locator(".cnode-title").click()
    expect(panel.get_by_label("Audience", exact=True)).to_have_value(str(vip.pk))
    expect(step(page, "audience_1").locator(".cnode-summary")).to_have_text("Add to “VIP”")

    # A step without its required parameter: refused by the API, shown on the step
    page.locator(".palette-item[data-kind='wait']").click()  # pressed: added in a free place
    expect(step(page, "wait_1")).to_be_visible()
    connect(page, "filter_1", "negative", "wait_1")
    expect(page.locator("#campaign-canvas svg.connection")).to_have_count(3)
    page.get_by_role("button", name="Save campaign").click()
    wait = step(page, "wait_1")
    expect(wait).to_have_class(re.compile(r"\bhas-error\b"))
    expect(wait.locator(".cnode-error")).to_have_text("How long: is required")
    expect(panel.get_by_role("alert")).to_have_text("How long: is required")
    expect(panel.locator("#param-amount")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#editor-error")).to_have_text("Step wait_1 (Wait): How long: is required")
    shot(page, "4_error_desktop")
    assert Campaign.objects.get().version == 1

    panel.locator("#param-amount").fill("7")
    expect(wait).not_to_have_class(re.compile(r"\bhas-error\b"))
    expect(wait.locator(".cnode-summary")).to_have_text("7 minutes")

    # Copy and paste the selected step with the keyboard, then delete the copy; zoom
    wait.locator(".cnode-title").click()
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    expect(step(page, "wait_2").locator(".cnode-summary")).to_have_text("7 minutes")
    expect(page.locator(".drawflow-node")).to_have_count(5)
    page.keyboard.press("Delete")
    expect(page.locator(".drawflow-node")).to_have_count(4)
    page.get_by_role("button", name="Reset the zoom").click()
    page.get_by_role("button", name="Zoom out").click()
    expect(page.get_by_role("button", name="Reset the zoom")).to_have_text("90 %")
    page.get_by_role("button", name="Save campaign").click()
    expect(page.get_by_text("Campaign “Welcome VIPs” saved (version 2).")).to_be_visible()
    campaign.refresh_from_db()
    assert {"from": "filter_1", "port": "negative", "to": "wait_1"} in campaign.graph["edges"]
    assert {n["id"]: n for n in campaign.graph["nodes"]}["wait_1"]["params"] == {
        "amount": 7,
        "unit": "minutes",
    }

    # A phone-sized screen: the palette above the canvas, the side panel below it
    page.goto("/campaigns/")
    expect(page.locator(f"#campaign-{campaign.pk}")).to_contain_text("Not active")
    shot(page, "5_list_desktop")
    page.get_by_label("Only active").check()  # htmx replaces the results in place
    expect(page.get_by_text("No campaign is active")).to_be_visible()
    page.get_by_label("Only active").uncheck()
    page.get_by_label("Search campaigns by name").fill("spring")
    expect(page.get_by_text("No campaign matches “spring”")).to_be_visible()
    page.get_by_label("Search campaigns by name").fill("welcome")
    expect(page.locator(f"#campaign-{campaign.pk}")).to_be_visible()
    expect(page).to_have_url(re.compile(r"q=welcome"))
    page.set_viewport_size(PHONE)
    shot(page, "6_list_phone")
    page.goto(f"/campaigns/{campaign.pk}/")
    shot(page, "7_campaign_page_phone")
    page.goto(f"/campaigns/{campaign.pk}/edit/")
    step(page, "filter_1").locator(".cnode-title").click(force=True)
    shot(page, "8_editor_phone")
