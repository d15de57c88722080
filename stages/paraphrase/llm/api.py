"""The shared part of the HTTP API backends: key and server checks, the engine around one SDK call,
and the translation of SDK exceptions into recordable, key-free failure categories.

SDK retries are switched off (our engine retries, so every retry is counted and paced).
"""
from __future__ import annotations

import importlib
from abc import abstractmethod
from typing import Any

from schemas.errors import UserError
from stages.paraphrase.llm.backend import LLMBackend, check_reachable, read_key
from stages.paraphrase.llm.cache import AnswerCache
from stages.paraphrase.llm.engine import (CallFailed, EngineResult, EngineSettings, Reply, RequestEngine)
from stages.paraphrase.llm.limiter import RateLimiter

PLACEHOLDER_KEY = "EMPTY"  # what self-hosted OpenAI-compatible servers accept when they need no key
_RETRYABLE_STATUS = {408, 409, 425}


class APIBackend(LLMBackend):
    key_vars: tuple[str, ...] = ()
    sdk_module = ""
    default_endpoint = ""
    key_optional_with_base_url = False
    _key_var: str | None = None

    def _check_backend(self) -> None:
        try:
            importlib.import_module(self.sdk_module)
        except ImportError:
            raise UserError(f"paraphraser {self.name!r} needs the {self.sdk_module!r} package: "
                            f"pip install 'ictrain[llm]'") from None
        self._read_key()
        if self.opts.max_cost is not None and self.price() is None:
            raise UserError(f"--max-cost needs a price for model {self.model!r}: set --paraphraser-option "
                            f"price_in=USD and price_out=USD (per 1M tokens)")
        self._check_params()
        check_reachable(self.opts.base_url or self.default_endpoint, timeout=min(self.opts.timeout, 10.0))

    def _read_key(self) -> None:
        variables = (self.opts.api_key_env,) if self.opts.api_key_env else self.key_vars
        key, name = read_key(variables)
        if key is None and self.opts.base_url and self.key_optional_with_base_url:
            key, name = PLACEHOLDER_KEY, None
        if key is None:
            raise UserError(f"paraphraser {self.name!r}: set {' or '.join(variables)} to your API key "
                            f"(or name another variable with --paraphraser-option api_key_env=NAME)")
        self._secret, self._key_var = key, name

    def _check_params(self) -> None:
        """Reject option combinations the API would refuse on every request."""

    @abstractmethod
    def _make_client(self) -> Any:
        """An SDK client with its own retries off and the timeout set."""

    @abstractmethod
    def _call(self, client: Any, prompt: str) -> Reply:
        """One request; raise whatever the SDK raises."""

    @abstractmethod
    def _classify(self, exc: Exception) -> CallFailed:
        """Turn an SDK exception into a failure category (see `classify_status`)."""

    def _fetch(self, pending: list[tuple[str, str]], n: int, cache: AnswerCache) -> EngineResult:
        client = self._make_client()

        def call(prompt: str) -> Reply:
            try:
                return self._call(client, prompt)
            except CallFailed:
                raise
            except Exception as exc:  # every SDK failure becomes a per-item category
                raise self._classify(exc) from None

        settings = EngineSettings(concurrency=self.opts.concurrency or 1, batch_size=self.batch_size,
                                  max_retries=self.opts.max_retries, backoff=self.opts.backoff,
                                  backoff_max=self.opts.backoff_max, max_cost=self.opts.max_cost,
                                  reasoning_effort=self.reasoning_effort_for_estimate(),
                                  progress=self.context.progress)
        engine = RequestEngine(call, self.template, n, cache, RateLimiter(self.opts.rpm, self.opts.tpm),
                               self.price(), settings, make_record=self.make_record)
        try:
            return engine.run(pending)
        finally:
            close = getattr(client, "close", None)
            if callable(close):
                close()

    def classify_status(self, status: int, retry_after: float | None, detail: str) -> CallFailed:
        detail = self.scrub(detail)[:300]
        if status == 429:
            return CallFailed("rate limited (429)", rate_limited=True, retry_after=retry_after, detail=detail)
        if status >= 500 or status in _RETRYABLE_STATUS:
            return CallFailed(f"server error ({status})", retry_after=retry_after, detail=detail)
        if status in (401, 403):
            where = f"check {self._key_var}" if self._key_var else "set an API key"
            return CallFailed(f"key refused ({status})", fatal=True,
                              detail=f"the server refused the API key ({status}): {where}")
        if status == 404:
            return CallFailed("not found (404)", fatal=True,
                              detail=f"model {self.model!r} or the endpoint was not found (404): check the model "
                                     f"name and --base-url")
        return CallFailed(f"request refused ({status})", fatal=True,
                          detail=f"the server refused the request ({status}): {detail}")


def classify_transport(exc: Exception) -> CallFailed:
    """Timeouts and network failures, recognised by class name so that it works whichever HTTP
    library (httpx, httpx2, aiohttp) the SDK was built on."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"TimeoutException", "TimeoutError", "APITimeoutError", "ReadTimeout", "ConnectTimeout"}:
        return CallFailed("timeout", detail=type(exc).__name__)
    if names & {"TransportError", "NetworkError", "ProtocolError", "ConnectionError", "APIConnectionError",
                "ClientConnectionError", "ServerDisconnectedError", "OSError"}:
        return CallFailed("connection error", detail=type(exc).__name__)
    return CallFailed(f"unexpected error ({type(exc).__name__})", detail=type(exc).__name__)
