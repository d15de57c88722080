"""What every LLM paraphrase backend shares: options, identity, readiness checks, the cache-first
paraphrase flow, the quality filter and the dry-run estimate.

Subclasses supply `_fetch` (how answers for uncached items are obtained); API backends get it
from `APIBackend`, which runs the request engine around one SDK call.
"""
from __future__ import annotations

import os
import re
import socket
from abc import abstractmethod
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from schemas.errors import UserError
from stages.paraphrase.base import BackendContext, ParaphraseBackend, ParaphraseOutput
from stages.paraphrase.llm.cache import AnswerCache, item_key, key_prefix
from stages.paraphrase.llm.engine import EngineResult
from stages.paraphrase.llm.options import parse_options
from stages.paraphrase.llm.pricing import (CHARS_PER_TOKEN, PRICES_AS_OF, estimate_output_tokens, estimate_tokens,
                                           price_for)
from stages.paraphrase.llm.prompts import load_template, parse_sql_source
from stages.paraphrase.slots import parse_request
from stages.paraphrase.quality import QUALITY_VERSION, filter_paraphrases, verdicts

FILTERED = "all paraphrases filtered"
DEFAULT_PROMPTS = {"sql": "sql", "semparse": "semparse"}  # task kind -> prompt; every other kind: mt
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_SECRET_PATTERNS = (re.compile(r"(?i)(bearer\s+)[^\s'\"]+"), re.compile(r"(?i)(key=)[^&\s'\"]+"),
                    re.compile(r"(?i)(api[-_]?key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"))


