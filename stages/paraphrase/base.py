"""The paraphrase backend interface: every backend, offline or LLM, slots in behind it.

A backend turns sources into lists of label-preserving paraphrases. Failures are per item (an
empty list plus a reason), never an exception for the whole batch, so one bad item costs one
item. `identity()` names everything that decides the output (model, prompt text, generation
parameters): it keys the stage cache, and LLM backends also key their per-request cache with it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# Embeds a list of texts into L2-normalised float32 rows (the build's embedder, cached by content).
EmbedFn = Callable[[list[str]], "Any"]


@dataclass
class BackendContext:
    """What the build hands a backend; backends read nothing else from the environment except
    their API key variables, read once in `check_ready`."""

    task_kind: str  # "mt" | "synthetic" | "sql" | "semparse" (sources are `slots.encode_request`s)
    source_lang: str | None
    target_lang: str | None
    cache_dir: Path
    device: str = "cpu"
    progress: bool = True
    embed: EmbedFn | None = None
    sql: Any = None  # SQL tasks: the build's `stages.sql.databases.SqlDatabases` (paths, schemas, validator)


@dataclass
class ParaphraseOutput:
    paraphrases: list[list[str]]  # aligned with the sources; [] where the item failed
    failures: Counter = field(default_factory=Counter)  # reason -> items
    dropped: Counter = field(default_factory=Counter)  # quality-filter reason -> paraphrases
    counters: dict[str, Any] = field(default_factory=dict)  # requests, tokens, cost, retries...


class ParaphraseBackend(ABC):
    name: str = ""

    def __init__(self, options: dict[str, Any], context: BackendContext):
        self.options = dict(options)
        self.context = context

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Explicit values that decide the output; no secrets."""

    def check_ready(self) -> None:
        """Raise `UserError` before any work if the backend cannot run (missing key, bad URL)."""

    @abstractmethod
    def paraphrase(self, sources: list[str], n: int) -> ParaphraseOutput:
        """Up to `n` paraphrases per source, each keeping the source's label."""


_REGISTRY: dict[str, type[ParaphraseBackend]] = {}


def register(cls: type[ParaphraseBackend]) -> type[ParaphraseBackend]:
    _REGISTRY[cls.name] = cls
    return cls


def backend_names() -> list[str]:
    _load_builtin_backends()
    return sorted(_REGISTRY)


def key_variables(name: str, options: dict[str, Any]) -> tuple[str, ...]:
    """The environment variables one of which must hold an API key for backend `name` run with
    `options`; () when it needs no key (offline backends, a self-hosted `base_url`). The caller
    reads the environment: backends read their key only in `check_ready`."""
    _load_builtin_backends()
    cls = _REGISTRY.get(name)
    variables = tuple(getattr(cls, "key_vars", ()) or ())
    if not variables or (options.get("base_url") and getattr(cls, "key_optional_with_base_url", False)):
        return ()
    return (str(options["api_key_env"]),) if options.get("api_key_env") else variables


def make_backend(name: str, options: dict[str, Any], context: BackendContext) -> ParaphraseBackend:
    from schemas.errors import UserError

    _load_builtin_backends()
    if name not in _REGISTRY:
        raise UserError(f"unknown paraphraser {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](options, context)


def _load_builtin_backends() -> None:
    """Import the modules that register backends; LLM ones only register if their SDK imports."""
    from stages.paraphrase import offline, sqlvalues  # noqa: F401

    try:
        from stages.paraphrase import llm  # noqa: F401
    except ImportError:
        pass
