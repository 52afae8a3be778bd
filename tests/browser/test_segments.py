"""The segments journey in a real browser: build a rule by clicking (find a field by typing in
the attribute box, choose the operator, type the value) while the live count follows, *Select*
for the figures and the first customers, save, then include the segment in an audience with
the exact count shown, wait for the job and find the operation in the audience's history.

No worker runs and the page's clock is paused (Playwright's fake timers; ``install`` alone
lets time flow, ``pause_at`` stops it): the builder's debounced count, htmx's settling of new
content (which is when htmx wires up the triggers in it) and the job status poll happen only
when the test moves the clock. The test runs the job itself (``run_segment_job``) while the
browser is idle, so the live server and the test never use the database at the same time.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

from playwright.sync_api import expect

from tagbase.audiences.models import Operation, OperationKind
from tagbase.audiences.services import add_customers_to_audience, create_audience
from tagbase.segments.models import Segment, SegmentJob
from tagbase.segments.pipeline import run_segment_job
from tagbase.testing import make_customer, system_actor

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
DEBOUNCE_MS = 450  # the builder counts 400 ms after the last edit
SETTLE_MS = 50  # htmx settles swapped content after 20 ms


def pause_clock(page) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now()
    page.clock.install(time=now)
    page.clock.pause_at(now + timedelta(seconds=1))


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"segments_{name}.png"), full_page=True)


def pick_field(page, box, typed: str, option: str) -> None:  # type: ignore[no-untyped-def]
    """Type in an attribute box and click the option it narrowed the list to."""
    box.click()
    box.press_sequentially(typed)
    listbox = page.get_by_role("listbox", name="Attributes")
    expect(listbox.get_by_role("option")).not_to_have_count(0)
    listbox.get_by_role("option", name=re.compile(f"^{option}")).click()


def test_a_marketer_builds_a_segment_by_clicking_and_adds_its_customers_to_an_audience(
    logged_in_page,
):
    grown = [make_customer(city="Moscow", birth_date=date(1980, 5, 1)) for _ in range(3)]
    make_customer(city="Moscow", birth_date=date(2015, 5, 1))
    make_customer(city="Omsk", birth_date=date(1980, 5, 1))
    vip = create_audience("VIP", actor=system_actor())
    add_customers_to_audience(vip, [grown[0].pk], actor=system_actor(), kind="api")

    page = logged_in_page("marketer")
    pause_clock(page)
    page.goto("/segments/")
    expect(page.get_by_role("heading", name="User segments", level=1)).to_be_visible()
    page.get_by_role("button", name="New segment").first.click()
    expect(page.get_by_role("heading", name="New segment", level=1)).to_be_visible()
    count = page.locator("#live-count")
    expect(count).to_have_text("5")  # an empty rule: every customer

    # Condition 1: City equals moscow (found by typing part of the group and field name)
    boxes = page.get_by_role("combobox", name="Attribute")
    pick_field(page, boxes.nth(0), "customer cit", "City")
    expect(boxes.nth(0)).to_have_value("Customer · City")
    page.get_by_label("Value").nth(0).fill("moscow")
    page.clock.run_for(DEBOUNCE_MS)
    expect(count).to_have_text("4")

    # Condition 2: Age greater than or equal to 30
    page.get_by_role("button", name="Condition", exact=True).click()
    pick_field(page, boxes.nth(1), "age", "Age")
    page.get_by_label("Operator").nth(1).select_option(label="greater than or equal to")
    page.get_by_label("Value").nth(1).fill("30")
    page.clock.run_for(DEBOUNCE_MS)
    expect(count).to_have_text("3")
    expect(page.locator("#live-summary")).to_have_text(
        "Customer. City equals “moscow” and Customer. Age greater than or equal to 30"
    )

    # An error is shown under the condition it names, and goes away when fixed
    page.get_by_label("Value").nth(1).fill("300")
    page.clock.run_for(DEBOUNCE_MS)
    condition = page.locator(".rule-cond").nth(1)
    expect(condition.get_by_role("alert")).to_have_text("must be between 0 and 200, not 300")
    page.get_by_label("Value").nth(1).fill("30")
    page.clock.run_for(DEBOUNCE_MS)
    expect(count).to_have_text("3")
    expect(condition.get_by_role("alert")).to_be_hidden()
    shot(page, "1_builder")

    page.get_by_role("button", name="Select").click()
    selection = page.get_by_role("region", name="Selection")
    expect(selection.get_by_text("The first 3 of 3 customers, by ID.")).to_be_visible()
    expect(selection.locator(".stat").first).to_contain_text("3")
    expect(selection.locator(".stat").nth(1)).to_contain_text("60.00 %")
    for customer in grown:
        expect(selection.get_by_role("link", name=str(customer.pk), exact=True)).to_be_visible()
    shot(page, "2_selection")

    page.get_by_role("textbox", name="Name", exact=True).fill("Muscovites 30+")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("heading", name="Muscovites 30+", level=1)).to_be_visible()
    segment = Segment.objects.get()
    assert segment.customers == 3
    assert [c["field"] for c in segment.rules["rules"]] == ["customer.city", "customer.age"]

    # Include in a target audience: the dialog shows the exact count, then the job's status
    page.get_by_role("button", name="Include in a target audience").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name=re.compile("in a target audience"))).to_be_visible()
    page.clock.run_for(SETTLE_MS)
    dialog.get_by_label("Audience", exact=True).select_option(label="VIP")
    expect(dialog.get_by_role("status")).to_contain_text("2 customers will be added to “VIP”")
    shot(page, "3_include")
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog.get_by_text(re.compile("waiting for a worker"))).to_be_visible()
    page.clock.run_for(SETTLE_MS)  # htmx wires up the status poll

    run_segment_job(SegmentJob.objects.get().pk, owner="browser-test")  # what a worker does
    page.clock.run_for(1100)  # the status polls once a second
    operation = Operation.objects.get(kind=OperationKind.SEGMENT)
    expect(
        dialog.get_by_text(f"2 customers added to “VIP” as operation #{operation.pk}.")
    ).to_be_visible()
    page.clock.run_for(SETTLE_MS)
    shot(page, "4_done")

    dialog.get_by_role("button", name=re.compile("^Open the audience.s history$")).click()
    expect(page.get_by_role("heading", name="VIP", level=1)).to_be_visible()
    row = page.locator(f"#operation-{operation.pk}")
    expect(row).to_contain_text("Segment")
    expect(row).to_contain_text("+2")
    expect(row.get_by_role("link", name=f"Undo operation {operation.pk}")).to_be_visible()
