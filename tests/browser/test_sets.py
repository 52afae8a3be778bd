"""The set-operations journey in a real browser: Target audiences → Combine, pick two audiences
and an operator while the preview (exact result, overlap) follows, put the result into a new
audience, follow the job, find the operation in the audience's history and undo it; then
"Members on a date" from an audience page.

As in the segments journey, the page's clock is paused and the test runs the job itself while
the browser is idle, so the live server and the test never use the database at the same time.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

from django.utils import timezone
from playwright.sync_api import expect

from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.audiences.services import add_customers_to_audience, create_audience
from tagbase.sets.models import SetJob
from tagbase.sets.pipeline import run_set_job
from tagbase.testing import make_customers, system_actor

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
SETTLE_MS = 50  # htmx settles swapped content after 20 ms


def pause_clock(page) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now()
    page.clock.install(time=now)
    page.clock.pause_at(now + timedelta(seconds=1))


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"sets_{name}.png"), full_page=True)


def test_a_marketer_combines_two_audiences_into_a_new_one_and_undoes_it(logged_in_page):
    ids = make_customers(6)
    vip = create_audience("VIP", actor=system_actor())
    buyers = create_audience("Buyers", actor=system_actor())
    add_customers_to_audience(vip, ids[0:4], actor=system_actor(), kind="api")
    add_customers_to_audience(buyers, ids[2:6], actor=system_actor(), kind="api")

    page = logged_in_page("marketer")
    pause_clock(page)
    page.goto("/audiences/")
    page.get_by_role("button", name="Combine audiences").click()
    expect(page.get_by_role("heading", name="Combine audiences", level=1)).to_be_visible()
    preview = page.locator("#combine-preview")
    expect(preview).to_contain_text("Choose A, an operator and B")

    page.get_by_label("A", exact=True).select_option(label="VIP")
    page.get_by_label("Operator").select_option(value="intersect")
    page.get_by_label("B", exact=True).select_option(label="Buyers")
    expect(preview).to_contain_text("2 customers in the result")
    expect(preview).to_contain_text("“VIP” \u2229 “Buyers”")
    expect(preview.get_by_role("row", name=re.compile("“VIP” only"))).to_contain_text("2")
    page.get_by_label("New audience name").fill("Both")
    page.get_by_label("New audience name").blur()
    expect(preview).to_contain_text("A new audience “Both” with 2 customers")
    page.clock.run_for(SETTLE_MS)
    shot(page, "1_preview")

    page.get_by_role("button", name="Combine", exact=True).click()
    expect(page.get_by_text(re.compile("waiting for a worker"))).to_be_visible()
    page.clock.run_for(SETTLE_MS)  # htmx wires up the status poll
    run_set_job(SetJob.objects.get().pk, owner="browser-test")  # what a worker does
    page.clock.run_for(1100)  # the status polls once a second
    operation = Operation.objects.get(kind=OperationKind.SET)
    expect(
        page.get_by_text(f"2 customers added in “Both” as operation #{operation.pk}.")
    ).to_be_visible()
    shot(page, "2_done")

    page.get_by_role("button", name=re.compile("^Open the audience.s history$")).click()
    expect(page.get_by_role("heading", name="Both", level=1)).to_be_visible()
    row = page.locator(f"#operation-{operation.pk}")
    expect(row).to_contain_text("Set operation")
    row.get_by_role("link", name=f"Undo operation {operation.pk}").click()
    page.clock.run_for(SETTLE_MS)
    page.get_by_role("dialog").get_by_role("button", name="Undo operation").click()
    expect(page.get_by_text(f"Operation #{operation.pk} undone")).to_be_visible()
    both = Audience.objects.get(name="Both")
    assert not Membership.objects.filter(audience=both).exists()


def test_members_on_a_date_from_the_audience_page(logged_in_page):
    ids = make_customers(3)
    vip = create_audience("VIP", actor=system_actor())
    add_customers_to_audience(vip, ids, actor=system_actor(), kind="api")
    page = logged_in_page("analyst")
    page.goto(f"/audiences/{vip.pk}/")
    box = page.get_by_role("region", name="Members on a date")
    box.get_by_label("Date").fill(timezone.localdate().isoformat())
    box.get_by_role("button", name="Show members").click()
    expect(page.get_by_role("heading", name="VIP — members on a date", level=1)).to_be_visible()
    expect(page.locator(".stat").first).to_contain_text("3")
    for customer_id in ids:
        expect(page.get_by_role("link", name=str(customer_id), exact=True)).to_be_visible()
    shot(page, "3_as_of")
