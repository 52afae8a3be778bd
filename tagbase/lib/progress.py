"""A one-line progress bar on stderr for long CLI work, drawn only when stderr is a terminal.

Redirected output (a log file, a CI job, a test) stays clean: nothing is written at all.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30
_MIN_INTERVAL = 0.1  # seconds between redraws; drawing per row would cost more than the work


class Progress:
    """``with Progress("Receipts", total) as bar: bar.advance(n)``; ``total`` may be 0 (unknown)."""

    def __init__(self, label: str, total: int = 0, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(int(total), 0)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn_at = 0.0

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._draw()

    def close(self) -> None:
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False

    def render(self) -> str:
        """The line as it is drawn (without the carriage return)."""
        if not self.total:
            return f"{self.label}: {self.done:,}"
        share = min(self.done / self.total, 1.0)
        filled = int(share * _WIDTH)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        return f"{self.label:<14} [{bar}] {share:4.0%} {self.done:,}/{self.total:,}"

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < _MIN_INTERVAL:
            return
        self._drawn_at = now
        self.stream.write("\r" + self.render() + "\x1b[K")
        self.stream.flush()
