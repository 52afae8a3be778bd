"""``tagbase demo``: the shapes of the generated data, determinism, and ``--reset``."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count

from tagbase.audiences import services
from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.customers.models import Card, Customer, CustomerStats, Event, Receipt
from tagbase.testing import make_customer, system_actor
from tagbase.web.demo import AUDIENCES, CAMPAIGN_AUDIENCES, DEMO_MARKER

pytestmark = pytest.mark.django_db
N = 2000


def demo(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("demo", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def members(name: str) -> set[int]:
    audience = Audience.objects.get(name=name)
    return set(Membership.objects.filter(audience=audience).values_list("customer_id", flat=True))


def names() -> list[tuple[str, str, str, str]]:
    rows = Customer.objects.order_by("external_id")
    return list(rows.values_list("external_id", "last_name", "first_name", "middle_name"))


@pytest.fixture
def loaded():
    out, err = demo("--customers", str(N))
    return out, err


def test_demo_loads_customers_with_their_receipts_cards_and_events(loaded):
    out, err = loaded
    assert out.startswith(f"Loaded {N:,} customers, ")
    assert err == ""  # the progress bar is drawn only on a terminal
    assert Customer.objects.count() == N
    assert Customer.objects.filter(external_id__startswith="DEMO-").count() == N
    per_customer = Counter(dict(Receipt.objects.values_list("customer").annotate(n=Count("id"))))
    counts = [per_customer.get(c, 0) for c in Customer.objects.values_list("sc_id", flat=True)]
    assert max(counts) <= 6 * 20 and 0 in counts
    assert 5 <= sum(counts) / N <= 7  # mean asked: 6
    assert Card.objects.values("customer").distinct().count() / N == pytest.approx(0.8, abs=0.05)
    assert set(Event.objects.values_list("name", flat=True)) == {
        "app_login", "visit", "push_open", "email_open", "coupon_activated",
    }  # fmt: skip


def test_demo_names_are_about_70_percent_russian_with_matching_genders(loaded):
    russian = Customer.objects.exclude(middle_name="")
    assert russian.count() / N == pytest.approx(0.7, abs=0.05)
    women = russian.filter(gender="f")
    assert all(m.endswith("на") for m in women.values_list("middle_name", flat=True))
    men = russian.filter(gender="m")
    assert all(m.endswith("ич") for m in men.values_list("middle_name", flat=True))


def test_demo_contacts_show_normalisation_warnings_and_ambiguity(loaded):
    customers = Customer.objects.all()
    invalid_phones = customers.exclude(phone_raw="").filter(phone__isnull=True).count()
    missing_phones = customers.filter(phone_raw="").count()
    assert 0.01 < invalid_phones / N < 0.06 and 0.02 < missing_phones / N < 0.08
    assert customers.filter(phone_raw__startswith="8 ").exists()
    assert customers.filter(phone_raw__startswith="+7 (").exists()
    shared = customers.exclude(phone=None).values("phone").annotate(n=Count("sc_id"))
    assert shared.filter(n__gt=1).exists()
    invalid_emails = customers.exclude(email_raw="").filter(email__isnull=True).count()
    assert 0.01 < invalid_emails / N < 0.06
    mixed_case = [e for e in customers.values_list("email_raw", flat=True) if e != e.lower()]
    assert mixed_case
    born = customers.exclude(birth_date=None).values_list("birth_date__year", flat=True)
    assert min(born) >= 1950 and max(born) <= 2006


def test_demo_stats_rows_exist_for_exactly_the_customers_with_receipts(loaded):
    buyers = set(Receipt.objects.values_list("customer_id", flat=True))
    assert set(CustomerStats.objects.values_list("customer_id", flat=True)) == buyers
    stats = CustomerStats.objects.order_by("customer_id").first()
    assert stats.receipt_count == Receipt.objects.filter(customer_id=stats.customer_id).count()


def test_demo_audiences_are_built_through_the_write_path_with_some_history(loaded):
    audiences = Audience.objects.filter(
        description__endswith=DEMO_MARKER, name__in=[a.name for a in AUDIENCES]
    )
    assert audiences.count() == len(AUDIENCES) >= 20
    sizes = sorted(audiences.values_list("member_count", flat=True))
    assert sizes[0] == 0 and sizes[-1] > N // 4  # from empty to large
    ops = Operation.objects.filter(audience__in=audiences)
    assert set(ops.values_list("kind", flat=True)) == {"cli", "undo"}
    assert ops.filter(kind="cli").exclude(source_ref="demo").count() == 0
    assert ops.filter(action="remove", kind="cli").count() == 3
    assert ops.filter(kind="undo").count() == 1
    for audience in audiences:
        assert audience.member_count == len(members(audience.name))


def test_demo_saves_segments_with_their_metrics(loaded):
    from tagbase.segments.models import Segment

    segments = Segment.objects.filter(description__endswith=DEMO_MARKER)
    assert segments.count() == 5
    moscow = segments.get(name="Активные москвичи")
    assert moscow.metrics_at is not None and moscow.customers is not None
    assert 0 < moscow.customers <= Customer.objects.filter(city="Москва").count()


def test_demo_campaign_has_a_month_of_history_run_by_the_engine(loaded):
    from tagbase.campaigns import queries
    from tagbase.campaigns.models import Campaign, CampaignStatus, Entry, Passage

    welcome = Campaign.objects.get(name="Welcome VIPs")
    assert welcome.status == CampaignStatus.ACTIVE
    days = queries.entries_per_day(welcome.pk, days=31)
    assert sum(1 for _, n in days if n) >= 25  # customers entered on most of the last 30 days
    entered = set(Entry.objects.filter(campaign=welcome).values_list("customer_id", flat=True))
    stats = queries.node_stats(welcome.pk)
    assert stats["receipt"]["in"] == len(entered) > 0
    positive = stats["big_spender"]["out"]["positive"]
    assert positive + stats["big_spender"]["out"]["negative"] == len(entered)
    # Everyone the filter let through is in the audience and passed every step once.
    assert members("Welcome VIPs: приветствие") == set(
        Passage.objects.filter(step__node="big_spender", port="positive").values_list(
            "customer_id", flat=True
        )
    )
    assert len(members("Welcome VIPs: приветствие")) == positive
    # Those who waited a week and whose week is over are in the other audience.
    assert len(members("Welcome VIPs: ещё не VIP")) == stats.get("not_yet", {}).get("in", 0)
    assert Campaign.objects.get(name="Win back leaving buyers").status == "inactive"


def test_demo_selections_equal_an_independent_oracle(loaded):
    moscow = set(Customer.objects.filter(city="Москва").values_list("sc_id", flat=True))
    spb = set(Customer.objects.filter(city="Санкт-Петербург").values_list("sc_id", flat=True))
    assert members("Москва") == moscow
    assert members("Санкт-Петербург") == spb  # the mistaken add of Moscow was undone
    never_bought = set(Customer.objects.filter(stats=None).values_list("sc_id", flat=True))
    assert members("Без покупок") == never_bought


def test_demo_is_deterministic_for_a_seed():
    demo("--customers", "300", "--seed", "7")
    first = names()
    first_members = {a.name: a.member_count for a in Audience.objects.all()}
    demo("--customers", "300", "--seed", "7", "--reset")
    assert names() == first
    assert {a.name: a.member_count for a in Audience.objects.all()} == first_members
    demo("--customers", "300", "--seed", "8", "--reset")
    assert names() != first


def test_demo_refuses_to_load_twice_without_reset(loaded):
    with pytest.raises(CommandError, match="Demo data is already loaded; use --reset"):
        demo("--customers", "10")


def test_demo_reset_removes_only_demo_data_through_the_write_path(loaded):
    mine = make_customer(external_id="REAL-1")
    a_demo_customer = Customer.objects.filter(external_id__startswith="DEMO-").first()
    actor = system_actor()
    keep = services.create_audience("Real buyers", actor=actor)
    services.add_customers_to_audience(
        keep, [mine.pk, a_demo_customer.pk], actor=actor, kind=OperationKind.API
    )
    out, _ = demo("--reset", "--customers", "0")
    made_by_campaigns = len(CAMPAIGN_AUDIENCES)
    assert out.strip() == (
        f"Deleted {N:,} demo customers and {len(AUDIENCES) + made_by_campaigns} audiences."
    )
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["REAL-1"]
    assert list(Audience.objects.values_list("name", flat=True)) == ["Real buyers"]
    assert members("Real buyers") == {mine.pk}
    from tagbase.segments.models import Segment

    assert not Segment.objects.exists()
    from tagbase.campaigns.models import Campaign, Entry, Passage, Token

    assert not Campaign.objects.exists()
    assert not (Entry.objects.exists() or Token.objects.exists() or Passage.objects.exists())
    removal = Operation.objects.get(audience=keep, action="remove")
    assert (removal.removed, removal.source_ref) == (1, "demo --reset")
    assert not Receipt.objects.exists() and not CustomerStats.objects.exists()


def test_demo_refuses_when_a_real_audience_has_a_demo_name_and_writes_nothing():
    services.create_audience("vip", actor=system_actor())
    with pytest.raises(CommandError, match="Audience 'VIP' exists and is not demo data"):
        demo("--customers", "10")
    assert not Customer.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--customers", "-1"], "must be between 0 and 10,000,000"),
        (["--customers", "many"], "expected a whole number"),
        (["--receipts-per-customer", "101"], "must be between 0 and 100"),
    ],
)
def test_demo_rejects_bad_options(args, message):
    with pytest.raises(CommandError, match=message):
        demo(*args)
