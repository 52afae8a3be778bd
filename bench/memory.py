"""The memory bars: a 10M-line import on SQLite against a 1M-line one (quality.md §5)."""

from __future__ import annotations

from typing import Any

RSS_LIMIT_MB = 300
GROWTH_LIMIT = 1.2
WALL_LIMIT_S = 60


def compare(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS of Tagbase (median of its runs) at both sizes, the large import's wall time,
    and the verdicts. ``small`` and ``large`` are import results on SQLite."""
    small_rss = small["summary"]["tagbase"]["max_rss_mb_median"]
    large_rss = large["summary"]["tagbase"]["max_rss_mb_median"]
    large_wall = large["summary"]["tagbase"]["wall_s_median"]
    ratio = round(large_rss / small_rss, 3)
    bars = [
        {
            "name": "10M-line import peak RSS (MB)",
            "bar": f"<= {RSS_LIMIT_MB}",
            "value": large_rss,
            "pass": large_rss <= RSS_LIMIT_MB,
        },
        {
            "name": "peak RSS 10M / 1M",
            "bar": f"<= {GROWTH_LIMIT}",
            "value": ratio,
            "pass": ratio <= GROWTH_LIMIT,
        },
        {
            "name": "10M-line import wall time on SQLite (s)",
            "bar": f"<= {WALL_LIMIT_S}",
            "value": large_wall,
            "pass": large_wall <= WALL_LIMIT_S,
        },
    ]
    for bar in bars:
        bar["at_defined_size"] = large["params"]["lines"] == 10_000_000
    return {
        "benchmark": "import-memory",
        "db": "sqlite",
        "small_lines": small["params"]["lines"],
        "large_lines": large["params"]["lines"],
        "small_rss_mb": small_rss,
        "large_rss_mb": large_rss,
        "rss_ratio": ratio,
        "small_anon_mb": small["summary"]["tagbase"]["rss_anon_mb_median"],
        "small_file_mb": small["summary"]["tagbase"]["rss_file_mb_median"],
        "large_anon_mb": large["summary"]["tagbase"]["rss_anon_mb_median"],
        "large_file_mb": large["summary"]["tagbase"]["rss_file_mb_median"],
        "large_wall_s": large_wall,
        "large_baseline_wall_s": large["summary"]["baseline"]["wall_s_median"],
        "warnings": sorted(set(small["warnings"]) | set(large["warnings"])),
        "bars": bars,
        "machine": large["machine"],
        "load_average": {"small": small["load_average"], "large": large["load_average"]},
    }
