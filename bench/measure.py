"""Running one benchmarked process: wall time and the peak RSS of exactly that child.

A trap: on Linux a child's ``ru_maxrss`` is at least the parent's own peak RSS, because exec
carries the old address space's high-water mark over (with vfork, which subprocess uses, the
old address space *is* the parent's). So ``ru_maxrss`` is the child's own peak only when it
is above the harness's peak; otherwise the child's own peak is the ``VmHWM`` of its
/proc status (reset at exec), sampled until it exits. The harness keeps itself small (the data
is generated in a separate process) so that the first, exact case is the usual one.
"""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Measured:
    """One child process: wall seconds, CPU seconds, peak resident set size, its output."""

    wall_s: float
    user_s: float
    sys_s: float
    max_rss_kb: int  # the child's own peak RSS (see the module docstring)
    peak_source: str  # "ru_maxrss" (exact) or "vm_hwm_sampled" (within one sampling interval)
    ru_maxrss_kb: int
    harness_peak_kb: int
    vm_hwm_kb: int  # the last VmHWM sampled
    anon_peak_kb: int  # sampled: see RssSampler
    file_peak_kb: int
    timeline: list[list[float]]  # [second, anon MB, file MB]: the peaks of each second
    returncode: int
    stdout: str
    stderr: str

    @property
    def max_rss_mb(self) -> float:
        return self.max_rss_kb / 1024


class RssSampler(threading.Thread):
    """Samples /proc/<pid>/status every ``interval`` seconds and keeps VmHWM and the largest RssAnon
    (the process's own memory) and RssFile (file pages mapped and touched: on SQLite mostly
    the database's mmap). ``ru_maxrss`` counts both; the split says which one grows. Samples
    can miss a spike shorter than the interval: these peaks are lower bounds."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.path = f"/proc/{pid}/status"
        self.interval = interval
        self.done = threading.Event()
        self.peaks = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
        self.started = time.perf_counter()
        self.seconds: dict[int, list[int]] = {}  # second -> [anon peak kB, file peak kB]

    def run(self) -> None:
        while True:
            self.sample()
            if self.done.wait(self.interval):
                return

    def sample(self) -> None:
        try:
            with open(self.path, encoding="ascii") as fh:
                text = fh.read()
        except OSError:  # the child has exited
            return
        now: dict[str, int] = {}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in self.peaks:
                now[key] = int(value.split()[0])
                self.peaks[key] = max(self.peaks[key], now[key])
        second = self.seconds.setdefault(int(time.perf_counter() - self.started), [0, 0])
        second[0] = max(second[0], now.get("RssAnon", 0))
        second[1] = max(second[1], now.get("RssFile", 0))

    def timeline(self) -> list[list[float]]:
        return [
            [t, round(anon / 1024, 1), round(file / 1024, 1)]
            for t, (anon, file) in sorted(self.seconds.items())
        ]


def run_measured(argv: Sequence[str], env: Mapping[str, str], cwd: str) -> Measured:
    """Run ``argv`` to completion and reap it with ``os.wait4``: ``ru_maxrss`` is then the peak
    RSS of that child alone (kilobytes on Linux), not of the harness or of earlier children.
    Output goes to temporary files, not pipes, so a chatty child can never block."""
    harness_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=err)
        sampler = RssSampler(proc.pid)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM): never leave the child running behind us.
            proc.kill()
            proc.wait()
            raise
        finally:
            sampler.done.set()
        wall = time.perf_counter() - started
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
        out.seek(0)
        err.seek(0)
        exact = usage.ru_maxrss > harness_peak
        return Measured(
            wall_s=wall,
            user_s=usage.ru_utime,
            sys_s=usage.ru_stime,
            max_rss_kb=usage.ru_maxrss if exact else sampler.peaks["VmHWM"],
            peak_source="ru_maxrss" if exact else "vm_hwm_sampled",
            ru_maxrss_kb=usage.ru_maxrss,
            harness_peak_kb=harness_peak,
            vm_hwm_kb=sampler.peaks["VmHWM"],
            anon_peak_kb=sampler.peaks["RssAnon"],
            file_peak_kb=sampler.peaks["RssFile"],
            timeline=sampler.timeline(),
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )
