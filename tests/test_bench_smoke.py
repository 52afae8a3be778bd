"""Keeps the benchmark harness (bench/) from rotting. Not a benchmark: tiny sizes, no figures
judged — only that the harness runs, measures both sides and refuses wrong results."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from bench.baseline_import import SQLITE_PRAGMAS
from bench.datagen import INVALID_VALUES, write_import_file
from bench.import_bench import check_tagbase_report, expected_report
from bench.measure import run_measured

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_benchmark_runs_on_sqlite_and_reports_tagbase_and_the_baseline(tmp_path):
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "import", "--db", "sqlite", "--lines", "2000"),
            *("--customers", "2000", "--runs", "1", "--json", "--out", str(tmp_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    output = json.loads(done.stdout)
    [result] = output["results"]
    assert result["db"] == "sqlite"
    assert [r["kind"] for r in result["runs"]] == ["baseline", "tagbase"]
    for kind in ("baseline", "tagbase"):
        summary = result["summary"][kind]
        assert summary["lines_per_s_median"] > 0
        assert summary["max_rss_mb_median"] > 0
    assert result["runs"][1]["report"]["added"] == 1600
    assert result["summary"]["ratio"] > 0
    [saved] = output["files"]
    assert json.loads(Path(saved).read_text())["summary"] == result["summary"]


def _correct_report(spec):
    return {"status": "succeeded_with_rejections", **expected_report(spec)}


def test_a_report_that_differs_from_the_expected_outcome_is_refused(tmp_path):
    spec = write_import_file(tmp_path / "f.csv", 100, 100, seed=3)
    assert check_tagbase_report(_correct_report(spec), spec) == []
    wrong = {**_correct_report(spec), "added": spec.known - 1}
    problems = check_tagbase_report(wrong, spec)
    assert any("accounting identity" in p for p in problems)
    assert any(p.startswith("added") for p in problems)
    moved = {**_correct_report(spec), "added": spec.known - 1, "not_found": spec.unknown + 1}
    assert sorted(check_tagbase_report(moved, spec)) == [
        "added = 79, expected 80",
        "not_found = 7, expected 6",
    ]


def _values(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line[:-1] if line[-1:] in (";", ".") else line for line in lines]


def test_the_generated_file_holds_exactly_the_announced_mix(tmp_path):
    spec = write_import_file(tmp_path / "f.csv", 3000, 5000, seed=7)
    values = _values(tmp_path / "f.csv")
    assert len(values) == spec.lines == 3000
    assert sum(v in INVALID_VALUES for v in values) == spec.invalid
    numbers = [int(v) for v in values if v not in INVALID_VALUES]
    assert numbers[0] <= spec.customers, "the first line is a known id"
    assert sum(n > spec.customers for n in numbers) == spec.unknown
    assert len(set(numbers)) == len(numbers) - spec.duplicate
    assert len({n for n in numbers if n <= spec.customers}) == spec.known == 2400
    assert (spec.unknown, spec.duplicate, spec.invalid) == (200, 200, 200)


def test_the_generated_file_depends_only_on_the_seed(tmp_path):
    write_import_file(tmp_path / "a.csv", 500, 500, seed=11)
    write_import_file(tmp_path / "b.csv", 500, 500, seed=11)
    write_import_file(tmp_path / "c.csv", 500, 500, seed=12)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


def test_the_baseline_uses_the_sqlite_settings_tagbase_uses():
    settings_source = (ROOT / "tagbase" / "settings.py").read_text(encoding="utf-8")
    tagbase_pragmas = re.findall(r'"(PRAGMA [^;"]+);"', settings_source)
    assert tagbase_pragmas, "no PRAGMA found in tagbase/settings.py: update this test"
    assert list(SQLITE_PRAGMAS) == tagbase_pragmas


def test_a_small_child_started_by_a_big_harness_is_measured_small():
    # exec carries the parent's peak RSS over into the child's ru_maxrss: a harness that has
    # been big must not make a small child look big.
    ballast = b"x" * (200 << 20)
    measured = run_measured([sys.executable, "-c", "pass"], {}, str(ROOT))
    del ballast
    assert measured.returncode == 0
    assert 0 < measured.max_rss_kb < 100 << 10, measured
