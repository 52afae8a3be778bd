"""``tagbase customers load`` and ``tagbase receipts load``: summaries, JSON and exit codes."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tagbase.customers.models import Customer, CustomerStats
from tagbase.testing import make_customer

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def csv_file(tmp_path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_customers_load_prints_a_summary_with_the_failed_rows(tmp_path, monkeypatch):
    redirected = StringIO()  # stderr sent to a file: no progress bar
    monkeypatch.setattr("sys.stderr", redirected)
    path = csv_file(tmp_path, "external_id;gender\nE1;m\nE2;x\n")
    out, err = run("customers", "load", path)
    assert "2 rows read, 1 created, 0 updated, 1 failed" in out
    assert "line 3, gender:" in out and "[gender_invalid]" in out
    assert err == "" and redirected.getvalue() == ""
    assert Customer.objects.filter(external_id="E1").exists()


def test_customers_load_json_reports_the_counts_and_errors(tmp_path):
    path = csv_file(tmp_path, "external_id,city\nE1,Omsk\nE1,Tver\nE2,Perm,extra\n")
    out, _ = run("customers", "load", path, "--json")
    assert json.loads(out) == {
        "rows": 3,
        "created": 1,
        "updated": 1,
        "failed": 1,
        "errors": [
            {
                "line": 4,
                "field": "row",
                "code": "column_count",
                "message": "The row has 3 fields; the header has 2.",
            }
        ],
    }


def test_a_rejected_file_fails_the_command_and_json_says_why(tmp_path):
    path = csv_file(tmp_path, "external_id,shoe_size\nE1,42\n")
    out = StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("customers", "load", path, "--json", stdout=out)
    assert "unknown_columns" in str(exc.value) and "shoe_size" in str(exc.value)
    assert json.loads(out.getvalue())["rejected"]["code"] == "unknown_columns"
    assert Customer.objects.count() == 0


def test_a_missing_file_fails_the_command(tmp_path):
    with pytest.raises(CommandError, match="file_not_found"):
        run("customers", "load", str(tmp_path / "missing.csv"))


def test_a_file_that_is_not_utf8_fails_the_command_naming_the_line(tmp_path):
    path = tmp_path / "cp1251.csv"
    path.write_bytes("external_id,city\nE1,Омск\n".encode("cp1251"))
    with pytest.raises(CommandError, match=r"\[encoding\] \(line 2\)"):
        run("customers", "load", str(path))


def test_the_command_needs_a_subcommand():
    with pytest.raises(CommandError):
        run("customers")


def test_receipts_load_writes_receipts_and_metrics(tmp_path):
    c = make_customer(external_id="E1")
    path = csv_file(
        tmp_path,
        "external_id\tnumber\tdate\tamount\titems\n"
        "E1\t1\t2024-01-01\t10.05\t1\n"
        "E1\t2\t2024-01-02\t0.10\t2\n"
        "E9\t3\t2024-01-02\t1\t1\n",
    )
    out, _ = run("receipts", "load", path, "--json")
    report = json.loads(out)
    assert (report["created"], report["failed"]) == (2, 1)
    assert report["errors"][0]["code"] == "customer_not_found"
    stats = CustomerStats.objects.get(customer=c)
    assert (stats.receipt_count, stats.total_amount) == (2, Decimal("10.15"))


def test_receipts_load_rejects_a_file_without_required_columns(tmp_path):
    path = csv_file(tmp_path, "external_id,number,date\nE1,1,2024-01-01\n")
    with pytest.raises(CommandError, match="missing_columns"):
        run("receipts", "load", path)


def test_receipts_refresh_stats_recomputes_every_customer(tmp_path):
    c = make_customer(external_id="E1")
    path = csv_file(tmp_path, "external_id,number,date,amount\nE1,1,2024-01-01,3.30\n")
    run("receipts", "load", path)
    CustomerStats.objects.all().delete()
    out, _ = run("receipts", "refresh-stats")
    assert "recomputed for 1 customer." in out
    assert CustomerStats.objects.get(customer=c).total_amount == Decimal("3.30")


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_a_progress_bar_on_stderr(tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    lines = ["external_id"] + [f"E{i}" for i in range(20_000)]
    path = csv_file(tmp_path, "\n".join(lines) + "\n", name="big.csv")
    out, _ = run("customers", "load", path)
    assert "20,000 rows read, 20,000 created" in out
    drawn = terminal.getvalue()
    assert drawn.startswith("\rbig.csv") and "100%" in drawn and drawn.endswith("\n")
