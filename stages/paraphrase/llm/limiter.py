"""Pacing of requests: requests- and tokens-per-minute limits, a shared cooldown after a 429, and
the backoff between retries.

Rate limits are enforced by reserving a start time for each request under a lock (a virtual
schedule per limit, with one second of burst allowed), so threads never race past a limit.
After a 429 every worker waits out the cooldown, which keeps retries from storming a server that
just said it is overloaded.
"""
from __future__ import annotations

import email.utils
import random
import threading
import time
from typing import Callable, Mapping

BURST_SECONDS = 1.0  # how far ahead of the steady pace a burst may run


class _Schedule:
    """Virtual scheduling for one limit: `cost` units at `per_minute` units a minute."""

    def __init__(self, per_minute: float):
        self.interval = 60.0 / per_minute
        self.next_free = 0.0

    def reserve(self, now: float, cost: float) -> float:
        start = max(now, self.next_free - BURST_SECONDS)
        self.next_free = max(self.next_free, start) + cost * self.interval
        return start


class RateLimiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._rpm = _Schedule(rpm) if rpm else None
        self._tpm = _Schedule(tpm) if tpm else None
        self._cooldown_until = 0.0
        self.cooldowns = 0

    def acquire(self, tokens: int, stop: threading.Event) -> bool:
        """Wait for this request's slot; False if `stop` was set while waiting."""
        if self._rpm is None and self._tpm is None and self._cooldown_until <= self._clock():
            return not stop.is_set()  # unlimited and no cooldown: no lock to contend for
        with self._lock:
            now = self._clock()
            start = now
            if self._rpm:
                start = max(start, self._rpm.reserve(now, 1))
            if self._tpm:
                start = max(start, self._tpm.reserve(now, max(tokens, 1)))
        while True:
            wait = max(start, self._cooldown_until) - self._clock()
            if wait <= 0:
                return not stop.is_set()
            if stop.wait(wait):
                return False

    def cooldown(self, seconds: float) -> None:
        """Hold every worker back for `seconds` (a 429 applies to the whole account, not one thread)."""
        with self._lock:
            self._cooldown_until = max(self._cooldown_until, self._clock() + seconds)
            self.cooldowns += 1


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random,
                    retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (uniform in the upper half, so workers that failed together
    spread out); a server's Retry-After is a floor, never shortened."""
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    delay = rng.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    try:
        if "retry-after-ms" in lowered:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000.0)
        value = lowered.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value).timestamp()
            return max(0.0, when - (time.time() if now is None else now))
    except (TypeError, ValueError, OverflowError):
        return None
