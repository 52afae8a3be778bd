"""The API load benchmark: Tagbase's production server under a loopback load generator.

For each database: the audiences template of the pages benchmark (``bench.pages_bench``: N
customers, A audiences, M memberships, checked), one clone of it, an API token and empty
audiences to write into (``bench.api_child setup``). Then:

1. the baseline, from one process: the reads, then the writes, as plain SQL;
2. ``tagbase serve --production --web W --no-worker`` (gunicorn, W sync web processes) on a free
   port of 127.0.0.1, with the clone's settings, and four load phases of ``--duration`` seconds
   each (``bench.api_child load``, on the same machine): reads at the bar's rate (open loop,
   300 requests/s), reads as fast as the server answers (closed loop), writes at the bar's rate
   (100 requests of 100 ids a second = 10,000 memberships/s), writes as fast as it answers;
3. the server stopped (SIGTERM: gunicorn stops gracefully), the peak RSS of its web processes
   read from /proc before that.

**Checked, not trusted.** Every answer is judged by the load generator (a member 200, a
non-member 404 ``not_member``, every write 200 with ``added + already_member = 100``); the
baseline's reads must find exactly the labelled members. After the load each write audience
must hold exactly the memberships its answers reported added, with that ``member_count``, and as
many ``api`` operations as 200 answers. A wrong answer stops the benchmark (``BenchError``); a
5xx or "database is locked" is Tagbase failing under load: it is counted, shown and fails the
errors bar, and the figures are kept.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.api_child import batches_available
from bench.databases import DEFAULT_POSTGRES_URL, BenchError, PostgresBench, RunDatabase
from bench.datagen_audiences import RESERVED, AudienceSpec, PlannedAudience, plan
from bench.import_bench import _figures
from bench.measure import Measured, run_measured
from bench.pages_bench import (
    BAR_SPEC,
    AudiencesDb,
    child_env,
    prepare_audiences,
    spread_ms,
)

Log = Callable[[str], None]
# quality.md §5: 'API: "is customer in audience": >= 300 requests/s, p99 <= 50 ms (gunicorn,
# loader on the same machine)'; 'API: add 100 ids per request: >= 10,000 memberships/s,
# p99 <= 250 ms, no "database is locked"'.
READ_RATE_BAR = 300.0
READ_P99_BAR_MS = 50.0
WRITE_RATE_BAR = 10_000.0
WRITE_P99_BAR_MS = 250.0
PAIRS = 4000
PHASES = (  # name, mode, open-loop rate (0: closed loop)
    ("read_rate", "read", READ_RATE_BAR),
    ("read_max", "read", 0.0),
    ("write_rate", "write", WRITE_RATE_BAR / 100),
    ("write_max", "write", 0.0),
)
WRITE_AUDIENCES = {"write_rate": "bench api rate", "write_max": "bench api max"}
BASELINE_AUDIENCE = "bench api baseline"
READY_TIMEOUT_S = 120


# --- The plan ---------------------------------------------------------------------------------


def is_member(a: PlannedAudience, customer: int, pool: int) -> bool:
    """Whether ``customer`` is in audience ``a`` (the generator's formula, inverted)."""
    if customer == 1:
        return a.in_profile
    if customer == 2:
        return a.in_few
    if customer <= RESERVED:
        return False
    k = ((customer - RESERVED - 1 - a.start) * pow(a.step, -1, pool)) % pool
    return k < a.size


def read_pairs(spec: AudienceSpec, planned: list[PlannedAudience]) -> list[list[int]]:
    """``PAIRS`` (audience, customer, is member) over every audience: every other one a member
    picked from the audience's members, the rest a customer picked anywhere (a member only by
    chance), in an order that jumps between audiences."""
    pairs = []
    for i in range(PAIRS):
        a = planned[(i * 7919) % len(planned)]
        if i % 2 == 0 and a.size:
            customer = a.member((i * 104_729 + 17) % a.size, spec.pool)
        else:
            customer = RESERVED + 1 + (i * 15_485_863) % spec.pool
        pairs.append([a.id, customer, int(is_member(a, customer, spec.pool))])
    return pairs


def stride_for(customers: int) -> int:
    stride = 7_368_787 % customers or 1
    while math.gcd(stride, customers) != 1:
        stride += 1
    return stride


def write_plan(path: Path, spec: AudienceSpec, audience: int) -> None:
    planned = plan(spec, datetime.now(UTC))  # the formula only: the anchor does not matter
    body = {
        "read": {"pairs": read_pairs(spec, planned)},
        "write": {
            "audience": audience,
            "customers": spec.customers,
            "stride": stride_for(spec.customers),
        },
    }
    path.write_text(json.dumps(body), encoding="utf-8")


# --- The server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_pids(db: AudiencesDb, run: RunDatabase) -> list[int]:
    """PostgreSQL's server processes serving this run's database (none on SQLite)."""
    if not isinstance(db, PostgresBench):
        return []
    import psycopg

    with psycopg.connect(run.url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(r[0]) for r in rows]


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Server:
    """``tagbase serve --production`` as a child process, its output in files."""

    def __init__(self, run: RunDatabase, web: int, log_dir: Path) -> None:
        self.run, self.web, self.log_dir = run, web, log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            *(sys.executable, "-m", "tagbase", "serve", "--production", "--web", str(self.web)),
            *("--no-worker", "--host", "127.0.0.1", "--port", str(self.port)),
        ]
        with (
            (self.log_dir / "serve.out").open("wb") as out,
            (self.log_dir / "serve.err").open("wb") as err,
        ):
            self.popen = subprocess.Popen(
                argv, env=child_env(self.run), cwd=machine.ROOT, stdout=out, stderr=err
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise BenchError(
                    f"tagbase serve --production exited ({self.popen.returncode}):\n{self.tail()}"
                )
            try:
                urllib.request.urlopen(self.url + "/login/", timeout=2).close()
                if len(self.web_pids()) == self.web:
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.5)
        raise BenchError(f"the server did not answer within {READY_TIMEOUT_S} s:\n{self.tail()}")

    def tail(self) -> str:
        return "".join(
            (self.log_dir / name).read_text(errors="replace")[-2000:]
            for name in ("serve.out", "serve.err")
        )

    def web_pids(self) -> list[int]:
        """gunicorn's web processes: the children of its master, the child of ``serve``."""
        if self.popen is None:
            return []
        return [w for master in _children(self.popen.pid) for w in _children(master)]

    def cpu(self, extra: list[int]) -> dict[int, float]:
        """CPU seconds so far of each web process and of ``extra`` (the database's)."""
        return {pid: _cpu_s(pid) for pid in [*self.web_pids(), *extra]}

    def peaks(self) -> dict[str, Any]:
        pids = self.web_pids()
        return {
            "web_processes": len(pids),
            "peak_rss_mb": [round(_status_kb(p, "VmHWM") / 1024, 1) for p in pids],
        }

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)  # serve stops gunicorn gracefully
        try:
            self.popen.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


