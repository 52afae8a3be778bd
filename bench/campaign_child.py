"""The campaign benchmark's measured processes: Tagbase's engine, and the plain-SQL baseline.

    python -m bench.campaign_child tagbase  [--audience NAME]
    python -m bench.campaign_child baseline [--audience NAME] (--sqlite PATH | --postgres URL)

**tagbase** runs the real engine with Django set up from the environment (DATABASE_URL,
TAGBASE_DATA_DIR). Outside the clock: an empty audience and an active campaign
*date has come* → *filter customers* (total spent ≥ 10,000) → *add to audience*, whose moment
has just passed. On the clock, what a worker does: ``engine.fire_scheduled`` (the tick lets
every customer in: ``Batch``, ``Entry`` rows, the trigger's ``StepRun``, tokens) and
``engine.run_due`` (the filter's and the audience action's steps, TAGBASE_CAMPAIGN_STEP_SIZE
customers each, with their tokens, passages, step runs and campaign operations).

**baseline** is the physical limit of the engine for the same membership change on the same
data: one hand-written ``INSERT … SELECT`` of the customers whose receipt total is at least
10,000 into the audience, in key order, and a commit — no campaign, no entry, no token, no
step, no operation. It imports neither Django nor Tagbase.

Clocks run from an open connection to the last commit. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.baseline_import import SQLITE_PRAGMAS

THRESHOLD = "10000"
# The filter's rule: docs/segments.md, "receipts.total_amount" (the customer's receipt total).
RULE: dict[str, Any] = {
    "op": "and",
    "rules": [{"field": "receipts.total_amount", "operator": "gte", "value": THRESHOLD}],
}
CAMPAIGN_NAME = "bench campaign"


def expected_sql(mark: str) -> str:
    """``FROM … WHERE …`` of the customers the rule selects, written by hand; one parameter,
    the threshold. The harness's check and the baseline's source."""
    return (
        "FROM customers_customer c JOIN customers_customerstats s ON s.customer_id = c.sc_id "
        f"WHERE s.total_amount >= {mark}"
    )


# --- The baseline ---------------------------------------------------------------------------


def baseline(engine: str, target: str, audience: str) -> dict[str, Any]:
    if engine == "sqlite":
        conn: Any = sqlite3.connect(target, isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        mark = "?"
    else:
        import psycopg

        conn = psycopg.connect(target)
        mark = "%s"
    now: Any = datetime.now(UTC)
    if engine == "sqlite":
        now = now.replace(tzinfo=None).isoformat(" ")
    cur = conn.cursor()
    cur.execute(
        "INSERT INTO audiences_audience (name, name_key, description, member_count, "
        f"created_at, updated_at) VALUES ({mark}, {mark}, '', 0, {mark}, {mark}) RETURNING id",
        (audience, audience.casefold(), now, now),
    )
    audience_id = cur.fetchone()[0]
    if engine == "postgres":
        conn.commit()
    started = time.perf_counter()
    if engine == "sqlite":
        conn.execute("BEGIN IMMEDIATE")  # as Tagbase's transaction_mode
    cur.execute(
        "INSERT INTO audiences_membership (audience_id, customer_id, set_at, operation_id) "
        f"SELECT {mark}, c.sc_id, {mark}, NULL {expected_sql(mark)} ORDER BY c.sc_id",
        (audience_id, now, int(THRESHOLD)),
    )
    changed = cur.rowcount
    statement = time.perf_counter()
    if engine == "sqlite":
        conn.execute("COMMIT")
    else:
        conn.commit()
    done = time.perf_counter()
    conn.close()
    return {
        "changed": changed,
        "total_s": round(done - started, 4),
        "steps_s": {
            "statement": round(statement - started, 4),
            "commit": round(done - statement, 4),
        },
    }


# --- Tagbase --------------------------------------------------------------------------------


def tagbase(audience_name: str) -> dict[str, Any]:
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagbase.settings")
    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from bench.segment_child import QueryLog
    from tagbase.accounts.actors import Actor
    from tagbase.audiences.models import Membership, Operation
    from tagbase.audiences.services import create_audience
    from tagbase.campaigns import engine, services
    from tagbase.campaigns.models import Batch, Passage, StepRun, Token

    actor = Actor.system("bench")
    audience = create_audience(audience_name, actor=actor)
    at = timezone.now() + timedelta(milliseconds=300)
    graph = {
        "nodes": [
            {"id": "date", "kind": "date", "params": {"at": at.isoformat()}},
            {"id": "big", "kind": "filter", "params": {"rules": RULE}},
            {"id": "vip", "kind": "audience", "params": {"action": "add", "audience": audience.pk}},
        ],
        "edges": [
            {"from": "date", "port": "out", "to": "big"},
            {"from": "big", "port": "positive", "to": "vip"},
        ],
    }
    campaign = services.create_campaign(CAMPAIGN_NAME, graph, actor=actor, reentry_days=None)
    campaign = services.activate_campaign(campaign, actor=actor)
    while timezone.now() <= at:  # the moment passes: the next tick fires the trigger
        time.sleep(0.05)
    log = QueryLog()
    with connection.execute_wrapper(log):
        started = time.perf_counter()
        batches = engine.fire_scheduled()
        entered = time.perf_counter()
        enter_queries = log.take()
        steps = engine.run_due(campaign.pk)
        finished = time.perf_counter()
        run_queries = log.take()
    audience.refresh_from_db()
    [batch] = Batch.objects.filter(pk__in=batches)
    runs = StepRun.objects.filter(campaign=campaign)
    per_node: dict[str, dict[str, Any]] = {}
    for run in runs.order_by("id"):
        item = per_node.setdefault(run.node, {"runs": 0, "in": 0, "out": {}, "errors": []})
        item["runs"] += 1
        item["in"] += run.count_in
        for port, n in run.counts_out.items():
            item["out"][port] = item["out"].get(port, 0) + n
        if run.error:
            item["errors"].append(run.error)
    operations = Operation.objects.filter(audience_id=audience.pk)
    return {
        "step_size": settings.TAGBASE_CAMPAIGN_STEP_SIZE,
        "batches": len(batches),
        "requested": batch.requested,
        "entered": batch.entered,
        "steps": steps,
        "nodes": per_node,
        "passages": Passage.objects.filter(step__campaign=campaign).count(),
        "tokens_left": Token.objects.filter(campaign=campaign).count(),
        "operations": operations.count(),
        "added": sum(operations.values_list("added", flat=True)),
        "member_count": audience.member_count,
        "rows": Membership.objects.filter(audience_id=audience.pk).count(),
        "changed": audience.member_count,
        "total_s": round(finished - started, 4),
        "steps_s": {
            "enter": round(entered - started, 4),
            "run_due": round(finished - entered, 4),
        },
        "queries": {"enter": enter_queries, "run_due": _heaviest(run_queries)},
    }


def _heaviest(queries: list[list[Any]], keep: int = 25) -> dict[str, Any]:
    """The run's statement count and its slowest statements (a run has hundreds)."""
    return {
        "count": len(queries),
        "s": round(sum(q[0] for q in queries), 4),
        "slowest": sorted(queries, key=lambda q: -q[0])[:keep],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["tagbase", "baseline"])
    parser.add_argument("--audience", default="bench")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sqlite", help="the baseline's SQLite database file")
    where.add_argument("--postgres", help="the baseline's postgres:// URL")
    args = parser.parse_args(argv)
    if args.side == "tagbase":
        result = tagbase(args.audience)
    else:
        if not (args.sqlite or args.postgres):
            parser.error("the baseline needs --sqlite or --postgres")
        engine = "sqlite" if args.sqlite else "postgres"
        result = baseline(engine, args.sqlite or args.postgres, args.audience)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
