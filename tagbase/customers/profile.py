"""Sections that other apps add to the customer profile page.

``customers`` sits below ``audiences`` (and later segments and campaigns) in the layering, so it
cannot import them; instead each registers a section here from its ``AppConfig.ready``. A
section is a function ``(request, customer) -> ProfileSection | None``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from tagbase.customers.models import Customer


@dataclass
class ProfileSection:
    key: str
    title: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    order: int = 100


SectionProvider = Callable[[HttpRequest, Customer], ProfileSection | None]
_providers: list[SectionProvider] = []


def register_section(provider: SectionProvider) -> SectionProvider:
    if provider not in _providers:
        _providers.append(provider)
    return provider


def sections_for(request: HttpRequest, customer: Customer) -> list[ProfileSection]:
    found = [s for p in _providers if (s := p(request, customer)) is not None]
    return sorted(found, key=lambda s: s.order)