# --- Runs -------------------------------------------------------------------------------------


def _fail(what: str, measured: Measured) -> BenchError:
    return BenchError(
        f"{what}\n--- stdout (end) ---\n{measured.stdout[-2000:]}\n"
        f"--- stderr (end) ---\n{measured.stderr[-4000:]}"
    )


def _child(run: RunDatabase, args: list[str], what: str) -> tuple[Measured, dict[str, Any]]:
    measured = run_measured(
        [sys.executable, "-m", "bench.api_child", *args], child_env(run), str(machine.ROOT)
    )
    if measured.returncode != 0:
        raise _fail(f"{what} exited with {measured.returncode}", measured)
    try:
        return measured, json.loads(measured.stdout)
    except ValueError:
        raise _fail(f"{what} did not print a JSON result", measured) from None


def _latency(values: list[float]) -> dict[str, float]:
    return spread_ms(values)


def _phase_summary(out: dict[str, Any]) -> dict[str, Any]:
    """The load generator's output without its raw latencies, with their percentiles."""
    kept = {k: v for k, v in out.items() if k not in ("response_ms", "service_ms")}
    kept["response_ms"] = _latency(out["response_ms"])
    kept["service_ms"] = _latency(out["service_ms"])
    return kept


def _baseline(
    run: RunDatabase, plan_file: Path, duration: float, log: Log, engine: str
) -> dict[str, Any]:
    out = {}
    for mode in ("read", "write"):
        args = ["baseline", "--plan", str(plan_file), "--mode", mode]
        measured, result = _child(
            run, [*args, "--duration", str(duration), *run.baseline_args], f"baseline {mode}"
        )
        if result.get("wrong_answers"):
            raise _fail(
                f"the baseline's reads disagree with the plan's labels in "
                f"{result['wrong_answers']} cases",
                measured,
            )
        result["service_ms"] = _latency(result["service_ms"])
        out[mode] = result | {"process": _figures(measured)}
        rate = (
            f"{result['memberships_per_s']:,.0f} memberships/s"
            if mode == "write"
            else f"{result['requests_per_s']:,.0f} reads/s"
        )
        log(f"[{engine}] api baseline {mode}: {rate}, p99 {result['service_ms']['p99']} ms")
    return out


