"""The "Tags (target audience)" section of the customer profile (registered on app ready)."""

from __future__ import annotations

from django.http import HttpRequest

from tagbase.customers.models import Customer
from tagbase.customers.profile import ProfileSection, register_section


@register_section
def audiences_section(request: HttpRequest, customer: Customer) -> ProfileSection | None:
    from tagbase.audiences import queries

    return ProfileSection(
        key="audiences",
        title="Tags (target audience)",
        template="audiences/_profile_section.html",
        context={
            "memberships": queries.customer_memberships(customer.pk),
            "history": queries.customer_membership_history(customer.pk, limit=50),
        },
        order=50,
    )
