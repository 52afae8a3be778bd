"""Display helpers of the import pages: status badges, option labels, durations."""

from __future__ import annotations

from datetime import timedelta

from django import template

from tagbase.imports.models import ImportStatus
from tagbase.imports.report_page import STATUS_BADGE, WORKING
from tagbase.lib.identifiers import ID_TYPE_LABELS, IdType

register = template.Library()

DELIMITER_LABELS = {";": "semicolon ( ; )", ",": "comma ( , )", "tab": "tab", "auto": "detect"}
ENCODING_LABELS = {
    "auto": "detect",
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "cp1251": "Windows-1251",
    "utf-16": "UTF-16",
}


@register.filter
def status_badge(status: str) -> str:
    """The badge class of an import status (working ones are info, with a spinner)."""
    try:
        return STATUS_BADGE.get(ImportStatus(status), "badge-info")
    except ValueError:
        return ""


@register.filter
def is_working(status: str) -> bool:
    return status in WORKING


@register.filter
def id_type_label(value: str) -> str:
    try:
        return ID_TYPE_LABELS[IdType(value)]
    except ValueError:
        return value


@register.filter
def delimiter_label(value: str) -> str:
    return DELIMITER_LABELS.get(value, value)


@register.filter
def encoding_label(value: str) -> str:
    return ENCODING_LABELS.get(value.lower(), value) if value else ""


@register.filter
def short_duration(value: timedelta | None) -> str:
    """``0.4 s``, ``12 s``, ``3 min 5 s``, ``2 h 4 min``."""
    if value is None:
        return ""
    seconds = max(value.total_seconds(), 0.0)
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        minutes, secs = divmod(whole, 60)
        return f"{minutes} min {secs} s" if minutes else f"{secs} s"
    hours, rest = divmod(whole, 3600)
    return f"{hours} h {rest // 60} min"


@register.filter
def percent(value: float) -> str:
    """A share for a legend: one decimal, ``<0.1`` for a tiny non-zero one."""
    if 0 < value < 0.1:
        return "<0.1"
    return f"{value:.1f}"