def _load_phases(
    server: Server,
    backends: Callable[[], list[int]],
    token: str,
    plan_file: Path,
    audiences: dict[str, int],
    duration: float,
    concurrency: int,
    engine: str,
    log: Log,
) -> dict[str, Any]:
    out = {}
    for name, mode, rate in PHASES:
        phase_plan = plan_file
        if mode == "write":  # each write phase adds to its own empty audience
            body = json.loads(plan_file.read_text())
            body["write"]["audience"] = audiences[WRITE_AUDIENCES[name]]
            phase_plan = plan_file.with_name(f"plan-{name}.json")
            phase_plan.write_text(json.dumps(body))
        shape = ["--rate", str(rate)] if rate else ["--concurrency", str(concurrency)]
        load = machine.load_average()
        cpu_before = server.cpu(backends())
        measured, result = _child(
            server.run,
            [
                "load",
                "--url",
                server.url,
                "--token",
                token,
                "--plan",
                str(phase_plan),
                "--mode",
                mode,
                "--duration",
                str(duration),
                *shape,
            ],
            f"load {name}",
        )
        if result["problems"].get("wrong_answer"):
            raise _fail(
                f"{name}: {result['problems']['wrong_answer']} wrong answers, e.g. "
                f"{result['problem_samples']['wrong_answer'][:3]}",
                measured,
            )
        cpu_after = server.cpu(backends())
        server_cpu = sum(cpu_after[p] - cpu_before.get(p, 0.0) for p in cpu_after)
        done = max(1, result["requests"])
        summary = _phase_summary(result) | {
            "load_before": load,
            "loader": _figures(measured),
            # CPU per request of the web processes (and PostgreSQL's backends), and of the
            # loader: what the throughput would be on the machine's cores without other load
            "server_cpu_ms_per_request": round(server_cpu * 1000 / done, 3),
            "loader_cpu_ms_per_request": round((measured.user_s + measured.sys_s) * 1000 / done, 3),
        }
        out[name] = summary
        log(
            f"[{engine}] api {name}: {summary['requests_per_s']:,.0f} requests/s"
            + (f", {summary['memberships_per_s']:,.0f} memberships/s" if mode == "write" else "")
            + f", p99 {summary['response_ms']['p99']} ms, problems {summary['problems'] or 0}"
        )
    return out


def check_writes(
    db: AudiencesDb,
    run: RunDatabase,
    audiences: dict[str, int],
    phases: dict[str, Any],
    baseline: dict[str, Any],
) -> list[str]:
    """Each write audience holds exactly what its answers said was added."""
    reported = {WRITE_AUDIENCES[n]: phases[n]["memberships_added"] for n in WRITE_AUDIENCES}
    reported[BASELINE_AUDIENCE] = baseline["write"]["memberships_added"]
    answered = {WRITE_AUDIENCES[n]: phases[n]["statuses"].get("200", 0) for n in WRITE_AUDIENCES}
    problems = []
    conn = db.checker(run)
    try:
        cur = conn.cursor()
        m = "?" if db.engine == "sqlite" else "%s"
        for name, added in reported.items():
            aid = audiences[name]
            cur.execute(f"SELECT member_count FROM audiences_audience WHERE id = {m}", (aid,))
            stored = cur.fetchone()[0]
            cur.execute(
                f"SELECT COUNT(*) FROM audiences_membership WHERE audience_id = {m}", (aid,)
            )
            rows = cur.fetchone()[0]
            if not stored == rows == added:
                problems.append(
                    f"{name}: member_count {stored}, rows {rows}, answers said {added} added"
                )
            if name in answered:
                cur.execute(
                    f"SELECT COUNT(*) FROM audiences_operation WHERE audience_id = {m} "
                    "AND kind = 'api' AND status = 'succeeded'",
                    (aid,),
                )
                ops = cur.fetchone()[0]
                if ops != answered[name]:
                    problems.append(f"{name}: {ops} operations for {answered[name]} answers")
    finally:
        conn.close()
    return problems


