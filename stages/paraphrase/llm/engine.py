"""The request engine shared by the API backends: batching, a worker pool, retries, the budget.

Each worker owns one batch from first request to last retry: it waits for a rate-limit slot,
calls the backend, hands every item the answer got right to the cache writer at once (committed
within ~20 ms), and asks again only for the items that were missing, short or malformed. Failures stay per item: after the
retries, an item gets a recorded reason, never an exception for the whole run. Only a fatal error
(bad key, unknown model, a request the server refuses as invalid) stops all workers, and what was
finished by then is already cached.
"""
from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from tqdm.auto import tqdm

from stages.paraphrase.llm.cache import AnswerCache, CacheWriter
from stages.paraphrase.llm.limiter import RateLimiter, backoff_seconds
from stages.paraphrase.llm.pricing import Price, estimate_output_tokens, estimate_tokens
from stages.paraphrase.llm.prompts import MalformedAnswer, PromptTemplate, parse_answer

log = logging.getLogger(__name__)


@dataclass
class Reply:
    text: str
    tokens_in: int | None = None  # None when the server reports no usage: estimated instead
    tokens_out: int | None = None


class CallFailed(Exception):
    """A request that did not return an answer. `reason` is a short category safe to record;
    `detail` is scrubbed of keys and only ever logged at debug level."""

    def __init__(self, reason: str, *, retryable: bool = True, fatal: bool = False,
                 retry_after: float | None = None, rate_limited: bool = False, detail: str = ""):
        super().__init__(reason)
        self.reason, self.retryable, self.fatal = reason, retryable, fatal
        self.retry_after, self.rate_limited, self.detail = retry_after, rate_limited, detail


@dataclass
class EngineSettings:
    concurrency: int = 8
    batch_size: int = 10
    max_retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0
    max_cost: float | None = None
    reasoning_effort: str | None = None
    progress: bool = True


@dataclass
class EngineResult:
    answers: dict[str, dict] = field(default_factory=dict)  # key -> cache record {"paraphrases": [...]}
    failures: dict[str, str] = field(default_factory=dict)  # key -> reason
    counters: dict = field(default_factory=dict)
    fatal: str | None = None


