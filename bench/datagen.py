"""The benchmark's data: the import file and the SQL that creates the customers.

The file is deterministic for a seed: 80 % known Tagbase IDs (distinct, in random order) and the
other 20 % split evenly among unknown IDs (greater than the number of customers, distinct),
repeats of an earlier known line and invalid values (spreadsheet damage and typing slips). One
value per line, most lines ending with the original product's ``;`` terminator, a few with
none or with ``.``. The expected import outcome follows from the counts alone.

Customers are generated set-based inside the database (a recursive CTE on SQLite,
``generate_series`` on PostgreSQL) with ``sc_id`` 1..N: no Python loop, no Django.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

KNOWN_SHARE = 0.8
# Values Tagbase must reject as invalid Tagbase IDs and the baseline's digit check skips.
INVALID_VALUES = ("12x", "1.23E+15", "1 234 567", "123.0", "abc", "7-12", "#N/A")
WRITE_BLOCK = 100_000


@dataclass(frozen=True)
class FileSpec:
    """What the generated file holds; ``expected_*`` is the outcome a correct import reports."""

    path: str
    seed: int
    lines: int
    customers: int
    known: int
    unknown: int
    duplicate: int
    invalid: int
    size_bytes: int

    @property
    def digit_values(self) -> int:
        """Lines whose value is all digits: what the baseline stages."""
        return self.known + self.unknown + self.duplicate

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "path": Path(self.path).name}


def split_counts(lines: int, customers: int) -> tuple[int, int, int, int]:
    """(known, unknown, duplicate, invalid) for a file of ``lines`` lines."""
    if lines < 10:
        raise ValueError(f"--lines must be at least 10 (got {lines})")
    known = round(lines * KNOWN_SHARE)
    if known > customers:
        raise ValueError(
            f"{lines:,} lines need {known:,} distinct known ids but there are only "
            f"{customers:,} customers: raise --customers to at least {known:,}"
        )
    rest = lines - known
    unknown = duplicate = rest // 3
    return known, unknown, duplicate, rest - unknown - duplicate


def _kinds(rng: random.Random, counts: tuple[int, int, int, int]) -> bytearray:
    """The kind of each line (k, u, d, i) in a random order whose first line is a known one,
    so that every repeat has an earlier known line to repeat."""
    known, unknown, duplicate, invalid = counts
    kinds = bytearray(b"k" * known + b"u" * unknown + b"d" * duplicate + b"i" * invalid)
    rng.shuffle(kinds)
    first_known = kinds.index(b"k")
    kinds[0], kinds[first_known] = kinds[first_known], kinds[0]
    return kinds


def _terminated(rng: random.Random, value: str, numeric: bool) -> str:
    roll = rng.random()
    if roll < 0.9:
        return f"{value};\n"
    if roll < 0.99 or not numeric:
        return f"{value}\n"
    return f"{value}.\n"


def write_import_file(path: Path, lines: int, customers: int, seed: int) -> FileSpec:
    counts = split_counts(lines, customers)
    known, unknown, _, _ = counts
    rng = random.Random(seed)
    known_ids = rng.sample(range(1, customers + 1), known)
    unknown_ids = rng.sample(range(customers + 1, customers + 1 + max(customers, unknown)), unknown)
    next_known = next_unknown = 0
    out: list[str] = []
    with path.open("w", encoding="utf-8", newline="") as fh:
        for kind in _kinds(rng, counts):
            if kind == 0x6B:  # k
                value, next_known = str(known_ids[next_known]), next_known + 1
            elif kind == 0x75:  # u
                value, next_unknown = str(unknown_ids[next_unknown]), next_unknown + 1
            elif kind == 0x64:  # d: any known id already written
                value = str(known_ids[rng.randrange(next_known)])
            else:
                value = rng.choice(INVALID_VALUES)
            out.append(_terminated(rng, value, kind != 0x69))
            if len(out) >= WRITE_BLOCK:
                fh.write("".join(out))
                out = []
        fh.write("".join(out))
    return FileSpec(str(path), seed, lines, customers, *counts, size_bytes=path.stat().st_size)


def generate_in_child(path: Path, lines: int, customers: int, seed: int) -> FileSpec:
    """``write_import_file`` in a separate process. The harness must stay small: every child
    it starts inherits its peak RSS as a floor of ``ru_maxrss`` (see bench/measure.py), and
    generating 10M lines holds hundreds of MB of ids."""
    argv = [sys.executable, "-m", "bench.datagen", str(path), str(lines), str(customers), str(seed)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ValueError(done.stderr.strip().splitlines()[-1] if done.stderr else "datagen failed")
    return FileSpec(**json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the import benchmark's file.")
    for name in ("path", "lines", "customers", "seed"):
        parser.add_argument(name)
    args = parser.parse_args()
    try:
        spec = write_import_file(
            Path(args.path), int(args.lines), int(args.customers), int(args.seed)
        )
    except ValueError as exc:
        sys.exit(str(exc))
    print(json.dumps(asdict(spec)))


def customers_sql(engine: str) -> str:
    """One statement inserting customers 1..N (one parameter: N), deterministic."""
    columns = (
        "sc_id, external_id, last_name, first_name, middle_name, gender, country, city, "
        "registered_at, phone_raw, email_raw, attributes, created_at, updated_at"
    )
    if engine == "sqlite":
        return (
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) "
            f"INSERT INTO customers_customer ({columns}) "
            "SELECT n, 'P' || n, '', '', '', '', '', '', '2024-01-01 00:00:00', '', '', '{}', "
            "'2024-01-01 00:00:00', '2024-01-01 00:00:00' FROM s"
        )
    return (
        f"INSERT INTO customers_customer ({columns}) "
        "SELECT n, 'P' || n, '', '', '', '', '', '', timestamptz '2024-01-01 00:00:00+00', "
        "'', '', '{}'::jsonb, timestamptz '2024-01-01 00:00:00+00', "
        "timestamptz '2024-01-01 00:00:00+00' FROM generate_series(1, %s::bigint) AS n"
    )


if __name__ == "__main__":
    main()


# --- The segment benchmark's data (bench/segment_bench.py) ---------------------------------------
#
# Customers with what segment rules look at — gender, birth date, city, registration date — and
# their receipts and events, generated set-based in one statement each from deterministic hashes
# of the customer's id, identical on both engines. Dates are relative to an anchor (the moment
# the template is prepared), so rules relative to today ("days since the last receipt < 90")
# keep their selectivity whatever day the benchmark runs. Receipt metrics (``CustomerStats``) are
# not generated here: Tagbase computes them (``tagbase receipts refresh-stats``).

HASH_PRIME = 2_147_483_647  # 2^31 - 1: every intermediate product stays below 2^63
# (share in %, city); the rest (13 %) has no city. The benchmark's typical rule uses Kazan (6 %).
CITIES = (
    (15, "Moscow"),
    (10, "Saint Petersburg"),
    (7, "Novosibirsk"),
    (6, "Yekaterinburg"),
    (6, "Kazan"),
    (5, "Nizhny Novgorod"),
    (5, "Chelyabinsk"),
    (5, "Samara"),
    (4, "Omsk"),
    (4, "Rostov-on-Don"),
    (4, "Ufa"),
    (4, "Krasnoyarsk"),
    (4, "Voronezh"),
    (4, "Perm"),
    (4, "Volgograd"),
)
RECEIPT_SHARE = 7  # in 10 customers have receipts: 1 to 5 each, over the last 720 days
MAX_RECEIPTS = 5
MAX_EVENTS = 4  # 0 to 4 events per customer, over the last 90 days
EVENT_NAMES = ((5, "app_login"), (2, "visit"), (2, "push_open"), (1, "coupon_used"))  # in 10


def _h(x: str, salt: int) -> str:
    """A pseudo-random integer in [0, 2^31 - 1) of the integer SQL expression ``x`` (< 10^9):
    a quadratic residue mix with multipliers drawn from ``salt``, so that two hashes of the same
    id are not correlated the way linear ones are. Integer arithmetic only, every intermediate
    below 2^63: the same value on SQLite and PostgreSQL."""
    rng = random.Random(salt)
    a, b = rng.randrange(10**8, HASH_PRIME), rng.randrange(10**8, HASH_PRIME)
    return f"((((({x}) * ({x})) % {HASH_PRIME}) * {a} + ({x}) * {b} + {salt}) % {HASH_PRIME})"


def _pick(hashed: str, modulo: int, table: tuple[tuple[int, str], ...], default: str) -> str:
    """CASE choosing a text from ``table`` (weights out of ``modulo``) by ``hashed % modulo``."""
    parts, upper = [], 0
    for weight, text in table:
        upper += weight
        parts.append(f"WHEN {hashed} % {modulo} < {upper} THEN '{text}'")
    return f"CASE {' '.join(parts)} ELSE '{default}' END"


def _ago(engine: str, days: str, seconds: str) -> str:
    """The anchor (parameter ``anchor``) minus ``days`` days and ``seconds`` seconds."""
    if engine == "sqlite":
        return f"datetime(:anchor, '-' || ({days}) || ' days', '-' || ({seconds}) || ' seconds')"
    return (
        f"(%(anchor)s::timestamptz - ({days}) * interval '1 day' "
        f"- ({seconds}) * interval '1 second')"
    )


def _for(engine: str, sql: str) -> str:
    """psycopg takes ``%`` for a placeholder: the modulo operator is written ``%%`` there."""
    return sql if engine == "sqlite" else sql.replace(" % ", " %% ")


def _series(engine: str, name: str, upper: str) -> str:
    """A CTE ``name(n)`` of the integers 1..upper."""
    if engine == "sqlite":
        return f"{name}(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM {name} WHERE n < {upper})"
    return f"{name}(n) AS (SELECT generate_series(1, {upper}::bigint))"


def segment_customers_sql(engine: str) -> str:
    """Customers 1..N (parameter ``customers``) with a gender, a birth date (none for 10 %)
    between 1950 and 2005, a city and a registration in the 5 years before the anchor."""
    n = "s.n"
    if engine == "sqlite":
        birth = f"date('1950-01-01', '+' || ({_h(n, 69621)} % 20454) || ' days')"
        param, recursive, stamp = ":customers", "RECURSIVE ", ":anchor"
    else:
        birth = f"(date '1950-01-01' + ({_h(n, 69621)} % 20454)::int)"
        param, recursive, stamp = "%(customers)s", "", "%(anchor)s::timestamptz"
    gender = _pick(_h(n, 48271), 3, ((1, "m"), (1, "f")), "")
    city = _pick(_h(n, 39373), 100, CITIES, "")
    registered = _ago(engine, f"{_h(n, 40692)} % 1826", f"{_h(n, 40014)} % 86400")
    columns = (
        "sc_id, external_id, last_name, first_name, middle_name, gender, birth_date, country, "
        "city, registered_at, phone_raw, email_raw, attributes, created_at, updated_at"
    )
    json_empty = "'{}'" if engine == "sqlite" else "'{}'::jsonb"
    return _for(
        engine,
        (
            f"WITH {recursive}{_series(engine, 's', param)} "
            f"INSERT INTO customers_customer ({columns}) "
            f"SELECT {n}, 'P' || {n}, '', '', '', {gender}, "
            f"CASE WHEN {_h(n, 16807)} % 10 = 0 THEN NULL ELSE {birth} END, 'Russia', {city}, "
            f"{registered}, '', '', {json_empty}, {stamp}, {stamp} FROM s"
        ),
    )


def receipts_sql(engine: str) -> str:
    """Receipts of 70 % of the customers: 1-5 each, dated in the 720 days before the anchor,
    amounts 1.00-9,000.99, 1-9 items. Inserted in (customer, number) order."""
    c, x = "c.sc_id", f"(c.sc_id * {MAX_RECEIPTS + 1} + k.n)"
    recursive = "RECURSIVE " if engine == "sqlite" else ""
    amount = f"(100 + {_h(x, 83)} % 900000)"
    amount = f"{amount} / 100.0" if engine == "sqlite" else f"{amount}::numeric / 100"
    when = _ago(engine, f"{_h(x, 211)} % 720", f"{_h(x, 223)} % 86400")
    return _for(
        engine,
        (
            f"WITH {recursive}{_series(engine, 'k', str(MAX_RECEIPTS))} "
            "INSERT INTO customers_receipt (customer_id, number, date, amount, items, store) "
            f"SELECT {c}, 'R' || {c} || '-' || k.n, {when}, {amount}, 1 + {_h(x, 227)} % 9, '' "
            "FROM customers_customer c CROSS JOIN k "
            f"WHERE {_h(c, 97)} % 10 < {RECEIPT_SHARE} "
            f"AND k.n <= 1 + {_h(c, 101)} % {MAX_RECEIPTS} ORDER BY {c}, k.n"
        ),
    )


def events_sql(engine: str) -> str:
    """0-4 events per customer, half of them ``app_login``, in the 90 days before the anchor."""
    c, x = "c.sc_id", f"(c.sc_id * {MAX_EVENTS + 1} + k.n)"
    recursive = "RECURSIVE " if engine == "sqlite" else ""
    payload = "'{}'" if engine == "sqlite" else "'{}'::jsonb"
    when = _ago(engine, f"{_h(x, 229)} % 90", f"{_h(x, 233)} % 86400")
    return _for(
        engine,
        (
            f"WITH {recursive}{_series(engine, 'k', str(MAX_EVENTS))} "
            "INSERT INTO customers_event (customer_id, name, occurred_at, payload) "
            f"SELECT {c}, {_pick(_h(x, 239), 10, EVENT_NAMES, 'visit')}, {when}, {payload} "
            "FROM customers_customer c CROSS JOIN k "
            f"WHERE k.n <= {_h(c, 103)} % {MAX_EVENTS + 1} ORDER BY {c}, k.n"
        ),
    )
