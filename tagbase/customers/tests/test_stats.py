"""Receipts and events loading, and receipt metrics exact to the cent on both engines."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from tagbase.customers import services
from tagbase.customers.models import CustomerStats, Event, Receipt
from tagbase.customers.reports import FileRejected
from tagbase.customers.services import (
    load_receipts,
    load_receipts_csv,
    record_events,
    refresh_customer_stats,
)
from tagbase.testing import make_customer, make_customers, system_actor

pytestmark = pytest.mark.django_db
ACTOR = system_actor()
CENT = Decimal("0.01")
UTC = UTC


def codes(report) -> list[tuple[int, str, str]]:
    return [(e.line, e.field, e.code) for e in report.errors]


def oracle(rows: list[dict]) -> dict[int, tuple]:
    """Metrics per customer computed in plain Python from the rows as loaded (last row of a
    (customer, number) wins), independently of the SQL."""
    receipts: dict[tuple[int, str], dict] = {}
    for row in rows:
        receipts[(int(row["sc_id"]), row["number"])] = row
    per: dict[int, list[dict]] = defaultdict(list)
    for (customer, _), row in receipts.items():
        per[customer].append(row)
    out = {}
    for customer, items in per.items():
        amounts = [Decimal(r["amount"]) for r in items]
        counts = [int(r["items"]) for r in items]
        dates = [datetime.fromisoformat(r["date"]) for r in items]
        n = len(items)
        out[customer] = (
            n,
            sum(amounts, Decimal(0)),
            (sum(amounts, Decimal(0)) / n).quantize(CENT, ROUND_HALF_UP),
            (Decimal(sum(counts)) / n).quantize(CENT, ROUND_HALF_UP),
            min(dates),
            max(dates),
        )
    return out


def stored() -> dict[int, tuple]:
    return {
        s.customer_id: (
            s.receipt_count,
            s.total_amount,
            s.average_amount,
            s.average_items,
            s.first_receipt_at,
            s.last_receipt_at,
        )
        for s in CustomerStats.objects.all()
    }


def receipt(customer: int, number: str, amount: str, items: int = 1, day: int = 1) -> dict:
    when = datetime(2024, 1, 1, 12, tzinfo=UTC) + timedelta(days=day)
    return {
        "sc_id": str(customer),
        "number": number,
        "date": when.isoformat(),
        "amount": amount,
        "items": str(items),
    }


def test_loading_receipts_creates_them_and_the_customers_metrics():
    (a,) = make_customers(1)
    rows = [receipt(a, "R1", "100.10", 2, day=1), receipt(a, "R2", "0.20", 1, day=5)]
    report = load_receipts(rows, actor=ACTOR)
    assert report.as_dict() == {"rows": 2, "created": 2, "updated": 0, "failed": 0, "errors": []}
    assert stored() == oracle(rows)
    assert stored()[a][:4] == (2, Decimal("100.30"), Decimal("50.15"), Decimal("1.50"))


def test_metrics_are_exact_to_the_cent_against_a_python_oracle():
    rng = random.Random(20241129)
    ids = make_customers(40)
    rows = []
    for n in range(3000):
        cents = rng.choice([1, 2, 3, 10, 20, 30, 99, 12345, rng.randint(0, 99_999_999_999)])
        rows.append(
            receipt(
                rng.choice(ids),
                f"R{rng.randint(0, 2500)}",  # some numbers repeat: updates, last wins
                f"{Decimal(cents) / 100:.2f}",
                rng.randint(0, 7),
                day=rng.randint(0, 700),
            )
        )
    report = load_receipts(rows, actor=ACTOR)
    assert report.failed == 0 and report.rows == 3000
    assert report.created + report.updated == 3000
    assert stored() == oracle(rows)


def test_averages_round_half_up_like_decimal_on_both_engines():
    a, b, c = make_customers(3)
    rows = [receipt(a, "1", "0.01"), receipt(a, "2", "0.02")]  # 0.015 -> 0.02
    rows += [receipt(b, str(i), "0.10", items=2 if i == 0 else 1) for i in range(200)]  # 1.005
    rows += [receipt(c, "x", "0.10"), receipt(c, "y", "0.20"), receipt(c, "z", "0.10")]
    load_receipts(rows, actor=ACTOR)
    got = stored()
    assert got[a][2] == Decimal("0.02")
    assert got[b][3] == Decimal("1.01")
    assert got[c][1:3] == (Decimal("0.40"), Decimal("0.13"))
    assert got == oracle(rows)


def test_the_largest_amounts_add_up_exactly():
    (a,) = make_customers(1)
    rows = [receipt(a, str(i), "999999999999.99") for i in range(3)]
    load_receipts(rows, actor=ACTOR)
    assert stored()[a][1:3] == (Decimal("2999999999999.97"), Decimal("999999999999.99"))


def test_loading_the_same_receipts_again_updates_them_and_keeps_the_metrics():
    (a,) = make_customers(1)
    rows = [receipt(a, "R1", "10.00"), receipt(a, "R2", "20.00")]
    load_receipts(rows, actor=ACTOR)
    again = load_receipts([*rows[:1], receipt(a, "R2", "25.50", 3)], actor=ACTOR)
    assert (again.created, again.updated) == (0, 2)
    assert Receipt.objects.count() == 2
    assert stored()[a][:3] == (2, Decimal("35.50"), Decimal("17.75"))


def test_receipts_name_customers_by_external_id_or_sc_id():
    a = make_customer(external_id="EXT-1")
    b = make_customer()
    rows = [
        {"external_id": "EXT-1", "number": "1", "date": "2024-05-01", "amount": "5"},
        {"sc_id": str(b.pk), "number": "1", "date": "2024-05-01", "amount": "7,5"},
    ]
    report = load_receipts(rows, actor=ACTOR)
    assert report.created == 2
    assert Receipt.objects.get(customer=a).amount == Decimal("5.00")
    assert Receipt.objects.get(customer=b).amount == Decimal("7.50")
    assert Receipt.objects.get(customer=b).items == 1


def test_bad_receipt_rows_are_row_errors_and_the_rest_load():
    (a,) = make_customers(1)
    rows = [
        {"sc_id": "999999999", "number": "1", "date": "2024-05-01", "amount": "1"},
        {"sc_id": str(a), "number": "2", "date": "01.05.2024", "amount": "1"},
        {"sc_id": str(a), "number": "3", "date": "2024-05-01", "amount": "1 000"},
        {"sc_id": str(a), "number": "4", "date": "2024-05-01", "amount": "-5"},
        {"sc_id": str(a), "number": "5", "date": "2024-05-01", "amount": "1.005"},
        {"sc_id": str(a), "number": "6", "date": "2024-05-01", "amount": "1", "items": "1.5"},
        {"sc_id": str(a), "number": "", "date": "", "amount": ""},
        {"sc_id": "0012", "number": "8", "date": "2024-05-01", "amount": "1"},
        {"sc_id": str(a), "number": "9", "date": "2024-05-01T10:00:00Z", "amount": "3.5"},
    ]
    report = load_receipts(rows, actor=ACTOR)
    assert codes(report) == [
        (1, "sc_id", "customer_not_found"),
        (2, "date", "datetime_invalid"),
        (3, "amount", "amount_invalid"),
        (4, "amount", "amount_invalid"),
        (5, "amount", "amount_invalid"),
        (6, "items", "count_invalid"),
        (7, "number", "required"),
        (7, "date", "required"),
        (7, "amount", "required"),
        (8, "sc_id", "leading_zero"),
    ]
    assert (report.rows, report.created, report.failed) == (9, 1, 8)
    assert stored()[a][:2] == (1, Decimal("3.50"))


def test_a_row_naming_the_customer_twice_or_not_at_all_is_refused():
    a = make_customer(external_id="E1")
    rows = [
        {
            "sc_id": str(a.pk),
            "external_id": "E1",
            "number": "1",
            "date": "2024-05-01",
            "amount": "1",
        },
        {"sc_id": "", "external_id": " ", "number": "2", "date": "2024-05-01", "amount": "1"},
    ]
    report = load_receipts(rows, actor=ACTOR)
    assert [e.code for e in report.errors] == ["customer_ref_both", "customer_missing"]


def test_receipt_inputs_missing_required_columns_are_refused():
    with pytest.raises(FileRejected) as exc:
        load_receipts([{"sc_id": "1", "number": "1", "date": "2024-01-01"}], actor=ACTOR)
    assert (exc.value.code, "amount" in exc.value.message) == ("missing_columns", True)
    with pytest.raises(FileRejected) as exc:
        load_receipts([{"number": "1", "date": "2024-01-01", "amount": "1"}], actor=ACTOR)
    assert exc.value.code == "missing_columns"


def test_a_receipts_csv_with_semicolons_and_decimal_commas_loads(tmp_path):
    a = make_customer(external_id="E1")
    path = tmp_path / "receipts.csv"
    path.write_text(
        "\ufeffexternal_id;number;date;amount;items;store\n"
        "E1;A-1;2024-03-01 10:15;1 234,50;2;Main\n"
        "E1;A-2;2024-03-02 10:15;1234,50;2;Main\n"
        "NOPE;A-3;2024-03-02;1;1;Main\n",
        encoding="utf-8",
    )
    report = load_receipts_csv(path, actor=ACTOR)
    assert codes(report) == [
        (2, "amount", "amount_invalid"),
        (4, "external_id", "customer_not_found"),
    ]
    assert Receipt.objects.get(customer=a).store == "Main"
    assert stored()[a.pk][:2] == (1, Decimal("1234.50"))


def test_metrics_are_refreshed_batch_by_batch_for_a_customer_spread_over_batches(monkeypatch):
    monkeypatch.setattr(services, "BATCH_SIZE", 7)
    a, b = make_customers(2)
    rows = [receipt(a if i % 3 else b, f"N{i}", f"{i}.{i % 100:02d}", i % 4, i) for i in range(50)]
    load_receipts(rows, actor=ACTOR)
    assert stored() == oracle(rows)


def test_refresh_recomputes_drifted_metrics_and_drops_those_without_receipts():
    a, b, c = make_customers(3)
    load_receipts([receipt(a, "1", "10.00"), receipt(b, "1", "20.00")], actor=ACTOR)
    CustomerStats.objects.filter(customer_id=a).update(receipt_count=99, total_amount=1)
    CustomerStats.objects.create(customer_id=c, receipt_count=5)
    Receipt.objects.filter(customer_id=b).delete()
    assert refresh_customer_stats([a, b, c]) == 1
    assert set(stored()) == {a}
    assert stored()[a][:2] == (1, Decimal("10.00"))


def test_refreshing_everyone_matches_the_oracle():
    ids = make_customers(5)
    rows = [receipt(ids[i % 5], str(i), f"{i}.33", i % 3, i) for i in range(40)]
    load_receipts(rows, actor=ACTOR)
    CustomerStats.objects.all().delete()
    assert refresh_customer_stats() == 5
    assert stored() == oracle(rows)


def test_refreshing_many_ids_takes_a_bounded_number_of_queries(django_assert_max_num_queries):
    ids = make_customers(3)
    # Per 5,000 ids: the upsert, the clean-up, and (PostgreSQL) a SET LOCAL; plus savepoints.
    with django_assert_max_num_queries(3 * 3 + 2):
        refresh_customer_stats([*ids, *range(10**9, 10**9 + 12_000)])


# --- events ----------------------------------------------------------------------------------


def test_events_are_appended_with_their_payload_and_time():
    a = make_customer(external_id="E1")
    report = record_events(
        [
            {"external_id": "E1", "name": "app_login", "occurred_at": "2024-05-01T10:00:00Z",
             "payload": '{"device": "ios"}'},
            {"sc_id": str(a.pk), "name": "visit", "payload": {"store": 7}},
            {"external_id": "E2", "name": "visit"},
            {"external_id": "E1", "name": "", "payload": "[1, 2]"},
        ],
        actor=ACTOR,
    )  # fmt: skip
    assert codes(report) == [
        (3, "external_id", "customer_not_found"),
        (4, "name", "required"),
        (4, "payload", "json_invalid"),
    ]
    login, visit = Event.objects.order_by("id")
    assert (login.name, login.payload) == ("app_login", {"device": "ios"})
    assert login.occurred_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert (visit.name, visit.payload, visit.occurred_at is not None) == (
        "visit",
        {"store": 7},
        True,
    )
    again = record_events([{"external_id": "E1", "name": "visit"}], actor=ACTOR)
    assert again.created == 1 and Event.objects.count() == 3


def test_api_rows_may_carry_numbers_as_json_numbers():
    a = make_customer(external_id="42")
    report = load_receipts(
        [
            {"external_id": 42, "number": 7, "date": "2024-01-01", "amount": 12.5, "items": 3},
            {"external_id": 42, "number": 8, "date": "2024-01-01", "amount": 0.1 + 0.2},
            {"external_id": 42, "number": 9, "date": "2024-01-01", "amount": True},
        ],
        actor=ACTOR,
    )
    assert codes(report) == [(2, "amount", "amount_invalid"), (3, "amount", "type_invalid")]
    r = Receipt.objects.get(customer=a)
    assert (r.number, r.amount, r.items) == ("7", Decimal("12.50"), 3)
