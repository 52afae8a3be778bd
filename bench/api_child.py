"""The API benchmark's processes: the setup, the load generator, and the plain-SQL baseline.

    python -m bench.api_child setup
    python -m bench.api_child load --url URL --token T --plan FILE --mode read|write
                                   [--rate R | --concurrency C] [--duration S]
    python -m bench.api_child baseline --plan FILE --mode read|write [--duration S]
                                       (--sqlite PATH | --postgres URL)

**setup** (Django from the environment) creates the API token the load uses (scopes read and
write, through ``accounts.services.create_api_token``) and the empty audiences the write phases
add to (``audiences.services.create_audience``); prints the token's secret and their ids.

**load** is the load generator: threads of the standard library's ``http.client`` against
Tagbase's real HTTP server on this machine, bounded in time (``--duration``; it stops by itself:
nothing is sent after it, and the answers still awaited then are the last it waits for).
Two shapes:
- ``--rate R`` (open loop): request i is due at start + i / R, whatever the earlier ones did;
  enough threads that a slow answer does not delay the schedule; every latency is counted from
  the moment the request was due (so a stall is not hidden by the requests it delayed: no
  "coordinated omission"), and from the moment it was sent;
- ``--concurrency C`` (closed loop): C threads each send the next request as soon as the last
  one is answered: the most the server gives.
``read`` asks "is customer in audience" (``GET /api/v1/audiences/{a}/members/{c}``) for the
plan's pairs in turn, each labelled member or not: a member must answer 200 ``member: true``, a
non-member 404 ``not_member``. ``write`` adds 100 new customers per request (``POST
/api/v1/audiences/{a}/members/add``, ``sc_id``), batch after batch of a sequence that never
repeats a customer: each answer must be a 200 with ``added`` + ``already_member`` = 100.
Anything else is counted — 5xx, "database is locked" in a body, a wrong answer, a broken
connection — and the first few are kept.

**baseline** runs the same reads (one ``SELECT`` of the membership by its key) or the same writes
(per batch of 100: ``INSERT … SELECT`` of the batch's customers ignoring conflicts, the audience's
count, a commit) from one process and one connection, as fast as it can for ``--duration``: the
engine's limit for this work from one client, with no HTTP, no authentication, no operation
record.

The plan is a JSON file the harness writes (``bench.api_load``). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import sqlite3
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bench.baseline_import import SQLITE_PRAGMAS

BATCH = 100
OPEN_LOOP_THREADS = 64
SAMPLES = 10  # problems kept per kind


def batch_ids(j: int, customers: int, stride: int) -> list[int]:
    """Batch ``j`` of the write sequence: 100 customer ids, none in any other batch (``stride``
    is coprime with ``customers``), spread over the whole base."""
    return [1 + ((j * BATCH + i) * stride) % customers for i in range(BATCH)]


def batches_available(customers: int) -> int:
    return customers // BATCH


# --- Setup ------------------------------------------------------------------------------------


def setup(audiences: list[str]) -> dict[str, Any]:
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagbase.settings")
    django.setup()
    from tagbase.accounts.actors import Actor
    from tagbase.accounts.services import create_api_token
    from tagbase.audiences.services import create_audience

    actor = Actor.system("bench")
    _, secret = create_api_token("bench-api", ["read", "write"], actor=actor)
    made = {name: create_audience(name, actor=actor).pk for name in audiences}
    return {"token": secret, "audiences": made}


# --- The load generator -----------------------------------------------------------------------


class Record:
    """One thread's results (merged at the end: no lock on the hot path)."""

    def __init__(self) -> None:
        self.due: list[float] = []
        self.sent: list[float] = []
        self.done: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.added = 0
        self.problems: dict[str, list[str]] = {}
        self.counts: Counter[str] = Counter()

    def problem(self, kind: str, text: str) -> None:
        self.counts[kind] += 1
        kept = self.problems.setdefault(kind, [])
        if len(kept) < SAMPLES:
            kept.append(text[:300])


