"""What the figures were measured on: the machine, the software, the load."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cores() -> int:
    """CPUs this process may run on (what `nproc` prints)."""
    return len(os.sched_getaffinity(0))


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def load_warning(load: list[float], when: str) -> str | None:
    """A warning when the 1-minute load is above the core count: other work is competing for
    the CPU and the figures are then unreliable."""
    if load[0] > cores():
        return (
            f"load average {when} {load[0]:.2f} is above the core count ({cores()}): other "
            "processes compete for the CPU; these figures are unreliable"
        )
    return None


def _proc_field(path: str, name: str) -> str | None:
    try:
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        return None
    return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def describe() -> dict[str, object]:
    """nproc, memory, CPU model, Python, SQLite (the library the children use: same Python),
    platform, git commit and whether tracked files differ from it."""
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "nproc": cores(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "memory_mb": int(mem_kb.split()[0]) // 1024 if mem_kb else None,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(dirty) if dirty is not None else None,
    }
