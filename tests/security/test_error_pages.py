"""Error pages and logs show no personal data: a server error on a customer's page answers the
plain 500 page, and the error logged for the operator has the customer's contacts masked."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.urls import reverse

from tagbase.accounts.models import Role
from tagbase.customers import profile
from tagbase.testing import make_customer, make_user

pytestmark = pytest.mark.django_db


def test_a_server_error_shows_and_logs_no_personal_data(caplog, settings):
    assert settings.DEBUG is False  # as in production: no technical page
    customer = make_customer(email="lampa@example.org", phone="+79164021793")

    def broken_section(request, shown):  # type: ignore[no-untyped-def]
        raise ValueError(f"cannot show {shown.email} or {shown.phone}")

    profile.register_section(broken_section)
    try:
        client = Client(raise_request_exception=False)
        client.force_login(make_user(Role.ADMIN))
        with caplog.at_level(logging.ERROR, logger="django.request"):
            response = client.get(reverse("customers:customer_detail", args=[customer.pk]))
    finally:
        profile._providers.remove(broken_section)
    page = response.content.decode()
    assert response.status_code == 500 and "Something went wrong" in page
    assert "lampa" not in page and "9164021793" not in page and "Traceback" not in page
    logged = [r for r in caplog.records if r.name == "django.request"]
    assert logged and logged[0].exc_text and "[email]" in logged[0].exc_text
    assert "lampa" not in caplog.text and "9164021793" not in caplog.text
