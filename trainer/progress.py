"""What the trainer scripts print while they work: status lines and progress with an ETA.

On a terminal, progress is a tqdm bar. When stderr is a file or a pipe (a log, a batch job), a bar
would fill the log with carriage returns, so progress becomes one plain line at every 10% instead:
`generating: 8/16 (50%), 0:00:04 elapsed, ~0:00:04 left`. Everything goes to stderr, so stdout
keeps only results.
"""
from __future__ import annotations

import math
import sys
import time
from datetime import timedelta
from typing import TextIO


def say(message: str) -> None:
    """One status line on stderr, flushed at once so it shows before a long silent step."""
    print(message, file=sys.stderr, flush=True)


def on_terminal(stream: TextIO | None = None) -> bool:
    """Whether progress should be drawn as a bar (stderr, or `stream`, is a terminal)."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class Progress:
    """Progress of `total` units: a tqdm bar on a terminal, else a line at every `every` share."""

    def __init__(self, total: int, label: str, unit: str = "it", every: float = 0.1,
                 stream: TextIO | None = None, bar: bool | None = None):
        self.total, self.label, self.every = max(int(total), 0), label, every
        self.stream = stream or sys.stderr
        self.done, self.started, self.next_line = 0, time.perf_counter(), 1
        self.bar = None
        if on_terminal(self.stream) if bar is None else bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=label, unit=unit, file=self.stream, leave=False)

    def update(self, n: int = 1) -> None:
        self.advance_to(self.done + n)

    def advance_to(self, done: int, note: str = "") -> None:
        """Record `done` units finished; print a line at each `every` share crossed."""
        step, self.done = done - self.done, min(done, self.total)
        if self.bar is not None:
            self.bar.update(step)
            if note:
                self.bar.set_postfix_str(note, refresh=False)
            return
        crossed = False
        while self.next_line <= self.lines and self.done >= self._threshold(self.next_line):
            self.next_line, crossed = self.next_line + 1, True
        if crossed:
            self._line(note)

    @property
    def lines(self) -> int:
        """How many lines a full run prints (10 at every=0.1)."""
        return max(1, round(1 / self.every)) if self.total else 0

    def _threshold(self, line: int) -> int:
        return math.ceil(self.total * line / self.lines)

    def _line(self, note: str) -> None:
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        extra = f", {note}" if note else ""
        print(f"{self.label}: {self.done}/{self.total} ({self.done / self.total:.0%}), "
              f"{_clock(elapsed)} elapsed, ~{_clock(left)} left{extra}",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
