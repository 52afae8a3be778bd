"""Erasing a customer from the profile (admins only, with a confirmation) and from the command
line (``tagbase customers erase``). What the erasure reaches is tested in
tests/security/test_erasure_completeness.py."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from tagbase.accounts.models import Role
from tagbase.audiences.models import Operation, OperationKind
from tagbase.audiences.services import add_customers_to_audience, create_audience
from tagbase.customers.models import Customer, Erasure
from tagbase.testing import make_customer, make_user, system_actor

pytestmark = pytest.mark.django_db
ERASE_BUTTON = "Erase personal data"


def client_for(role: str) -> Client:
    client = Client()
    client.force_login(make_user(role))
    return client


def erase_url(customer: Customer) -> str:
    return reverse("customers:customer_erase", args=[customer.pk])


# --- Profile ----------------------------------------------------------------------------------


def test_only_admins_see_the_erase_button_on_the_profile():
    customer = make_customer()
    url = reverse("customers:customer_detail", args=[customer.pk])
    assert ERASE_BUTTON in client_for(Role.ADMIN).get(url).content.decode()
    for role in (Role.MARKETER, Role.ANALYST):
        assert ERASE_BUTTON not in client_for(role).get(url).content.decode()


def test_an_admin_confirms_then_the_customer_is_erased():
    customer = make_customer(first_name="Evlampia", email="lampa@example.org")
    audience = create_audience("VIP", actor=system_actor())
    add_customers_to_audience(audience, [customer.pk], actor=system_actor(), kind="api")
    client = client_for(Role.ADMIN)
    page = client.get(erase_url(customer))
    assert page.status_code == 200 and "cannot be undone" in page.content.decode()
    dialog = client.get(erase_url(customer), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="modal")
    assert dialog.status_code == 200 and "<html" not in dialog.content.decode()
    assert Customer.objects.filter(pk=customer.pk).exists()  # asking changes nothing

    response = client.post(erase_url(customer), follow=True)
    assert response.redirect_chain[-1][0] == reverse("customers:customer_list")
    assert f"Customer {customer.pk}: personal data erased" in response.content.decode()
    assert not Customer.objects.filter(pk=customer.pk).exists()
    record = Erasure.objects.get(sc_id=customer.pk)
    assert record.actor_label.startswith("admin")
    op = Operation.objects.get(kind=OperationKind.ERASURE)
    assert (op.audience_id, op.removed, op.actor_label) == (audience.pk, 1, record.actor_label)


def test_marketers_and_analysts_may_not_erase():
    customer = make_customer()
    for role in (Role.MARKETER, Role.ANALYST):
        client = client_for(role)
        assert client.get(erase_url(customer)).status_code == 403
        assert client.post(erase_url(customer)).status_code == 403
    assert Customer.objects.filter(pk=customer.pk).exists()
    assert not Erasure.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in():
    customer = make_customer()
    response = Client().post(erase_url(customer))
    assert response.status_code == 302 and "/login" in response["Location"]
    assert Customer.objects.filter(pk=customer.pk).exists()


# --- Command line -----------------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_the_command_erases_once_and_then_says_there_is_nothing_to_do():
    customer = make_customer()
    out = run("customers", "erase", str(customer.pk), "--yes")
    assert out.startswith(f"Customer {customer.pk}: personal data erased.")
    assert not Customer.objects.filter(pk=customer.pk).exists()
    assert Erasure.objects.get(sc_id=customer.pk).actor_label.startswith("cli:")
    again = run("customers", "erase", str(customer.pk), "--json")
    body = json.loads(again)
    assert (body["sc_id"], body["already_erased"]) == (customer.pk, True)
    assert body["counts"]["customers"]["customer_deleted"] == 1


def test_the_command_asks_first_and_refuses_without_a_terminal(monkeypatch):
    customer = make_customer()
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(CommandError, match="--yes"):
        run("customers", "erase", str(customer.pk))
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_the_command_names_an_unknown_customer():
    with pytest.raises(
        CommandError, match=r"Customer 424242 does not exist\. \[customer_not_found\]"
    ):
        run("customers", "erase", "424242", "--yes")


def test_the_audit_log_records_the_erasure_without_the_customer():
    from tagbase.accounts.models import AuditEntry

    customer = make_customer(first_name="Evlampia", email="lampa@example.org")
    run("customers", "erase", str(customer.pk), "--yes")
    entry = AuditEntry.objects.get(action="customer.erased")
    record = Erasure.objects.get(sc_id=customer.pk)
    assert (entry.target_type, entry.target_id) == ("erasure", record.pk)
    assert entry.summary == {"audiences": 0, "import_lines": 0, "messages": 0}
    assert entry.actor_label == record.actor_label
