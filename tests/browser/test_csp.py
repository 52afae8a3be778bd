"""The Content-Security-Policy does not break the UI: the main pages are loaded in Chromium and
the test fails on any CSP violation the browser reports (tagbase.web.security).

Chromium writes each violation to the console ("Refused to execute inline script because it
violates the following Content Security Policy directive…"); an init script also turns every
``securitypolicyviolation`` event into a console error, so none can go unreported. Uncaught
script errors fail the test too: a blocked ``eval`` surfaces as one. A canary page with an
inline script and an inline style, served under the same policy, proves the detection works.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tagbase.audiences.services import add_customers_to_audience, create_audience
from tagbase.testing import make_customer, system_actor
from tagbase.web.security import CONTENT_SECURITY_POLICY

REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline")
    + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


def watch(page) -> Callable[[], list[str]]:  # type: ignore[no-untyped-def]
    """Collect CSP reports and uncaught errors from now on; returns a function listing them."""
    problems: list[str] = []

    def on_console(message) -> None:  # type: ignore[no-untyped-def]
        text = message.text
        if "Content Security Policy" in text or text.startswith("CSP violation"):
            problems.append(f"{page.url}: {text}")

    page.context.add_init_script(REPORT_VIOLATIONS)
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"{page.url}: uncaught {error}"))
    return lambda: list(problems)


def visit(page, path: str) -> None:  # type: ignore[no-untyped-def]
    response = page.goto(path)
    assert response is not None and response.status == 200, (path, response and response.status)
    assert response.headers.get("content-security-policy") == CONTENT_SECURITY_POLICY, path
    page.wait_for_load_state("networkidle")


def test_the_detector_sees_inline_script_and_style_under_our_policy(browser_page):
    page = browser_page
    problems = watch(page)
    page.route(
        re.compile(r".*/csp-canary$"),
        lambda route: route.fulfill(
            status=200,
            headers={
                "Content-Type": "text/html",
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            },
            body='<p style="color: red">x</p><script>document.title = "ran"</script>',
        ),
    )
    page.goto("/csp-canary")
    page.wait_for_load_state("load")
    assert page.title() != "ran"  # the inline script was blocked…
    found = problems()
    assert any("script-src" in p for p in found), found  # …and reported
    assert any("style-src" in p for p in found), found


def test_the_main_pages_run_under_the_csp_without_a_violation(logged_in_page):
    customer = make_customer(first_name="Vera", last_name="Smirnova")
    vip = create_audience("VIP", actor=system_actor())
    add_customers_to_audience(vip, [customer.sc_id], actor=system_actor(), kind="ui")

    page = logged_in_page("admin")
    problems = watch(page)
    for path in [
        "/login/",
        "/customers/",
        f"/customers/{customer.sc_id}/",
        "/audiences/",
        f"/audiences/{vip.pk}/",
        "/segments/",
        "/segments/new/",
        "/campaigns/",
        "/campaigns/new/",
        "/imports/",
        "/imports/new/",
        "/sets/combine/",
        "/api/v1/docs",
    ]:
        visit(page, path)
    # Scripts did run (no silent block): the segment builder drew its first condition, the
    # campaign editor its canvas, Swagger UI the operations.
    visit(page, "/segments/new/")
    page.locator("#rule-builder .rule-group").first.wait_for()
    visit(page, "/campaigns/new/")
    page.locator(".drawflow").first.wait_for()
    visit(page, "/api/v1/docs")
    page.locator(".opblock").first.wait_for()
    assert problems() == []