class LLMBackend(ParaphraseBackend):
    default_model: str | None = None
    default_batch_size = 10

    def __init__(self, options: dict[str, Any], context: BackendContext):
        super().__init__(options, context)
        self.opts = parse_options(self.name, self.options)
        self.template = load_template(self.opts.prompt or DEFAULT_PROMPTS.get(context.task_kind, "mt"))
        self._secret: str | None = None
        self._ready = False

    # ----- what decides the output -----
    @property
    def model(self) -> str:
        return self.opts.model or self.default_model or ""

    @property
    def batch_size(self) -> int:
        return max(1, self.opts.batch_size or self.default_batch_size)

    def generation_params(self) -> dict[str, Any]:
        return {"temperature": self.opts.temperature, "reasoning_effort": self.opts.reasoning_effort,
                "max_output_tokens": self.opts.max_output_tokens}

    def model_identity(self) -> str:
        return self.model

    def identity(self) -> dict[str, Any]:
        host = safe_host(self.opts.base_url) if self.opts.base_url else None
        return {"backend": self.name, "model": self.model_identity(), "prompt": self.template.name,
                "prompt_sha256": self.template.sha256, "params": self.generation_params(), "host": host,
                "quality": {"version": QUALITY_VERSION,
                            "cos_band": list(self.opts.cos_band) if self.opts.cos_band else None}}

    def _key_prefix(self, n: int) -> str:
        return key_prefix({"backend": self.name, "model": self.model_identity(), "prompt_text": self.template.text,
                           "params": self.generation_params(), "n": n})

    # ----- readiness -----
    def check_ready(self) -> None:
        if not self.model:
            raise UserError(f"paraphraser {self.name!r} needs a model: --paraphraser-option model=NAME")
        self._check_backend()
        self._ready = True

    @abstractmethod
    def _check_backend(self) -> None:
        """Backend-specific checks (key, SDK, server, model files); raise UserError on the first."""

    def _ensure_ready(self) -> None:
        if not self._ready:
            self.check_ready()

    def scrub(self, text: str) -> str:
        """Remove the key (and anything shaped like a credential) from text bound for logs or errors."""
        if self._secret:
            text = text.replace(self._secret, "***")
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(r"\1***", text)
        return text

    # ----- the run -----
    def paraphrase(self, sources: list[str], n: int) -> ParaphraseOutput:
        self._ensure_ready()
        self._check_sources(sources)
        prefix = self._key_prefix(n)
        keys = [item_key(prefix, source) for source in sources]
        with AnswerCache(self.context.cache_dir / "paraphrase") as cache:
            cached = cache.get_many(keys)
            pending = list({key: source for key, source in zip(keys, sources) if key not in cached}.items())
            fetched = self._fetch(pending, n, cache) if pending else EngineResult(counters={"requests": 0})
        if fetched.fatal:
            raise UserError(f"paraphraser {self.name!r}: {self.scrub(fetched.fatal)}; "
                            f"everything finished before this is cached")
        return self._assemble(sources, keys, cached, fetched, n)

    def make_record(self, source: str, paraphrases: list[str]) -> dict[str, Any]:
        """What the cache stores for an answered item: the raw paraphrases and their verdicts."""
        return {"paraphrases": paraphrases, "quality": QUALITY_VERSION,
                "verdicts": verdicts(source, paraphrases, self.template.name)}

    def _check_sources(self, sources: list[str]) -> None:
        """Refuse malformed inputs before the first request rather than inside a worker."""
        check = {"sql": parse_sql_source, "semparse": parse_request}.get(self.template.name)
        if check is not None:
            for source in dict.fromkeys(sources):
                check(source)

    def _assemble(self, sources: list[str], keys: list[str], cached: dict[str, dict], fetched: EngineResult,
                  n: int) -> ParaphraseOutput:
        raw, judged, reasons = [], [], []
        for key in keys:
            record = cached.get(key) or fetched.answers.get(key) or {}
            raw.append(list(record.get("paraphrases", [])))
            judged.append(record.get("verdicts") if record.get("quality") == QUALITY_VERSION else None)
            reasons.append(record.get("failure") if record else fetched.failures.get(key, "no answer"))
        kept, dropped = filter_paraphrases(sources, raw, n, prompt=self.template.name, embed=self.context.embed,
                                           cos_band=self.opts.cos_band, judged=judged)
        failures: Counter = Counter()
        retryable = 0
        for key, found, reason in zip(keys, kept, reasons):
            if not found:
                failures[reason or FILTERED] += 1
                retryable += key in fetched.failures
        counters = {"requests": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "retries": 0,
                    **fetched.counters}
        counters["cache_hits"] = sum(1 for key in keys if key in cached)
        counters["failures"] = sum(failures.values())
        counters["retryable_failures"] = retryable  # a rerun asks again for these (budget, errors)
        counters["budget_exhausted"] = bool(fetched.counters.get("budget_exhausted"))
        return ParaphraseOutput(paraphrases=kept, failures=failures, dropped=dropped, counters=counters)

    @abstractmethod
    def _fetch(self, pending: list[tuple[str, str]], n: int, cache: AnswerCache) -> EngineResult:
        """Obtain raw paraphrases for uncached (key, source) pairs, caching each as it arrives."""

    # ----- dry run -----
    def reasoning_effort_for_estimate(self) -> str | None:
        return self.opts.reasoning_effort

    def _todo(self, sources: list[str], n: int) -> tuple[list[str], list[str]]:
        """(distinct sources, those not cached yet), reading the cache without creating it."""
        prefix = self._key_prefix(n)
        unique = list(dict.fromkeys(sources))
        folder = self.context.cache_dir / "paraphrase"
        cached: dict = {}
        if (folder / "answers.sqlite").exists():
            with AnswerCache(folder) as cache:
                cached = cache.get_many(item_key(prefix, s) for s in unique)
        return unique, [s for s in unique if item_key(prefix, s) not in cached]

    def estimate(self, sources: list[str], n: int) -> dict[str, Any]:
        """Tokens and cost of what a run would still ask for (cached items are free); no request."""
        self._check_sources(sources)
        unique, todo = self._todo(sources, n)
        batches = [todo[i:i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
        tokens_in = sum(estimate_tokens(self.template.render(batch, n)) for batch in batches)
        tokens_out = sum(estimate_output_tokens(batch, n, self.reasoning_effort_for_estimate()) for batch in batches)
        price = self.price()
        return {"items": len(unique), "cached_items": len(unique) - len(todo), "requests": len(batches),
                "tokens_in": tokens_in, "tokens_out": tokens_out,
                "cost_usd": round(price.cost(tokens_in, tokens_out), 4) if price else None,
                "price_usd_per_mtok": [price.input_per_mtok, price.output_per_mtok] if price else None,
                "note": f"estimate: ~{CHARS_PER_TOKEN:g} characters per token, list prices as of {PRICES_AS_OF}"}

    def price(self):
        return price_for(self.model, self.opts.price_in, self.opts.price_out)


def read_key(variables: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(value, name of the variable it came from) for the first variable that is set."""
    for name in variables:
        value = os.environ.get(name, "").strip()
        if value:
            return value, name
    return None, None


def check_reachable(url: str, timeout: float = 5.0) -> None:
    """A TCP connect to the server (no request, nothing billed); skipped behind a proxy."""
    if any(os.environ.get(name) for name in _PROXY_VARS):
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"base_url {safe_host(url) or 'given'} is not an http(s) URL; give e.g. http://localhost:8000/v1")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except (OSError, ValueError):
        raise UserError(f"cannot reach {parts.scheme}://{safe_host(url)}: start the server or fix --base-url") from None


def safe_host(url: str) -> str:
    """host[:port] of a URL, without any user:password@ part it may carry."""
    try:
        parts = urlsplit(url)
        return (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return ""
