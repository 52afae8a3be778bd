"""The audience benchmarks' data (``bench/pages_bench.py``, ``bench/api_load.py``): customers,
audiences, the operations that set them and their memberships, generated set-based.

The make-up is deterministic for (customers, audiences, memberships, profile audiences):

- customers 1..N as the import benchmark makes them (``datagen.customers_sql``); the first
  ``RESERVED`` are the profile benchmark's: customer 1 is in ``profile_audiences`` audiences
  (200), customer 2 in ``FEW`` (10), customer 3 in none. They get a name, contacts, a card, 25
  receipts and 25 events each, so every section of their profile has rows to show (their
  receipt metrics are computed by Tagbase itself afterwards);
- A audiences with Zipf-like sizes (weight 1 / rank^0.8, ranks shuffled so that size, id and
  name are unrelated): at 1M customers, 1,000 audiences and 10M memberships, from about 645,000
  members down to about 2,600. Names are ``<topic> <id>`` (``VIP 0041``), the ten topics in
  turn, so a search for a topic finds a tenth of them (one at 10 audiences);
- audience ``a`` holds the customers ``RESERVED + 1 + (start_a + k * step_a) mod (N - RESERVED)``
  for k < size_a: distinct (step_a is coprime with the modulus) and scattered over the whole
  base; plus the reserved customers' memberships. In total exactly ``memberships`` rows;
- one succeeded ``import`` operation per non-empty audience set every one of its memberships,
  at a time in the 400 days before the anchor; ``member_count``, ``last_set_at`` and the
  operation's ``requested``/``added`` agree with the rows, as the one write path leaves them
  (``check`` proves it before any figure is taken).

The plan (a few numbers per audience) is computed here and staged in a temporary table; the
rows are generated inside the database from it: a recursive CTE on SQLite, ``generate_series``
on PostgreSQL, one ``INSERT … SELECT … ORDER BY`` each. The customer index of
``audiences_membership`` is dropped for the bulk insert and re-created from its own DDL
afterwards (one sort instead of 10M random inserts), and the foreign keys are not checked row by
row (SQLite ``foreign_keys=OFF``, PostgreSQL ``session_replication_role = replica``):
``check`` verifies every reference in one pass instead.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import datagen
from tagbase.lib.names import audience_name_key

RESERVED = 3
PROFILE_CUSTOMER, FEW_CUSTOMER, NO_AUDIENCE_CUSTOMER = 1, 2, 3
FEW = 10
RECENT_ROWS = 25  # receipts and events per reserved customer (the profile shows the latest 20)
ZIPF = 0.8
SEED = 20261207
TOPICS = (
    "VIP",
    "Summer sale",
    "Churn risk",
    "Newsletter",
    "Loyal",
    "Lapsed",
    "Birthday",
    "App users",
    "Kazan stores",
    "Coupon fans",
)
MEMBERSHIP_INDEX = "membership_customer_idx"


@dataclass(frozen=True)
class AudienceSpec:
    """What to generate. ``memberships`` counts every row, the reserved customers' included."""

    customers: int
    audiences: int
    memberships: int
    profile_audiences: int = 200

    @property
    def pool(self) -> int:
        """Customers the generated memberships are drawn from (all but the reserved ones)."""
        return self.customers - RESERVED

    @property
    def few(self) -> int:
        return min(FEW, self.audiences)

    def validate(self) -> None:
        if self.customers < RESERVED + 10:
            raise ValueError(f"--customers must be at least {RESERVED + 10} (got {self.customers})")
        if self.audiences < 1:
            raise ValueError(f"--audiences must be at least 1 (got {self.audiences})")
        if not 0 <= self.profile_audiences <= self.audiences:
            raise ValueError(
                f"--profile-audiences {self.profile_audiences} must be between 0 and the "
                f"number of audiences ({self.audiences})"
            )
        if self.memberships < self.profile_audiences + self.few:
            raise ValueError(
                f"--memberships {self.memberships:,} is less than the profile customers' "
                f"{self.profile_audiences + self.few} memberships"
            )

    def as_dict(self) -> dict[str, int]:
        return {
            "customers": self.customers,
            "audiences": self.audiences,
            "memberships": self.memberships,
            "profile_audiences": self.profile_audiences,
            "few_audiences": self.few,
        }


@dataclass(frozen=True)
class PlannedAudience:
    id: int
    name: str
    size: int  # generated members (reserved customers not included)
    start: int
    step: int
    in_profile: bool  # customer 1 is a member
    in_few: bool  # customer 2 is a member
    set_at: datetime

    @property
    def members(self) -> int:
        return self.size + self.in_profile + self.in_few

    def member(self, k: int, pool: int) -> int:
        """The customer id of generated member ``k`` (0 <= k < size)."""
        return RESERVED + 1 + (self.start + k * self.step) % pool


