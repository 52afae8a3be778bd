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
