"""Template helpers of every page (tagbase.web.templatetags.tagbase_ui)."""

from __future__ import annotations

import datetime as dt

from django.template import Context, Template
from django.test import RequestFactory
from django.utils import timezone

from tagbase.web.templatetags.tagbase_ui import as_json, days_since, icon


def render(source: str, query: str = "", **context: object) -> str:
    request = RequestFactory().get("/audiences/" + query)
    return Template("{% load tagbase_ui %}" + source).render(
        Context({"request": request, **context})
    )


def test_days_since_counts_whole_local_days_and_keeps_none():
    today = timezone.localdate()
    assert days_since(today - dt.timedelta(days=3)) == 3
    assert days_since(timezone.now() - dt.timedelta(days=10)) == 10
    assert days_since(None) is None


def test_a_decorative_icon_is_hidden_and_a_labelled_one_is_announced():
    assert 'aria-hidden="true"' in icon("warning")
    labelled = icon("warning", 'Invalid "phone"')
    assert 'role="img"' in labelled and 'aria-label="Invalid &quot;phone&quot;"' in labelled


def test_a_sort_header_toggles_the_direction_and_keeps_the_search():
    first = render("{% sort_header 'count' 'Count' '-count' %}", "?q=vip&page=3", sort="name")
    assert 'href="?q=vip&amp;sort=-count"' in first and 'data-sort-state="none"' in first
    again = render("{% sort_header 'count' 'Count' %}", "?sort=-count", sort="-count")
    assert 'href="?sort=count"' in again and 'data-sort-state="descending"' in again
    assert render("{% aria_sort 'count' %}", sort="count") == "ascending"


def test_json_for_display_is_compact_and_keeps_unicode():
    assert as_json({"b": 1, "a": "Привет"}) == '{"a": "Привет", "b": 1}'


def test_pk_url_equals_reverse_for_any_id_and_follows_the_script_prefix():
    from django.urls import clear_script_prefix, reverse, set_script_prefix

    from tagbase.web.templatetags.tagbase_ui import pk_url

    for name in (
        "audiences:audience_detail",
        "audiences:audience_rename",
        "segments:segment_detail",
    ):
        for pk in (1, 7, 2_147_480_001, 10**12):
            assert pk_url(name, pk) == reverse(name, args=[pk])
    set_script_prefix("/crm/")
    try:
        assert pk_url("audiences:audience_detail", 5) == "/crm/audiences/5/"
    finally:
        clear_script_prefix()
    assert pk_url("audiences:audience_detail", 5) == "/audiences/5/"