def spread(count: int, among: int) -> set[int]:
    """``count`` audience ids spread evenly over 1..among."""
    return {1 + (i * among) // count for i in range(count)}


def plan(spec: AudienceSpec, anchor: datetime) -> list[PlannedAudience]:
    """Every audience's name, size, member formula and the moment its operation set it."""
    spec.validate()
    rng = random.Random(SEED)
    ranks = list(range(1, spec.audiences + 1))
    rng.shuffle(ranks)
    weights = [rank**-ZIPF for rank in ranks]
    profile, few = spread(spec.profile_audiences, spec.audiences), spread(spec.few, spec.audiences)
    generated = spec.memberships - len(profile) - len(few)
    total = sum(weights)
    sizes = [int(generated * w / total) for w in weights]
    for i in range(generated - sum(sizes)):  # the rounding remainder, one each
        sizes[i % spec.audiences] += 1
    if max(sizes) > spec.pool:
        raise ValueError(
            f"{spec.memberships:,} memberships over {spec.audiences:,} audiences make the largest "
            f"audience {max(sizes):,} customers, more than the {spec.pool:,} there are: raise "
            "--customers or lower --memberships"
        )
    out = []
    for i, size in enumerate(sizes):
        audience_id = i + 1
        step = rng.randrange(max(1, spec.pool // 3), spec.pool)
        while math.gcd(step, spec.pool) != 1:
            step += 1
        set_at = anchor - timedelta(days=rng.randrange(400), seconds=rng.randrange(86400))
        out.append(
            PlannedAudience(
                id=audience_id,
                name=f"{TOPICS[i % len(TOPICS)]} {audience_id:04d}",
                size=size,
                start=rng.randrange(spec.pool),
                step=step % spec.pool or 1,
                in_profile=audience_id in profile,
                in_few=audience_id in few,
                set_at=set_at.replace(microsecond=0),
            )
        )
    return out


# --- SQL ------------------------------------------------------------------------------------


class Dialect:
    """What differs between the engines: placeholders, timestamps, series, the FK switch."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.mark = "?" if engine == "sqlite" else "%s"

    def moment(self, value: datetime) -> Any:
        if self.engine == "sqlite":  # Django's text form on SQLite: naive UTC
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
        return value

    def json_empty(self) -> str:
        return "'{}'" if self.engine == "sqlite" else "'{}'::jsonb"


def _plan_rows(planned: list[PlannedAudience], d: Dialect) -> list[tuple[Any, ...]]:
    return [
        (
            a.id,
            a.name,
            audience_name_key(a.name),
            a.size,
            a.start,
            a.step,
            int(a.in_profile),
            int(a.in_few),
            a.members,
            d.moment(a.set_at),
        )
        for a in planned
    ]


PLAN_COLUMNS = "a, name, name_key, size, start, step, in_profile, in_few, members, set_at"


def _stage_plan(cur: Any, planned: list[PlannedAudience], d: Dialect) -> None:
    types = (
        "a bigint, name text, name_key text, size bigint, start bigint, step bigint, "
        "in_profile int, in_few int, members bigint, set_at "
        + ("text" if d.engine == "sqlite" else "timestamptz")
    )
    cur.execute(f"CREATE TEMP TABLE bench_plan ({types})")
    marks = ", ".join([d.mark] * 10)
    cur.executemany(
        f"INSERT INTO bench_plan ({PLAN_COLUMNS}) VALUES ({marks})", _plan_rows(planned, d)
    )


def _audiences_sql(d: Dialect) -> list[str]:
    """Audiences and their one operation each, from the staged plan (``:now`` = the anchor)."""
    m = d.mark
    return [
        "INSERT INTO audiences_audience (id, name, name_key, description, member_count, "
        "last_set_at, created_at, updated_at, created_by_id) "
        "SELECT a, name, name_key, '', members, CASE WHEN members > 0 THEN set_at END, "
        "set_at, set_at, NULL FROM bench_plan ORDER BY a",
        "INSERT INTO audiences_operation (id, audience_id, audience_name, kind, action, status, "
        "actor_label, source_ref, requested, added, already_member, removed, not_member, "
        "not_found, ambiguous, invalid, created_at, finished_at, error, actor_id, undoes_id) "
        f"SELECT a, a, name, 'import', 'add', 'succeeded', 'bench', {m}, members, members, "
        "0, 0, 0, 0, 0, 0, set_at, set_at, '', NULL, NULL FROM bench_plan WHERE members > 0 "
        "ORDER BY a",
    ]


def _memberships_sql(d: Dialect, spec: AudienceSpec) -> str:
    """Every generated membership, in key order, set by its audience's operation (same id)."""
    if d.engine == "sqlite":
        return (
            "WITH RECURSIVE m(a, k, size, start, step, set_at) AS ("
            "SELECT a, 0, size, start, step, set_at FROM bench_plan WHERE size > 0 "
            "UNION ALL SELECT a, k + 1, size, start, step, set_at FROM m WHERE k + 1 < size) "
            "INSERT INTO audiences_membership (audience_id, customer_id, set_at, operation_id) "
            f"SELECT a, {RESERVED + 1} + (start + k * step) % {spec.pool}, set_at, a FROM m "
            "ORDER BY 1, 2"
        )
    return (
        "INSERT INTO audiences_membership (audience_id, customer_id, set_at, operation_id) "
        f"SELECT p.a, {RESERVED + 1} + (p.start + k * p.step) % {spec.pool}, p.set_at, p.a "
        "FROM bench_plan p CROSS JOIN LATERAL generate_series(0, p.size - 1) AS k "
        "WHERE p.size > 0 ORDER BY 1, 2"
    )


def _reserved_memberships_sql() -> list[str]:
    return [
        "INSERT INTO audiences_membership (audience_id, customer_id, set_at, operation_id) "
        f"SELECT a, {customer}, set_at, a FROM bench_plan WHERE {flag} = 1 ORDER BY a"
        for customer, flag in ((PROFILE_CUSTOMER, "in_profile"), (FEW_CUSTOMER, "in_few"))
    ]


def _reserved_customers_sql(d: Dialect) -> list[tuple[str, dict[str, Any] | tuple[Any, ...]]]:
    """Names, contacts, a card, receipts and events for the reserved customers."""
    m = d.mark
    pct = "%" if d.engine == "sqlite" else "%%"  # the modulo operator beside placeholders
    ids = ", ".join(str(i) for i in range(1, RESERVED + 1))
    series = (
        f"WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < {RECENT_ROWS})"
        if d.engine == "sqlite"
        else f"WITH k(n) AS (SELECT generate_series(1, {RECENT_ROWS}))"
    )
    customers = f"(SELECT sc_id AS c FROM customers_customer WHERE sc_id IN ({ids})) r"
    if d.engine == "sqlite":
        day = "datetime(?, '-' || (k.n * 9 + r.c) || ' days')"
        amount = "(1000 + k.n * 137 + r.c) / 100.0"
    else:
        day = "(%s::timestamptz - (k.n * 9 + r.c) * interval '1 day')"
        amount = "(1000 + k.n * 137 + r.c)::numeric / 100"
    return [
        (
            "UPDATE customers_customer SET last_name = 'Benchmark', first_name = 'Customer', "
            f"middle_name = 'N' || sc_id, gender = 'f', city = 'Kazan', country = 'Russia', "
            f"phone_raw = '+7912000000' || sc_id, phone = '+7912000000' || sc_id, "
            f"email_raw = 'bench' || sc_id || '@example.com', "
            f"email = 'bench' || sc_id || '@example.com', "
            f"attributes = {m} WHERE sc_id IN ({ids})",
            ('{"tier": "gold", "newsletter": true}',),
        ),
        (
            "INSERT INTO customers_card (number, status, issued_at, customer_id) "
            f"SELECT 'BENCH' || r.c, 'active', {m}, r.c FROM {customers}",
            (d.moment(datetime(2024, 1, 1, tzinfo=UTC)),),
        ),
        (
            f"{series} INSERT INTO customers_receipt (customer_id, number, date, amount, items, "
            f"store) SELECT r.c, 'B' || r.c || '-' || k.n, {day}, {amount}, 1 + k.n {pct} 9, "
            f"'Store ' || (k.n {pct} 4) FROM {customers} CROSS JOIN k ORDER BY r.c, k.n",
            (d.moment(datetime.now(UTC).replace(microsecond=0)),),
        ),
        (
            f"{series} INSERT INTO customers_event (customer_id, name, occurred_at, payload) "
            f"SELECT r.c, 'app_login', {day}, {d.json_empty()} FROM {customers} CROSS JOIN k "
            "ORDER BY r.c, k.n",
            (d.moment(datetime.now(UTC).replace(microsecond=0)),),
        ),
    ]


def _index_ddl(cur: Any, engine: str) -> str:
    if engine == "sqlite":
        cur.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (MEMBERSHIP_INDEX,)
        )
    else:
        cur.execute("SELECT pg_get_indexdef(%s::regclass)", (MEMBERSHIP_INDEX,))
    row = cur.fetchone()
    if not row or not row[0]:
        raise ValueError(f"index {MEMBERSHIP_INDEX} not found: has the schema changed?")
    return str(row[0])


def fill(conn: Any, engine: str, spec: AudienceSpec, anchor: datetime) -> list[PlannedAudience]:
    """Generate everything into a migrated, empty database, in one transaction. ``conn`` is a
    sqlite3 connection in autocommit mode (``isolation_level=None``) or a psycopg connection
    with autocommit on."""
    d = Dialect(engine)
    planned = plan(spec, anchor)
    cur = conn.cursor()
    if engine == "sqlite":
        cur.execute("PRAGMA foreign_keys=OFF")  # checked in one pass by ``check``
        cur.execute("BEGIN")
        cur.execute(datagen.customers_sql("sqlite"), (spec.customers,))
    else:
        cur.execute("BEGIN")
        cur.execute("SET LOCAL session_replication_role = replica")  # no FK trigger per row
        cur.execute(datagen.customers_sql("postgres"), (spec.customers,))
    for sql, params in _reserved_customers_sql(d):
        cur.execute(sql, params)
    _stage_plan(cur, planned, d)
    audiences, operations = _audiences_sql(d)
    cur.execute(audiences)
    cur.execute(operations, ("bench",))
    ddl = _index_ddl(cur, engine)
    cur.execute(f"DROP INDEX {MEMBERSHIP_INDEX}")
    cur.execute(_memberships_sql(d, spec))
    for sql in _reserved_memberships_sql():
        cur.execute(sql)
    cur.execute(ddl)
    cur.execute("DROP TABLE bench_plan")
    if engine == "postgres":
        for table, column in (
            ("customers_customer", "sc_id"),
            ("audiences_audience", "id"),
            ("audiences_operation", "id"),
        ):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"(SELECT MAX({column}) FROM {table}))"
            )
    cur.execute("COMMIT")
    if engine == "sqlite":
        cur.execute("PRAGMA foreign_keys=ON")
    return planned


# --- The check ------------------------------------------------------------------------------


def check(cur: Any, engine: str, spec: AudienceSpec) -> tuple[dict[str, Any], list[str]]:
    """Row counts, and every way the data differs from what the one write path would leave
    (empty when right): stored counts and dates against the rows, operations against what they
    set, references, the reserved customers' memberships."""
    m = "?" if engine == "sqlite" else "%s"
    problems = []

    def one(sql: str, params: tuple[Any, ...] = ()) -> Any:
        cur.execute(sql, params)
        return cur.fetchone()[0]

    rows = {
        t: int(one(f"SELECT COUNT(*) FROM {t}"))
        for t in (
            "customers_customer",
            "audiences_audience",
            "audiences_operation",
            "audiences_membership",
        )
    }
    want = {
        "customers_customer": spec.customers,
        "audiences_audience": spec.audiences,
        "audiences_membership": spec.memberships,
    }
    problems += [
        f"{t} has {rows[t]:,} rows, expected {n:,}" for t, n in want.items() if rows[t] != n
    ]
    cur.execute(
        "SELECT a.id, a.member_count, a.last_set_at, COALESCE(n.rows, 0), n.latest, o.added, "
        "o.requested FROM audiences_audience a "
        "LEFT JOIN (SELECT audience_id, COUNT(*) AS rows, MAX(set_at) AS latest "
        "FROM audiences_membership GROUP BY audience_id) n ON n.audience_id = a.id "
        "LEFT JOIN audiences_operation o ON o.audience_id = a.id ORDER BY a.id"
    )
    for aid, stored, last, actual, latest, added, requested in cur.fetchall():
        if stored != actual:
            problems.append(f"audience {aid}: member_count {stored}, rows {actual}")
        if actual and (last != latest or added != actual or requested != actual):
            problems.append(
                f"audience {aid}: last_set_at {last} / latest {latest}, operation added "
                f"{added} requested {requested}, rows {actual}"
            )
    orphans = one(
        "SELECT COUNT(*) FROM audiences_membership m WHERE NOT EXISTS "
        "(SELECT 1 FROM customers_customer c WHERE c.sc_id = m.customer_id) OR NOT EXISTS "
        "(SELECT 1 FROM audiences_audience a WHERE a.id = m.audience_id) OR NOT EXISTS "
        "(SELECT 1 FROM audiences_operation o WHERE o.id = m.operation_id)"
    )
    if orphans:
        problems.append(f"{orphans} memberships name a missing customer, audience or operation")
    for customer, count in (
        (PROFILE_CUSTOMER, spec.profile_audiences),
        (FEW_CUSTOMER, spec.few),
        (NO_AUDIENCE_CUSTOMER, 0),
    ):
        got = one(f"SELECT COUNT(*) FROM audiences_membership WHERE customer_id = {m}", (customer,))
        if got != count:
            problems.append(f"customer {customer} is in {got} audiences, expected {count}")
    largest = one("SELECT MAX(member_count) FROM audiences_audience")
    return {"rows": rows, "largest_audience": int(largest or 0)}, problems