class RequestEngine:
    def __init__(self, call: Callable[[str], Reply], template: PromptTemplate, n: int,
                 cache: AnswerCache, limiter: RateLimiter, price: Price | None, settings: EngineSettings,
                 make_record: Callable[[str, list[str]], dict] = lambda source, values: {"paraphrases": values}):
        self.call, self.template, self.n, self.cache = call, template, n, cache
        self.make_record = make_record
        self.limiter, self.price, self.settings = limiter, price, settings
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rng = random.Random()
        self._spent = 0.0
        self._reserved = 0.0
        self.writer: CacheWriter | None = None  # started by run()
        self.result = EngineResult(counters={"requests": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0,
                                             "retries": 0, "request_errors": Counter()})

    def run(self, pending: list[tuple[str, str]]) -> EngineResult:
        """`pending` holds (cache key, source) pairs, none of them cached yet."""
        size = max(1, self.settings.batch_size)
        batches = [pending[i:i + size] for i in range(0, len(pending), size)]
        bar = tqdm(total=len(pending), desc="paraphrase", unit="item", disable=not self.settings.progress)
        self.writer = CacheWriter(self.cache)
        pool = ThreadPoolExecutor(max_workers=max(1, self.settings.concurrency))
        try:
            for _ in pool.map(lambda batch: self._work(batch, bar), batches):
                pass
        finally:
            self._stop.set()  # on Ctrl-C or an error, running workers wind down and queued ones never start
            pool.shutdown(wait=True, cancel_futures=True)
            self.writer.close()  # everything answered so far is committed before we return or raise
            bar.close()
        counters = self.result.counters
        counters["cost_usd"] = round(self._spent, 6)
        counters["request_errors"] = dict(sorted(counters["request_errors"].items()))
        return self.result

    def _work(self, batch: list[tuple[str, str]], bar) -> None:
        remaining, attempt = list(batch), 0
        while remaining:
            if self._stop.is_set():
                return self._fail(remaining, "budget" if self.result.fatal is None else "stopped", bar)
            sources = [source for _, source in remaining]
            prompt = self.template.render(sources, self.n)
            est_in = estimate_tokens(prompt)
            est_out = estimate_output_tokens(sources, self.n, self.settings.reasoning_effort)
            budgeted = self.price is not None and self.settings.max_cost is not None
            reserve = self.price.cost(est_in, est_out) if budgeted else 0.0
            if not self._reserve(reserve) or not self.limiter.acquire(est_in + est_out, self._stop):
                continue  # the loop head records the stop
            remaining, reasons, retryable, retry_after = self._attempt(remaining, prompt, reserve, est_in, bar)
            if not remaining:
                return
            attempt += 1
            if not retryable or attempt > self.settings.max_retries:
                return self._fail(remaining, reasons, bar)
            with self._lock:
                self.result.counters["retries"] += 1
            delay = backoff_seconds(attempt, self.settings.backoff, self.settings.backoff_max, self._rng, retry_after)
            self._stop.wait(delay)

    def _attempt(self, remaining, prompt, reserve, est_in, bar):
        """One request: (items still to do, why (one reason or one per key), whether asking again
        may help, retry-after)."""
        try:
            reply = self.call(prompt)
        except CallFailed as exc:
            self._book(reserve, 0, 0, [exc.reason])
            log.debug("paraphrase request failed: %s %s", exc.reason, exc.detail)
            if exc.rate_limited:
                self.limiter.cooldown(exc.retry_after if exc.retry_after is not None else self.settings.backoff)
            if exc.fatal:
                self._abort(exc.detail or exc.reason)
            return remaining, exc.reason, exc.retryable and not exc.fatal, exc.retry_after
        tokens_in = reply.tokens_in if reply.tokens_in is not None else est_in
        tokens_out = reply.tokens_out if reply.tokens_out is not None else estimate_tokens(reply.text or "")
        try:
            found, missing = parse_answer(self.template, reply.text, len(remaining), self.n)
        except MalformedAnswer:
            self._book(reserve, tokens_in, tokens_out, ["malformed response"])
            return remaining, "malformed response", True, None
        done = {remaining[i][0]: self.make_record(remaining[i][1], values) for i, values in found.items()}
        self.writer.put(done)
        self._book(reserve, tokens_in, tokens_out, set(missing.values()), done)
        bar.update(len(done))
        still = [remaining[i] for i in sorted(missing)]
        return still, {remaining[i][0]: reason for i, reason in missing.items()}, True, None

    def _reserve(self, cost: float) -> bool:
        """Book the estimated cost of the next request; False (and stop everyone) if it would
        take spending past max_cost."""
        limit = self.settings.max_cost
        if limit is None or self.price is None:
            return True
        with self._lock:
            if self._spent + self._reserved + cost > limit:
                self.result.counters["budget_exhausted"] = True
                self._stop.set()
                return False
            self._reserved += cost
            return True

    def _book(self, reserve: float, tokens_in: int, tokens_out: int, errors, done: dict | None = None) -> None:
        """All bookkeeping of one response under one lock acquisition (locks are costly when 32
        threads finish at once)."""
        actual = self.price.cost(tokens_in, tokens_out) if self.price else 0.0
        with self._lock:
            counters = self.result.counters
            self._reserved -= reserve
            self._spent += actual
            counters["requests"] += 1
            counters["tokens_in"] += tokens_in
            counters["tokens_out"] += tokens_out
            for reason in errors:
                counters["request_errors"][reason] += 1
            if done:
                self.result.answers.update(done)

    def _abort(self, message: str) -> None:
        with self._lock:
            if self.result.fatal is None:
                self.result.fatal = message
        self._stop.set()

    def _fail(self, items: list[tuple[str, str]], reason: str | dict[str, str], bar) -> None:
        with self._lock:
            for key, _ in items:
                self.result.failures[key] = reason if isinstance(reason, str) else reason[key]
        bar.update(len(items))
