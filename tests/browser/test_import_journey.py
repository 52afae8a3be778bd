"""The issue's journey, in a real browser: Target audiences → Import audiences → the original
product's example file with a preview → Import → the report → the audience's customers.

No worker runs in tests. The page's clock is frozen (Playwright's fake timers), so the report's
once-a-second htmx poll fires only when the test advances the clock: the test runs the job the
way a worker would (``run_import_job``) while the browser is idle, then lets one poll happen and
watches the page update itself. This also keeps the live server and the test from using the
shared in-memory SQLite connection at the same time.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from tagbase.imports.models import ImportJob
from tagbase.imports.pipeline import run_import_job
from tagbase.testing import make_customer

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
ORIGINAL_EXAMPLE = b"123;\n124;\n125;\n245."


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"import_journey_{name}.png"), full_page=True)


def run_job_and_poll(page) -> None:  # type: ignore[no-untyped-def]
    """Do what a worker does, then let the report's next poll happen."""
    job = ImportJob.objects.latest("pk")
    run_import_job(job.pk, owner="browser-test")
    page.clock.run_for(1100)


def test_a_marketer_imports_the_original_example_file_with_a_preview(logged_in_page):
    for sc_id in (123, 124, 125, 245):
        make_customer(sc_id=sc_id, first_name=f"Buyer{sc_id}", last_name="Example")

    page = logged_in_page("marketer")
    page.clock.install()
    page.reload()

    expect(page.get_by_role("heading", name="Target audiences", level=1)).to_be_visible()
    page.get_by_role("button", name="Import audiences").click()

    expect(page.get_by_role("heading", name="Import audiences", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("Mode 1"))).to_be_visible()
    page.get_by_role("radio", name=re.compile("^Set one target audience")).check()
    page.get_by_role("radio", name="Add", exact=True).check()
    page.get_by_label("Identifier type").select_option(label="Tagbase ID")
    page.get_by_label(re.compile("create a new audience named")).fill("Loyal from file")
    page.get_by_label("File", exact=True).set_input_files(
        files=[{"name": "example.csv", "mimeType": "text/csv", "buffer": ORIGINAL_EXAMPLE}]
    )
    expect(page.get_by_label("Preview before importing (dry run)")).to_be_checked()
    shot(page, "1_form")
    page.get_by_role("button", name="Upload and preview").click()

    expect(page.get_by_role("heading", name=re.compile(r"^Import #\d+$"))).to_be_visible()
    progress = page.get_by_role("region", name=re.compile("^Queued"))
    expect(progress).to_be_visible()
    expect(progress.get_by_role("progressbar")).to_be_visible()
    shot(page, "2_progress")

    run_job_and_poll(page)
    expect(page.get_by_role("heading", name="Nothing has changed yet")).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"Preview of import #\d+ is ready: 4 would be added"))
    ).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("^Would be added"))).to_contain_text("4")
    expect(page.locator("#identity")).to_contain_text("every row is accounted for")
    expect(page.get_by_role("img", name=re.compile("Outcome of 4 rows"))).to_be_visible()
    shot(page, "3_preview")

    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_role("region", name=re.compile("^Applying"))).to_be_visible()
    run_job_and_poll(page)
    expect(page.get_by_text("Every row of the file was applied.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Import #\d+ finished: 4 added\."))).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("^Added"))).to_contain_text("4")
    expect(page.get_by_role("button", name="Undo import")).to_be_visible()
    page.clock.run_for(100)  # let htmx settle the swap
    shot(page, "4_report")

    page.get_by_role("region", name="Audiences").get_by_role("link", name="Loyal from file").click()
    expect(page.get_by_role("heading", name="Loyal from file", level=1)).to_be_visible()
    members = page.get_by_role("region", name="Members")
    for sc_id in (123, 124, 125, 245):
        expect(members.get_by_role("link", name=str(sc_id), exact=True)).to_be_visible()
    expect(members.get_by_role("row").filter(has_text="Example")).to_have_count(4)
