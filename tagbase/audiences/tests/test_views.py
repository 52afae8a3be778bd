"""Customers → Target audiences in the web UI: every page for every role, the writes through the
UI (create, rename, delete, paste add/remove, undo), the export, and query-count ceilings."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tagbase.accounts.models import Role
from tagbase.audiences import services
from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.customers.models import Card, CardStatus
from tagbase.testing import make_customer, make_customers, make_user, system_actor

pytestmark = pytest.mark.django_db
ACTOR = system_actor()


def client_for(role: str) -> Client:
    client = Client()
    client.force_login(make_user(role))
    return client


def new_audience(name: str = "VIP", members: list[int] | None = None) -> Audience:
    audience = services.create_audience(name, actor=ACTOR)
    if members:
        services.add_customers_to_audience(audience, members, actor=ACTOR, kind="cli")
        audience.refresh_from_db()
    return audience


def members(audience: Audience) -> set[int]:
    return set(Membership.objects.filter(audience=audience).values_list("customer_id", flat=True))


def htmx(target: str) -> dict[str, str]:
    return {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target}


def page_text(response) -> str:
    return response.content.decode()


# --- Access -----------------------------------------------------------------------------------


def audience_pages(audience: Audience, operation: Operation) -> list[str]:
    return [
        reverse("audiences:audience_list"),
        reverse("audiences:audience_detail", args=[audience.pk]),
        reverse("audiences:audience_export", args=[audience.pk]) + "?id_type=sc_id",
    ]


def write_pages(audience: Audience, operation: Operation) -> list[str]:
    return [
        reverse("audiences:audience_create"),
        reverse("audiences:audience_rename", args=[audience.pk]),
        reverse("audiences:audience_delete", args=[audience.pk]),
        reverse("audiences:operation_undo", args=[operation.pk]),
    ]


def an_audience_with_an_operation() -> tuple[Audience, Operation]:
    ids = make_customers(2)
    audience = new_audience()
    op = services.add_customers_to_audience(audience, ids, actor=ACTOR, kind="cli")
    return audience, op


def test_anonymous_visitors_are_sent_to_the_login_page_from_every_page():
    audience, op = an_audience_with_an_operation()
    writes = write_pages(audience, op)
    writes.append(reverse("audiences:audience_members_change", args=[audience.pk]))
    responses = [(url, Client().get(url)) for url in audience_pages(audience, op) + writes]
    responses += [(url, Client().post(url)) for url in writes]
    for url, response in responses:
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


@pytest.mark.parametrize("role", [Role.MARKETER, Role.ANALYST, Role.ADMIN])
def test_every_reading_page_renders_for_every_role(role):
    audience, op = an_audience_with_an_operation()
    client = client_for(role)
    for url in audience_pages(audience, op):
        assert client.get(url).status_code == 200, url


def test_marketers_open_every_write_page():
    audience, op = an_audience_with_an_operation()
    client = client_for(Role.MARKETER)
    for url in write_pages(audience, op):
        assert client.get(url).status_code == 200, url


def test_analysts_get_403_for_every_write_page_and_every_post():
    audience, op = an_audience_with_an_operation()
    client = client_for(Role.ANALYST)
    for url in write_pages(audience, op):
        assert client.get(url).status_code == 403, url
    posts = [
        (reverse("audiences:audience_create"), {"name": "New"}),
        (reverse("audiences:audience_rename", args=[audience.pk]), {"name": "Renamed"}),
        (reverse("audiences:audience_delete", args=[audience.pk]), {}),
        (reverse("audiences:operation_undo", args=[op.pk]), {}),
        (
            reverse("audiences:audience_members_change", args=[audience.pk]),
            {"action": "remove", "id_type": "sc_id", "identifiers": "1"},
        ),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    audience.refresh_from_db()
    assert (audience.name, audience.member_count) == ("VIP", 2)
    assert Audience.objects.count() == 1


def test_analysts_see_no_write_controls():
    audience, _ = an_audience_with_an_operation()
    client = client_for(Role.ANALYST)
    listing = page_text(client.get(reverse("audiences:audience_list")))
    detail = page_text(client.get(reverse("audiences:audience_detail", args=[audience.pk])))
    for html in (listing, detail):
        assert "Create audience" not in html
        assert reverse("audiences:audience_delete", args=[audience.pk]) not in html
        assert reverse("audiences:audience_rename", args=[audience.pk]) not in html
    assert "Import audiences" not in listing
    assert "Add / remove customers" not in detail
    assert "Undo" not in detail


def test_unknown_audience_or_operation_is_404():
    client = client_for(Role.MARKETER)
    assert client.get(reverse("audiences:audience_detail", args=[999_999])).status_code == 404
    assert client.get(reverse("audiences:audience_rename", args=[999_999])).status_code == 404
    assert client.post(reverse("audiences:audience_delete", args=[999_999])).status_code == 404
    assert client.get(reverse("audiences:operation_undo", args=[999_999])).status_code == 404
    assert client.get("/audiences/99999999999999999999999/").status_code == 404


# --- The list ---------------------------------------------------------------------------------


def test_the_list_shows_name_count_and_date_set_of_each_audience():
    ids = make_customers(1234)
    filled = new_audience("Loyal buyers", ids)
    new_audience("Never set")
    html = page_text(client_for(Role.ANALYST).get(reverse("audiences:audience_list")))
    assert reverse("audiences:audience_detail", args=[filled.pk]) in html
    assert "1,234" in html
    assert filled.last_set_at.strftime("%Y") in html
    assert "Never set" in html and "never" in html


def test_the_list_query_count_does_not_grow_with_the_number_of_audiences():
    client = client_for(Role.MARKETER)
    ids = make_customers(3)

    def queries_for(total: int) -> int:
        while Audience.objects.count() < total:
            new_audience(f"Audience {Audience.objects.count():03}", ids)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("audiences:audience_list")).status_code == 200
        return len(ctx.captured_queries)

    assert queries_for(3) == queries_for(30) <= 6


def test_the_list_is_searched_by_name_ignoring_case_and_spacing():
    new_audience("Summer  Sale")
    new_audience("Winter")
    client = client_for(Role.MARKETER)
    html = page_text(client.get(reverse("audiences:audience_list"), {"q": "summer sale"}))
    assert "Summer  Sale" in html and "Winter" not in html
    html = page_text(client.get(reverse("audiences:audience_list"), {"q": "nothing like it"}))
    assert "No audience matches" in html


def test_the_list_sorts_by_count_and_an_unknown_sort_falls_back_to_name():
    ids = make_customers(3)
    new_audience("A small", ids[:1])
    new_audience("B big", ids)
    client = client_for(Role.MARKETER)
    html = page_text(client.get(reverse("audiences:audience_list"), {"sort": "-count"}))
    assert html.index("B big") < html.index("A small")
    html = page_text(client.get(reverse("audiences:audience_list"), {"sort": "DROP TABLE"}))
    assert html.index("A small") < html.index("B big")


def test_an_htmx_search_gets_only_the_results_part():
    new_audience("Only one")
    response = client_for(Role.MARKETER).get(
        reverse("audiences:audience_list"), {"q": "only"}, **htmx("results")
    )
    html = page_text(response)
    assert 'id="results"' in html and "Only one" in html
    assert "<html" not in html and "Skip to content" not in html


# --- Create, rename, delete -------------------------------------------------------------------


def test_a_marketer_creates_an_audience_and_lands_on_its_page():
    client = client_for(Role.MARKETER)
    response = client.post(
        reverse("audiences:audience_create"), {"name": "  Newsletter ", "description": "Opt-in"}
    )
    audience = Audience.objects.get()
    assert (audience.name, audience.description) == ("Newsletter", "Opt-in")
    assert response["Location"] == reverse("audiences:audience_detail", args=[audience.pk])
    assert "created" in page_text(client.get(response["Location"]))


def test_creating_a_taken_name_shows_the_service_error_on_the_form():
    new_audience("VIP")
    client = client_for(Role.MARKETER)
    response = client.post(reverse("audiences:audience_create"), {"name": "vip"}, **htmx("modal"))
    assert response.status_code == 200
    assert "already exists" in page_text(response)
    assert Audience.objects.count() == 1


def test_a_name_with_a_control_character_is_refused_with_a_message():
    response = client_for(Role.MARKETER).post(
        reverse("audiences:audience_create"), {"name": "Bad\u200bname"}
    )
    assert response.status_code == 200
    assert "invisible or control character" in page_text(response)
    assert not Audience.objects.exists()


def test_creating_from_the_dialog_redirects_the_whole_page():
    response = client_for(Role.MARKETER).post(
        reverse("audiences:audience_create"), {"name": "From dialog"}, **htmx("modal")
    )
    audience = Audience.objects.get()
    assert response["HX-Redirect"] == reverse("audiences:audience_detail", args=[audience.pk])


def test_rename_inline_returns_the_edit_row_then_the_renamed_row():
    audience = new_audience("Old name")
    client = client_for(Role.MARKETER)
    url = reverse("audiences:audience_rename", args=[audience.pk])
    row = f"audience-{audience.pk}"
    edit = page_text(client.get(url, {"next": "list"}, **htmx(row)))
    assert 'class="row-edit"' in edit and 'value="Old name"' in edit
    saved = page_text(client.post(url, {"name": "New name", "next": "list"}, **htmx(row)))
    assert f'id="{row}"' in saved and "New name" in saved and "row-edit" not in saved
    assert 'hx-swap-oob="beforeend"' in saved and "Audience renamed to" in saved
    audience.refresh_from_db()
    assert audience.name == "New name"


def test_rename_to_a_taken_name_keeps_the_edit_row_with_the_error():
    new_audience("Taken")
    audience = new_audience("Mine")
    url = reverse("audiences:audience_rename", args=[audience.pk])
    response = client_for(Role.MARKETER).post(
        url, {"name": " TAKEN ", "next": "list"}, **htmx(f"audience-{audience.pk}")
    )
    html = page_text(response)
    assert "row-edit" in html and "already exists" in html and 'aria-invalid="true"' in html
    audience.refresh_from_db()
    assert audience.name == "Mine"


def test_rename_without_javascript_redirects_back_to_where_it_came_from():
    audience = new_audience("Plain")
    client = client_for(Role.MARKETER)
    url = reverse("audiences:audience_rename", args=[audience.pk])
    response = client.post(url, {"name": "Plainer", "next": "list"})
    assert response["Location"] == reverse("audiences:audience_list")
    response = client.post(url, {"name": "Plainest"})
    assert response["Location"] == reverse("audiences:audience_detail", args=[audience.pk])


def test_the_delete_confirmation_states_the_member_count_and_delete_removes_it():
    audience = new_audience("Doomed", make_customers(1500))
    client = client_for(Role.MARKETER)
    url = reverse("audiences:audience_delete", args=[audience.pk])
    confirm = page_text(client.get(url, **htmx("modal")))
    assert "1,500 customers" in confirm and "<html" not in confirm
    response = client.post(url)
    assert response["Location"] == reverse("audiences:audience_list")
    assert not Audience.objects.filter(pk=audience.pk).exists()
    assert not Membership.objects.exists()
    assert "Doomed" in page_text(client.get(response["Location"]))  # the toast


def test_the_first_import_address_leads_to_the_import_form_with_the_audience_kept():
    url = reverse("audiences:audience_import") + "?audience=7"
    response = client_for(Role.MARKETER).get(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("imports:import_new") + "?audience=7"
    assert client_for(Role.ANALYST).get(url).status_code == 403
    assert Client().get(url)["Location"].startswith(reverse("login"))


def test_the_target_audiences_page_leads_to_the_import_form():
    html = page_text(client_for(Role.MARKETER).get(reverse("audiences:audience_list")))
    assert f'href="{reverse("imports:import_new")}"' in html


# --- The audience page ------------------------------------------------------------------------


def test_the_audience_page_shows_members_with_date_and_operation():
    ids = make_customers(2)
    audience = new_audience("Page")
    op = services.add_customers_to_audience(audience, ids, actor=ACTOR, kind=OperationKind.API)
    html = page_text(
        client_for(Role.ANALYST).get(reverse("audiences:audience_detail", args=[audience.pk]))
    )
    for customer_id in ids:
        assert reverse("customers:customer_detail", args=[customer_id]) in html
    assert f"#{op.pk}</span> · API" in html


def test_members_are_paged_by_keyset_with_a_next_link(settings):
    settings.TAGBASE_PAGE_SIZE = 3
    ids = make_customers(7)
    audience = new_audience("Paged", ids)
    client = client_for(Role.MARKETER)
    url = reverse("audiences:audience_detail", args=[audience.pk])
    first = page_text(client.get(url))
    assert f"?after={ids[2]}" in first
    second = page_text(client.get(url, {"after": ids[2]}, **htmx("members")))
    assert reverse("customers:customer_detail", args=[ids[3]]) in second
    assert reverse("customers:customer_detail", args=[ids[2]]) not in second
    assert f"?after={ids[5]}" in second
    last = page_text(client.get(url, {"after": ids[5]}))
    assert "?after=" not in last
    assert client.get(url, {"after": "-1; DROP"}).status_code == 200


def test_the_audience_page_uses_a_fixed_number_of_queries():
    audience = new_audience("Counted", make_customers(40))
    client = client_for(Role.MARKETER)
    url = reverse("audiences:audience_detail", args=[audience.pk])
    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    assert len(ctx.captured_queries) <= 7


def test_finding_a_member_by_phone_tells_whether_they_are_in_the_audience():
    inside = make_customer(phone="+79123456789", phone_raw="+79123456789")
    outside = make_customer(phone="+79123456780", phone_raw="+79123456780")
    audience = new_audience("Find", [inside.pk])
    client = client_for(Role.ANALYST)
    url = reverse("audiences:audience_detail", args=[audience.pk])
    found = page_text(client.get(url, {"find_type": "phone", "find": "8 912 345-67-89"}))
    assert "is a member since" in found
    missing = page_text(client.get(url, {"find_type": "phone", "find": "+7 912 345 67 80"}))
    assert "is not a member" in missing and str(outside.pk) in missing
    unknown = page_text(client.get(url, {"find_type": "email", "find": "nobody@example.com"}))
    assert "No customer has this e-mail" in unknown
    bad = client.get(url, {"find_type": "sc_id", "find": "12abc"}, **htmx("member-find"))
    assert bad.status_code == 200 and "whole number" in page_text(bad)


# --- Add / remove by paste --------------------------------------------------------------------


def test_pasting_mixed_identifiers_adds_the_good_ones_and_reports_the_rest():
    a = make_customer(email="a@example.com", email_raw="a@example.com")
    b = make_customer(email="b@example.com", email_raw="b@example.com")
    make_customer(email="shared@example.com", email_raw="shared@example.com")
    make_customer(email="shared@example.com", email_raw="shared@example.com")
    audience = new_audience("Paste", [b.pk])
    paste = "A@Example.com\nb@example.com; shared@example.com, nobody@example.com\nnot-an-email\n"
    response = client_for(Role.MARKETER).post(
        reverse("audiences:audience_members_change", args=[audience.pk]),
        {"action": "add", "id_type": "email", "identifiers": paste},
    )
    html = page_text(response)
    assert response.status_code == 200
    assert "<strong>1</strong> added" in html
    assert "<strong>1</strong> already member" in html
    assert "<strong>1</strong> not found" in html and "nobody@example.com" in html
    assert "<strong>1</strong> ambiguous" in html and "shared@example.com" in html
    assert "<strong>1</strong> invalid" in html and "not-an-email" in html
    assert members(audience) == {a.pk, b.pk}
    op = Operation.objects.filter(audience=audience, kind=OperationKind.UI).get()
    assert (op.added, op.already_member, op.not_found, op.ambiguous, op.invalid) == (1, 1, 1, 1, 1)
    assert op.actor_label.startswith("marketer")


def test_pasting_to_remove_removes_members_and_counts_non_members():
    ids = make_customers(3)
    audience = new_audience("Remove", ids[:2])
    response = client_for(Role.MARKETER).post(
        reverse("audiences:audience_members_change", args=[audience.pk]),
        {"action": "remove", "id_type": "sc_id", "identifiers": f"{ids[0]} {ids[2]}"},
    )
    html = page_text(response)
    assert "<strong>1</strong> removed" in html and "<strong>1</strong> not a member" in html
    assert members(audience) == {ids[1]}


def test_rejected_values_are_shown_escaped():
    audience = new_audience("Escape")
    response = client_for(Role.MARKETER).post(
        reverse("audiences:audience_members_change", args=[audience.pk]),
        {"action": "add", "id_type": "external_id", "identifiers": "<script>alert(1)</script>"},
    )
    html = page_text(response)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_paste_over_the_limit_is_refused_before_anything_changes(settings):
    settings.TAGBASE_MAX_IDS_PER_REQUEST = 3
    ids = make_customers(4)
    audience = new_audience("Limit")
    response = client_for(Role.MARKETER).post(
        reverse("audiences:audience_members_change", args=[audience.pk]),
        {"action": "add", "id_type": "sc_id", "identifiers": "\n".join(map(str, ids))},
    )
    assert "at most 3 are accepted" in page_text(response)
    assert members(audience) == set()
    assert not Operation.objects.filter(audience=audience).exists()


def test_an_empty_paste_or_unknown_type_is_a_form_error_not_a_crash():
    audience = new_audience("Empty")
    url = reverse("audiences:audience_members_change", args=[audience.pk])
    client = client_for(Role.MARKETER)
    empty = client.post(url, {"action": "add", "id_type": "sc_id", "identifiers": " ;\n, "})
    assert empty.status_code == 200 and "Paste at least one identifier" in page_text(empty)
    bad_type = client.post(url, {"action": "add", "id_type": "passport", "identifiers": "1"})
    assert bad_type.status_code == 200 and "Select a valid choice" in page_text(bad_type)
    assert not Operation.objects.filter(audience=audience).exists()


def test_digit_groups_in_a_paste_are_rejected_not_split_into_other_customers():
    ids = make_customers(3)
    audience = new_audience("Groups")
    client_for(Role.MARKETER).post(
        reverse("audiences:audience_members_change", args=[audience.pk]),
        {"action": "add", "id_type": "sc_id", "identifiers": "1 234 567"},
    )
    op = Operation.objects.get(audience=audience)
    assert (op.added, op.invalid) == (0, 1)
    assert members(audience) == set()
    assert ids  # the customers 1, 234 and 567 might exist; none was touched


# --- Undo -------------------------------------------------------------------------------------


def test_undo_from_the_ui_reverts_an_add():
    ids = make_customers(3)
    audience = new_audience("Undo", ids[:1])
    op = services.add_customers_to_audience(audience, ids, actor=ACTOR, kind="ui")
    client = client_for(Role.MARKETER)
    url = reverse("audiences:operation_undo", args=[op.pk])
    confirm = page_text(client.get(url, **htmx("modal")))
    assert f"Undo operation #{op.pk}?" in confirm and "added <strong>2</strong>" in confirm
    response = client.post(url, **htmx("modal"))
    assert response["HX-Redirect"] == reverse("audiences:audience_detail", args=[audience.pk])
    assert members(audience) == {ids[0]}
    op.refresh_from_db()
    assert op.status == "undone"


def test_undoing_twice_shows_a_message_instead_of_failing():
    audience = new_audience("Twice", make_customers(2))
    op = Operation.objects.get(audience=audience)
    client = client_for(Role.MARKETER)
    url = reverse("audiences:operation_undo", args=[op.pk])
    client.post(url)
    response = client.post(url, follow=True)
    assert response.status_code == 200
    assert "already been undone" in page_text(response)


# --- Export -----------------------------------------------------------------------------------


def export(client: Client, audience: Audience, id_type: str):
    url = reverse("audiences:audience_export", args=[audience.pk])
    return client.get(url, {"id_type": id_type})


def rows_of(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body)))


def test_export_by_phone_streams_escaped_phones_and_skips_members_without_one():
    with_phone = make_customer(phone="+79123456789", phone_raw="8 912 345 67 89")
    without = make_customer(phone=None, phone_raw="12")
    audience = new_audience("Phones", [with_phone.pk, without.pk])
    response = export(client_for(Role.MARKETER), audience, "phone")
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert f"audience-{audience.pk}-phone.csv" in response["Content-Disposition"]
    assert rows_of(response) == [["'+79123456789"]]


def test_export_escapes_values_that_a_spreadsheet_would_run_as_formulas():
    tricky = make_customer(external_id='=HYPERLINK("http://x")')
    plain = make_customer(external_id="ERP-1")
    at = make_customer(external_id="@SUM(A1)")
    audience = new_audience("Formulas", [tricky.pk, plain.pk, at.pk])
    rows = rows_of(export(client_for(Role.MARKETER), audience, "external_id"))
    assert rows == [['\'=HYPERLINK("http://x")'], ["ERP-1"], ["'@SUM(A1)"]]


def test_export_by_sc_id_lists_every_member_in_id_order_across_batches(monkeypatch):
    from tagbase.audiences import queries

    original = queries.iter_member_identifiers
    monkeypatch.setattr(queries, "iter_member_identifiers", lambda a, t: original(a, t, batch=2))
    ids = make_customers(5)
    audience = new_audience("Ids", ids)
    rows = rows_of(export(client_for(Role.ANALYST), audience, "sc_id"))
    assert rows == [[str(i)] for i in ids]


def test_export_by_card_lists_the_active_cards_of_members():
    first, second = make_customer(), make_customer()
    Card.objects.create(number="A100", customer=first, status=CardStatus.ACTIVE)
    Card.objects.create(number="A101", customer=first, status=CardStatus.BLOCKED)
    Card.objects.create(number="B200", customer=second, status=CardStatus.ACTIVE)
    Card.objects.create(number="C300", customer=make_customer(), status=CardStatus.ACTIVE)
    audience = new_audience("Cards", [first.pk, second.pk])
    rows = rows_of(export(client_for(Role.MARKETER), audience, "card"))
    assert rows == [["A100"], ["B200"]]


@pytest.mark.parametrize("id_type", ["phone", "email", "external_id", "card"])
def test_analysts_may_not_export_personal_data(id_type):
    audience = new_audience("Private", [make_customer(phone="+79123456789").pk])
    assert export(client_for(Role.ANALYST), audience, id_type).status_code == 403


def test_an_unknown_export_type_redirects_with_a_message():
    audience = new_audience("Unknown type")
    response = export(client_for(Role.MARKETER), audience, "passport")
    assert response.status_code == 302


# --- Splitting a paste ------------------------------------------------------------------------


def test_a_paste_splits_on_lines_semicolons_commas_and_for_ids_on_spaces():
    from tagbase.audiences.forms import split_identifiers
    from tagbase.lib.identifiers import IdType

    assert split_identifiers("1\r\n2;3, 4 5\t6\n\n;", IdType.SC_ID) == [
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
    ]
    assert split_identifiers("+7 912 345-67-89\n8 912 000 00 00", IdType.PHONE) == [
        "+7 912 345-67-89",
        "8 912 000 00 00",
    ]
    assert split_identifiers("a@x.ru b@x.ru", IdType.EMAIL) == ["a@x.ru", "b@x.ru"]
    assert split_identifiers("1 234 567", IdType.SC_ID) == ["1 234 567"]