class Load:
    def __init__(self, args: argparse.Namespace, plan: dict[str, Any]) -> None:
        parts = urlsplit(args.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {"Authorization": f"Bearer {args.token}"}
        self.mode, self.plan = args.mode, plan
        self.rate, self.duration = args.rate, args.duration
        self.threads = OPEN_LOOP_THREADS if args.rate else args.concurrency
        if self.mode == "write":
            self.limit = batches_available(plan["customers"])
            self.headers["Content-Type"] = "application/json"
        else:
            self.limit = 10**12
        self.lock = threading.Lock()
        self.next = 0
        self.exhausted = False
        self.start = 0.0

    def _take(self) -> int | None:
        with self.lock:
            i = self.next
            self.next += 1
        if i < self.limit:
            return i
        if time.perf_counter() < self.start + self.duration:
            self.exhausted = True  # no new customer left to add before the time was up
        return None

    def _send(self, conn: http.client.HTTPConnection, i: int) -> tuple[int, bytes]:
        if self.mode == "read":
            pairs = self.plan["pairs"]
            audience, customer, _ = pairs[i % len(pairs)]
            conn.request(
                "GET", f"/api/v1/audiences/{audience}/members/{customer}", headers=self.headers
            )
        else:
            body = json.dumps(
                {
                    "id_type": "sc_id",
                    "ids": batch_ids(i, self.plan["customers"], self.plan["stride"]),
                }
            )
            conn.request(
                "POST",
                f"/api/v1/audiences/{self.plan['audience']}/members/add",
                body=body,
                headers=self.headers,
            )
        response = conn.getresponse()
        return response.status, response.read()

    def _judge(self, rec: Record, i: int, status: int, body: bytes) -> None:
        rec.statuses[status] += 1
        if b"database is locked" in body:
            rec.problem("database_locked", f"{status} {body[:200]!r}")
        if status >= 500:
            rec.problem("server_error", f"{status} {body[:200]!r}")
            return
        try:
            data = json.loads(body)
        except ValueError:
            rec.problem("wrong_answer", f"{status} not JSON: {body[:200]!r}")
            return
        if self.mode == "read":
            audience, customer, member = self.plan["pairs"][i % len(self.plan["pairs"])]
            right = (
                (status == 200 and data.get("member") is True)
                if member
                else (status == 404 and data.get("error", {}).get("code") == "not_member")
            )
            if not right:
                rec.problem(
                    "wrong_answer",
                    f"audience {audience} customer {customer} "
                    f"member={member}: {status} {body[:200]!r}",
                )
            return
        if status != 200 or data.get("added", 0) + data.get("already_member", 0) != BATCH:
            rec.problem("wrong_answer", f"batch {i}: {status} {body[:300]!r}")
            return
        rec.added += int(data["added"])

    def _worker(self, rec: Record) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        deadline = self.start + self.duration
        time.sleep(max(0.0, self.start - time.perf_counter()))  # every thread starts together
        while (i := self._take()) is not None:
            now = time.perf_counter()
            if self.rate:
                due = self.start + i / self.rate
                if due >= deadline or now >= deadline:
                    break  # past the deadline, requests still due are not sent: bounded in time
                if due > now:
                    time.sleep(due - now)
            else:
                due = now
                if now >= deadline:
                    break
            sent = time.perf_counter()
            try:
                status, body = self._send(conn, i)
            except (OSError, http.client.HTTPException) as exc:
                rec.problem("connection", f"{type(exc).__name__}: {exc}")
                conn.close()
                continue
            rec.due.append(due)
            rec.sent.append(sent)
            rec.done.append(time.perf_counter())
            self._judge(rec, i, status, body)
        conn.close()

    def run(self) -> dict[str, Any]:
        records = [Record() for _ in range(self.threads)]
        threads = [threading.Thread(target=self._worker, args=(r,)) for r in records]
        self.start = time.perf_counter() + 0.1  # after every thread has started
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return self._summary(records)

    def _summary(self, records: list[Record]) -> dict[str, Any]:
        due = [x for r in records for x in r.due]
        sent = [x for r in records for x in r.sent]
        done = [x for r in records for x in r.done]
        elapsed = (max(done) - self.start) if done else 0.0
        counts: Counter[str] = Counter()
        problems: dict[str, list[str]] = {}
        statuses: Counter[int] = Counter()
        for r in records:
            counts.update(r.counts)
            statuses.update(r.statuses)
            for kind, kept in r.problems.items():
                problems.setdefault(kind, []).extend(kept[: SAMPLES - len(problems.get(kind, []))])
        per_second = Counter(int(x - self.start) for x in done)
        return {
            "mode": self.mode,
            "shape": f"open loop at {self.rate:g}/s"
            if self.rate
            else f"closed loop, {self.threads} connections",
            "rate": self.rate,
            "threads": self.threads,
            "duration_s": self.duration,
            "elapsed_s": round(elapsed, 3),
            "requests": len(done),
            # open loop: requests due within the duration that were never sent because the
            # server had fallen behind the schedule (0 when it kept up)
            "not_sent": max(
                0,
                min(math.ceil(self.duration * self.rate), self.limit)
                - len(done)
                - counts["connection"],
            )
            if self.rate
            else 0,
            "requests_per_s": round(len(done) / elapsed, 1) if elapsed else 0.0,
            "memberships_added": sum(r.added for r in records),
            "memberships_per_s": round(sum(r.added for r in records) / elapsed, 1)
            if elapsed
            else 0.0,
            "response_ms": [round((d - q) * 1000, 2) for q, d in zip(due, done, strict=True)],
            "service_ms": [round((d - s) * 1000, 2) for s, d in zip(sent, done, strict=True)],
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "problems": dict(counts),
            "problem_samples": problems,
            "per_second": [per_second.get(s, 0) for s in range(int(elapsed) + 1)],
            "ran_out_of_batches": self.exhausted,
        }


# --- The baseline -----------------------------------------------------------------------------


class Baseline:
    def __init__(self, engine: str, target: str) -> None:
        self.engine = engine
        self.mark = "?" if engine == "sqlite" else "%s"
        if engine == "sqlite":
            self.conn: Any = sqlite3.connect(target, isolation_level=None)
            for pragma in SQLITE_PRAGMAS:
                self.conn.execute(pragma)
        else:
            import psycopg

            self.conn = psycopg.connect(target, autocommit=True)

    def read(self, plan: dict[str, Any], duration: float) -> dict[str, Any]:
        cur, m = self.conn.cursor(), self.mark
        sql = (
            "SELECT set_at, operation_id FROM audiences_membership "
            f"WHERE audience_id = {m} AND customer_id = {m}"
        )
        pairs, times, wrong = plan["pairs"], [], 0
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < duration:
            audience, customer, member = pairs[i % len(pairs)]
            began = time.perf_counter()
            cur.execute(sql, (audience, customer))
            found = cur.fetchone() is not None
            times.append(round((time.perf_counter() - began) * 1000, 3))
            wrong += found != bool(member)
            i += 1
        elapsed = time.perf_counter() - start
        return {
            "requests": i,
            "elapsed_s": round(elapsed, 3),
            "requests_per_s": round(i / elapsed, 1),
            "service_ms": times,
            "wrong_answers": wrong,
        }

    def write(self, plan: dict[str, Any], duration: float) -> dict[str, Any]:
        cur, m = self.conn.cursor(), self.mark
        audience, customers, stride = plan["audience"], plan["customers"], plan["stride"]
        if self.engine == "sqlite":
            insert = (
                "INSERT OR IGNORE INTO audiences_membership (audience_id, customer_id, "
                f"set_at, operation_id) SELECT {m}, c.sc_id, {m}, NULL FROM json_each({m}) j "
                "JOIN customers_customer c ON c.sc_id = j.value ORDER BY c.sc_id"
            )
        else:
            insert = (
                "INSERT INTO audiences_membership (audience_id, customer_id, set_at, "
                f"operation_id) SELECT {m}, c.sc_id, {m}, NULL FROM unnest({m}::bigint[]) "
                "AS j(value) JOIN customers_customer c ON c.sc_id = j.value "
                "ORDER BY c.sc_id ON CONFLICT DO NOTHING"
            )
        bump = (
            f"UPDATE audiences_audience SET member_count = member_count + {m}, "
            f"last_set_at = {m} WHERE id = {m}"
        )
        times, added, j = [], 0, 0
        start = time.perf_counter()
        while time.perf_counter() - start < duration and j < batches_available(customers):
            ids = batch_ids(j, customers, stride)
            began = time.perf_counter()
            now = datetime.now(UTC)
            stamp = now.replace(tzinfo=None).isoformat(" ") if self.engine == "sqlite" else now
            cur.execute("BEGIN IMMEDIATE" if self.engine == "sqlite" else "BEGIN")
            param = json.dumps(ids) if self.engine == "sqlite" else ids
            cur.execute(insert, (audience, stamp, param))
            changed = cur.rowcount
            cur.execute(bump, (changed, stamp, audience))
            cur.execute("COMMIT")
            times.append(round((time.perf_counter() - began) * 1000, 3))
            added += changed
            j += 1
        elapsed = time.perf_counter() - start
        return {
            "requests": j,
            "elapsed_s": round(elapsed, 3),
            "requests_per_s": round(j / elapsed, 1),
            "service_ms": times,
            "memberships_added": added,
            "memberships_per_s": round(added / elapsed, 1),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["setup", "load", "baseline"])
    parser.add_argument("--audiences", nargs="*", default=[], help="setup: audiences to create")
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--plan", help="the harness's plan file (JSON)")
    parser.add_argument("--mode", choices=["read", "write"])
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: requests per second")
    parser.add_argument("--concurrency", type=int, default=4, help="closed loop: connections")
    parser.add_argument("--duration", type=float, default=20.0)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sqlite", help="the baseline's SQLite database file")
    where.add_argument("--postgres", help="the baseline's postgres:// URL")
    args = parser.parse_args(argv)
    if args.side == "setup":
        result = setup(args.audiences)
    else:
        if not (args.plan and args.mode):
            parser.error("load and baseline need --plan and --mode")
        with open(args.plan, encoding="utf-8") as fh:
            plan = json.load(fh)[args.mode]
        if args.side == "load":
            if not (args.url and args.token):
                parser.error("load needs --url and --token")
            result = Load(args, plan).run()
        else:
            if not (args.sqlite or args.postgres):
                parser.error("the baseline needs --sqlite or --postgres")
            base = Baseline("sqlite" if args.sqlite else "postgres", args.sqlite or args.postgres)
            result = (base.read if args.mode == "read" else base.write)(plan, args.duration)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
