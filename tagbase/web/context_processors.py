"""Values every page's navigation needs."""

from __future__ import annotations

from django.http import HttpRequest


def navigation(request: HttpRequest) -> dict[str, object]:
    match = getattr(request, "resolver_match", None)
    return {"nav_namespace": match.namespace if match else ""}
