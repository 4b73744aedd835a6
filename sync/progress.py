"""A small progress line for long commands: done/total, rate and ETA, on stderr when it is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Redraws at most every ``interval`` seconds; silent when the stream is not a terminal."""

    def __init__(self, label: str, total: int | None = None, *, stream: TextIO | None = None, interval=0.2):
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._start_done: int | None = None

    def update(self, done: int, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < self.interval:
            return
        self._drawn_at = now
        if self._start_done is None:
            self._start_done = done  # a resumed run's rate counts this session's rows only
        elapsed = max(now - self.started, 1e-6)
        rate = (done - self._start_done) / elapsed
        line = f"{self.label} {done:,}"
        if self.total:
            share = min(done / self.total, 1.0)
            filled = int(share * 30)
            line = f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {share:4.0%} {done:,}/{self.total:,}"
            if rate > 0:
                line += f" ETA {_clock(max(self.total - done, 0) / rate)}"
        line += f" {rate:,.0f}/s"
        self.stream.write("\r" + line.ljust(100))
        self.stream.flush()

    def close(self, done: int) -> None:
        if self.enabled:
            self.update(done, force=True)
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