def _api_run(
    db: AudiencesDb,
    spec: AudienceSpec,
    web: int,
    duration: float,
    baseline_duration: float,
    concurrency: int,
    log: Log,
) -> dict[str, Any]:
    run = db.clone("api")
    server = None
    try:
        names = [*WRITE_AUDIENCES.values(), BASELINE_AUDIENCE]
        _, made = _child(run, ["setup", "--audiences", *names], "api setup")
        plan_file = run.data_dir / "plan.json"
        write_plan(plan_file, spec, made["audiences"][BASELINE_AUDIENCE])
        baseline = _baseline(run, plan_file, baseline_duration, log, db.engine)
        server = Server(run, web, run.data_dir)
        server.start()
        log(f"[{db.engine}] api: tagbase serve --production --web {web} at {server.url}")
        phases = _load_phases(
            server,
            lambda: backend_pids(db, run),
            made["token"],
            plan_file,
            made["audiences"],
            duration,
            concurrency,
            db.engine,
            log,
        )
        peaks = server.peaks()
        server.stop()
        problems = check_writes(db, run, made["audiences"], phases, baseline)
        if problems:
            raise BenchError("the write phases left wrong memberships: " + "; ".join(problems))
        return {
            "baseline": baseline,
            "tagbase": phases,
            "server": peaks,
            "server_log_tail": server.tail()[-1000:],
        }
    finally:
        if server is not None:
            server.stop()
        db.drop(run)


# --- Summary and bars -------------------------------------------------------------------------


def _errors(phases: dict[str, Any]) -> dict[str, int]:
    total: dict[str, int] = {}
    for phase in phases.values():
        for kind, n in phase["problems"].items():
            total[kind] = total.get(kind, 0) + n
    return total


def bars(engine: str, spec: AudienceSpec, figures: dict[str, Any]) -> list[dict[str, Any]]:
    at_size = spec == BAR_SPEC
    t = figures["tagbase"]
    errors = _errors(t)

    def bar(name: str, limit: str, value: float, ok: bool) -> dict[str, Any]:
        return {
            "name": f"{engine} {name}",
            "bar": limit,
            "value": value,
            "pass": ok,
            "at_defined_size": at_size,
        }

    return [
        bar(
            "reads/s, closed loop",
            f">= {READ_RATE_BAR:g}",
            t["read_max"]["requests_per_s"],
            t["read_max"]["requests_per_s"] >= READ_RATE_BAR,
        ),
        bar(
            f"read p99 ms at {READ_RATE_BAR:g}/s",
            f"<= {READ_P99_BAR_MS:g}",
            t["read_rate"]["response_ms"]["p99"],
            t["read_rate"]["response_ms"]["p99"] <= READ_P99_BAR_MS
            and not t["read_rate"]["not_sent"],  # a p99 of the requests it kept up with only
        ),
        bar(
            "memberships/s, closed loop",
            f">= {WRITE_RATE_BAR:,.0f}",
            t["write_max"]["memberships_per_s"],
            t["write_max"]["memberships_per_s"] >= WRITE_RATE_BAR,
        ),
        bar(
            f"write p99 ms at {WRITE_RATE_BAR:,.0f}/s",
            f"<= {WRITE_P99_BAR_MS:g}",
            t["write_rate"]["response_ms"]["p99"],
            t["write_rate"]["response_ms"]["p99"] <= WRITE_P99_BAR_MS
            and not t["write_rate"]["not_sent"],
        ),
        bar("5xx, database is locked, broken connections", "0", sum(errors.values()), not errors),
    ]


def bench_api(
    engine: str,
    root: Path,
    spec: AudienceSpec,
    duration: float,
    web: int = 2,
    concurrency: int = 4,
    baseline_duration: float = 5.0,
    postgres_url: str = DEFAULT_POSTGRES_URL,
    log: Log = print,
    prepared: tuple[AudiencesDb, float] | None = None,
) -> dict[str, Any]:
    """Prepare (unless given a prepared template, which the caller then closes), run,
    summarize. Every database created here is dropped on the way out, whatever happens."""
    if duration <= 0 or baseline_duration <= 0:
        raise ValueError("--duration and --baseline-duration must be positive")
    if not 1 <= web <= 64 or concurrency < 1:
        raise ValueError(f"--web must be 1 to 64, --concurrency at least 1 ({web}, {concurrency})")
    if batches_available(spec.customers) < 1:
        raise ValueError(f"--customers must be at least 100 to write (got {spec.customers})")
    started = datetime.now(UTC)
    load_start = machine.load_average()
    warnings = [w for w in [machine.load_warning(load_start, "at start")] if w]
    own = prepared is None
    db, setup_s = prepared or prepare_audiences(engine, root, spec, postgres_url, log)
    try:
        info = db.server_info()
        if isinstance(db, PostgresBench) and (stale := db.stale_databases()):
            warnings.append(f"bench databases left by killed runs (drop them by hand): {stale}")
        figures = _api_run(db, spec, web, duration, baseline_duration, concurrency, log)
    finally:
        if own:
            db.close()
    load_end = machine.load_average()
    if warning := machine.load_warning(load_end, "at end"):
        warnings.append(warning)
    for name, phase in figures["tagbase"].items():
        if phase["not_sent"]:
            warnings.append(
                f"{name}: the server fell behind the schedule; {phase['not_sent']:,} requests "
                "due were never sent (the latency bar fails)"
            )
        if phase.get("ran_out_of_batches"):
            warnings.append(f"{name} ran out of new customers to add before its time was up")
    if errors := _errors(figures["tagbase"]):
        warnings.append(f"Tagbase failed requests under load: {errors}")
    b, t = figures["baseline"], figures["tagbase"]
    ratios = {
        "reads": round(t["read_max"]["requests_per_s"] / b["read"]["requests_per_s"], 4),
        "writes": round(t["write_max"]["memberships_per_s"] / b["write"]["memberships_per_s"], 4),
    }
    return {
        "benchmark": "api",
        "db": engine,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": {
            **spec.as_dict(),
            "duration_s": duration,
            "web_processes": web,
            "concurrency": concurrency,
            "baseline_duration_s": baseline_duration,
            "read_pairs": PAIRS,
        },
        "data": db.data,
        "machine": {**machine.describe(), **info},
        "load_average": {"start": load_start, "end": load_end},
        "setup_s": setup_s,
        "warnings": warnings,
        "summary": {"ratio_tagbase_closed_loop_to_baseline": ratios},
        "bars": bars(engine, spec, figures),
        **figures,
    }


