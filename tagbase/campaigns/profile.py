"""The "Campaigns" section of the customer profile: the campaigns the customer entered and the
steps they passed (registered on app ready; customers sits below campaigns in the layering)."""

from __future__ import annotations

from django.http import HttpRequest

from tagbase.customers.models import Customer
from tagbase.customers.profile import ProfileSection, register_section


@register_section
def campaigns_section(request: HttpRequest, customer: Customer) -> ProfileSection | None:
    from tagbase.campaigns import queries

    return ProfileSection(
        key="campaigns",
        title="Campaigns",
        template="campaigns/_profile_section.html",
        context={"entries": queries.customer_campaigns(customer.pk, limit=20)},
        order=60,
    )
