"""Small helpers every page uses: icons, sortable column headers, day counts, the version."""

from __future__ import annotations

import datetime as dt
import functools
import json
from importlib import metadata

from django import template
from django.conf import settings
from django.core.paginator import Page
from django.templatetags.static import static
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()


@functools.lru_cache(maxsize=4)
def _sprite(static_url: str | None) -> str:
    """The sprite's URL, resolved once per STATIC_URL: a page with a table of a thousand rows
    draws hundreds of icons, and ``static()`` asks the storage every time."""
    return static("tagbase/icons.svg")


_PK_SENTINEL = 2_147_480_001


@functools.lru_cache(maxsize=256)
def _pk_pattern(name: str, prefix: str, urlconf: str | None) -> tuple[str, str]:
    url = reverse(name, args=[_PK_SENTINEL], urlconf=urlconf)
    before, found, after = url.partition(str(_PK_SENTINEL))
    if not found:  # pragma: no cover - a route whose argument is not in its path
        raise ValueError(f"{name} does not put its argument in the path")
    return before, after


@register.simple_tag
def pk_url(name: str, pk: int) -> str:
    """``{% url name pk %}`` for a route whose one argument is an object's id, reversed once
    per route and process: a table of 50 rows with 5 links each otherwise spends half of its
    rendering time in ``reverse``."""
    before, after = _pk_pattern(name, get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF)
    return f"{before}{int(pk)}{after}"


@register.simple_tag
def icon(name: str, label: str = "") -> str:
    """An icon from the static SVG sprite. Decorative unless ``label`` is given, in which case
    screen readers announce the label."""
    href = f"{_sprite(settings.STATIC_URL)}#{name}"
    if label:
        return format_html(
            '<svg class="icon icon-{}" role="img" aria-label="{}"><use href="{}"></use></svg>',
            name,
            label,
            href,
        )
    return format_html(
        '<svg class="icon icon-{}" aria-hidden="true" focusable="false">'
        '<use href="{}"></use></svg>',
        name,
        href,
    )


@register.filter
def days_since(value: dt.date | dt.datetime | None) -> int | None:
    """Whole days from ``value`` to today (local time); None stays None."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return (timezone.localdate() - value).days


@register.simple_tag(takes_context=True)
def sort_header(context: template.Context, key: str, label: str, first: str = "") -> str:
    """A column header link that sorts by ``key`` and toggles the direction when it already
    does; ``first`` is the order of the first click (``-count`` to start with the largest).
    The current order comes from the context's ``sort`` (``key`` or ``-key``)."""
    request = context["request"]
    current = context.get("sort", "")
    if current == key:
        target, state, arrow = f"-{key}", "ascending", "sort-asc"
    elif current == f"-{key}":
        target, state, arrow = key, "descending", "sort-desc"
    else:
        target, state, arrow = first or key, "", "sort"
    query = request.GET.copy()
    query["sort"] = target
    query.pop("page", None)
    href = f"?{query.urlencode()}"
    return format_html(
        '<a href="{}" hx-get="{}" hx-push-url="true" class="sort-link{}" data-sort-state="{}">'
        "{}{}</a>",
        href,
        href,
        " is-sorted" if state else "",
        state or "none",
        label,
        icon(arrow),
    )


@register.simple_tag(takes_context=True)
def aria_sort(context: template.Context, key: str) -> str:
    """``aria-sort`` value for a header cell: ascending, descending or none."""
    current = context.get("sort", "")
    if current == key:
        return "ascending"
    if current == f"-{key}":
        return "descending"
    return "none"


@register.filter
def as_json(value: object) -> str:
    """Compact JSON of a value (an event's payload) for display; escaped by the template."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@register.filter
def elided_range(page: Page) -> list[int | str]:
    """Page numbers to show around the current one, with "…" gaps (1 … 4 5 6 … 20)."""
    return list(page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1))


@register.simple_tag
def tagbase_version() -> str:
    try:
        return metadata.version("tagbase")
    except metadata.PackageNotFoundError:  # running from a tree that was never installed
        return "dev"