# --- The table --------------------------------------------------------------------------------


def _row(label: str, f: dict[str, Any], key: str = "response_ms") -> str:
    ms = f[key]
    rate = f"{f['requests_per_s']:>9,.0f}"
    members = f"{f['memberships_per_s']:>11,.0f}" if f.get("memberships_added") else " " * 11
    cpu = ""
    if "server_cpu_ms_per_request" in f:
        cpu = f"  {f['server_cpu_ms_per_request']:>6.2f} {f['loader_cpu_ms_per_request']:>6.2f}" + (
            f"  not sent {f['not_sent']:,}" if f["not_sent"] else ""
        )
    return (
        f"  {label:<34} {rate} {members}  {ms['p50']:>7.1f} {ms['p95']:>7.1f} "
        f"{ms['p99']:>7.1f} {ms['max']:>8.1f}{cpu}"
    )


def api_table(result: dict[str, Any], saved: Path | None = None) -> str:
    p, m, b, t = result["params"], result["machine"], result["baseline"], result["tagbase"]
    lines = [
        "",
        f"== API benchmark: {result['db']}, {p['customers']:,} customers, {p['audiences']:,} "
        f"audiences, {p['memberships']:,} memberships; tagbase serve --production --web "
        f"{p['web_processes']}, loader on this machine, {p['duration_s']:g} s per phase",
        f"  machine: {m['nproc']} cores, {m['memory_mb']} MB, {m['cpu_model']}",
        f"  load average: start {report._load(result['load_average']['start'])}, "
        f"end {report._load(result['load_average']['end'])}",
        f"  {'':<34} {'req/s':>9} {'members/s':>11}  {'p50 ms':>7} {'p95':>7} {'p99':>7} "
        f"{'max':>8}  CPU ms/request: server loader",
        _row("baseline reads (1 process, SQL)", b["read"], "service_ms"),
        _row(f"tagbase reads at {READ_RATE_BAR:g}/s (open loop)", t["read_rate"]),
        _row(f"tagbase reads, {p['concurrency']} connections", t["read_max"]),
        _row("baseline writes (1 process, SQL)", b["write"], "service_ms"),
        _row(f"tagbase writes at {WRITE_RATE_BAR / 100:g}/s x 100 ids", t["write_rate"]),
        _row(f"tagbase writes, {p['concurrency']} connections", t["write_max"]),
        "  latency: Tagbase's from the moment each request was due (open loop) or sent (closed);",
        "  the baseline's per statement (read) or per committed batch of 100 (write)",
        "  server CPU = the web processes' (and PostgreSQL's backends') CPU per request: cores /",
        "  (server + loader) is what the throughput would be on this machine without other load",
        f"  web processes' peak RSS MB: {result['server']['peak_rss_mb']}",
        "  statuses: " + "; ".join(f"{n} {ph['statuses']}" for n, ph in t.items()),
        "  bars (quality.md §5):",
        *(report._verdict(x) for x in result["bars"]),
        *(f"  WARNING: {w}" for w in result["warnings"]),
    ]
    if saved:
        lines.append(f"  result: {saved}")
    return "\n".join(lines)
