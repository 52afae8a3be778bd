"""The product page's own journey, in a real browser: Target audiences → an audience's customers
→ a customer's profile with its "Tags (target audience)" section.

Data is made with the services (the one write path), then everything else is clicked: the test
finds things by their visible text and role, as a person would, not by CSS classes.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tagbase.audiences.services import add_customers_to_audience, create_audience
from tagbase.testing import make_customer, system_actor


def test_a_marketer_follows_an_audience_to_a_members_profile(logged_in_page):
    member = make_customer(
        first_name="Vera", last_name="Smirnova", phone_raw="+7 912 345-67-89", phone="+79123456789"
    )
    outsider = make_customer(first_name="Oleg", last_name="Outsider")
    vip = create_audience("VIP", actor=system_actor())
    add_customers_to_audience(vip, [member.sc_id], actor=system_actor(), kind="ui")
    create_audience("Lapsed buyers", actor=system_actor())

    page = logged_in_page("marketer")

    expect(page.get_by_role("heading", name=re.compile("Target audiences"))).to_be_visible()
    audiences = page.get_by_role("region", name="Audiences")
    expect(audiences.get_by_role("link", name="Lapsed buyers", exact=True)).to_be_visible()
    audiences.get_by_role("link", name="VIP", exact=True).click()

    expect(page.get_by_role("heading", name="VIP", level=1)).to_be_visible()
    members = page.get_by_role("region", name="Members")
    member_row = members.get_by_role("row").filter(has_text="Smirnova")
    expect(member_row).to_have_count(1)
    expect(members.get_by_role("link", name=str(outsider.sc_id), exact=True)).to_have_count(0)
    member_row.get_by_role("link", name=str(member.sc_id), exact=True).click()

    expect(page).to_have_url(re.compile(rf"/customers/{member.sc_id}/?$"))
    tags = page.get_by_role("region", name="Tags (target audience)")
    expect(tags).to_be_visible()
    expect(tags.get_by_role("link", name="VIP", exact=True)).to_be_visible()
    expect(tags.get_by_text("Lapsed buyers")).to_have_count(0)
