"""Terminal tables and result files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def save(result: dict[str, Any], out_dir: Path, prefix: str) -> Path:
    """Write ``<prefix>-<UTC timestamp>.json``; never overwrite an earlier result."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{prefix}-{stamp}.json"
    n = 1
    while path.exists():
        n += 1
        path = out_dir / f"{prefix}-{stamp}-{n}.json"
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _verdict(bar: dict[str, Any]) -> str:
    mark = "PASS" if bar["pass"] else "FAIL"
    value = bar["value"]
    shown = f"{value:,}" if isinstance(value, int) else f"{value}"
    note = (
        ""
        if bar.get("at_defined_size", True)
        else "  (indicative: not the size the bar is defined for)"
    )
    return f"  {bar['name']:<44} {bar['bar']:>12}  {mark}  ({shown}){note}"


def _load(load: list[float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def _row(label: str, s: dict[str, Any]) -> str:
    wall = f"{s['wall_s_median']:.2f} [{s['wall_s_min']:.2f}-{s['wall_s_max']:.2f}]"
    rate = f"{s['lines_per_s_median']:,} [{s['lines_per_s_min']:,}-{s['lines_per_s_max']:,}]"
    rss = f"{s['max_rss_mb_median']:.0f} [{s['max_rss_mb_max']:.0f}]"
    rss += f" ({s['rss_anon_mb_median']:.0f} / {s['rss_file_mb_median']:.0f})"
    return f"  {label:<9} {wall:<24} {rate:<32} {rss}"


def import_table(result: dict[str, Any], saved: Path | None = None) -> str:
    f, s, m = result["file"], result["summary"], result["machine"]
    lines = [
        "",
        f"== Import benchmark: {result['db']}, {f['lines']:,} lines ({f['known']:,} known, "
        f"{f['unknown']:,} unknown, {f['duplicate']:,} duplicate, {f['invalid']:,} invalid), "
        f"{f['customers']:,} customers, {result['params']['runs']} run(s) each",
        f"  machine: {m['nproc']} cores, {m['memory_mb']} MB, {m['cpu_model']}",
        f"  load average: start {_load(result['load_average']['start'])}, "
        f"end {_load(result['load_average']['end'])}",
        f"  {'':<9} {'wall s median [min-max]':<24} {'lines/s median [min-max]':<32} "
        "peak RSS MB median [max] (anon / file)",
        _row("baseline", s["baseline"]),
        _row("tagbase", s["tagbase"]),
        *(
            f"  {kind} steps, median s: "
            + ", ".join(f"{k} {v:.2f}" for k, v in s[kind]["step_s_median"].items())
            for kind in ("baseline", "tagbase")
        ),
        f"  ratio tagbase/baseline (lines/s): {s['ratio']:.3f}",
        "  bars (quality.md §5):",
        *(_verdict(b) for b in result["bars"]),
        *(f"  WARNING: {w}" for w in result["warnings"]),
    ]
    if saved:
        lines.append(f"  result: {saved}")
    return "\n".join(lines)


def memory_table(result: dict[str, Any], saved: Path | None = None) -> str:
    lines = [
        "",
        f"== Memory: SQLite import of {result['large_lines']:,} vs {result['small_lines']:,} lines",
        f"  peak RSS: {result['small_rss_mb']:.0f} MB ({result['small_lines']:,} lines), "
        f"{result['large_rss_mb']:.0f} MB ({result['large_lines']:,} lines), "
        f"ratio {result['rss_ratio']:.2f}",
        f"  of which sampled anon / file-backed: {result['small_anon_mb']:.0f} / "
        f"{result['small_file_mb']:.0f} MB and {result['large_anon_mb']:.0f} / "
        f"{result['large_file_mb']:.0f} MB",
        f"  wall time of the {result['large_lines']:,}-line import: {result['large_wall_s']:.1f} s "
        f"(baseline {result['large_baseline_wall_s']:.1f} s)",
        "  bars (quality.md §5):",
        *(_verdict(b) for b in result["bars"]),
        *(f"  WARNING: {w}" for w in result["warnings"]),
    ]
    if saved:
        lines.append(f"  result: {saved}")
    return "\n".join(lines)
