"""Wires a resolved config to concrete stages, embedder and paraphrase backend.

The embedder and the backend are built lazily: a fully cached rebuild never loads a model or
touches an API, and identities are computed from explicit values only.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pipeline.preflight import overrides, source_access
from schemas.config import BuildConfig, RunOptions
from stages.assemble.stage import Assemble
from stages.base import StageResult, StageSpec
from stages.embed.stage import Embed
from stages.ingest.stage import Ingest
from stages.paraphrase.base import BackendContext, ParaphraseBackend, make_backend
from stages.paraphrase.stage import Paraphrase, backend_requests, sources_to_paraphrase
from stages.plan import Plan
from stages.retrieve.stage import Retrieve


class Components:
    def __init__(self, config: BuildConfig, options: RunOptions, cache_root: Path,
                 databases: dict[str, Path] | None = None):
        self.config, self.options, self.cache_root = config, options, cache_root
        self.sql = None
        if config.task.kind == "sql":
            from stages.sql.databases import SqlDatabases

            self.sql = SqlDatabases(databases or {})

    def _make_embedder(self, progress: bool):
        return self._embedder_factory(progress)()

    def _embedder_factory(self, progress: bool):
        """A picklable maker of the embedder: what Ray workers call to load their own copy. Paths go
        in absolute: a worker of a joined cluster runs in another working directory."""
        from stages.embed.models import make_embedder

        spec = self.config.task.embedder
        model = Path(spec.model).expanduser()
        if spec.model != "default" and model.is_dir():
            spec = spec.model_copy(update={"model": str(model.absolute())})  # not resolve(): the identity
            # records the folder's name, and a symlinked folder must keep the name it was given
        return functools.partial(make_embedder, spec, device=self.options.device,
                                 batch_size=self.options.batch_size, progress=progress,
                                 fast=not self.options.exact_embeddings,
                                 model_cache=(self.cache_root / "embeddings").resolve())

    def plain_embedder(self):
        """The embedder without the on-disk cache: what a server embeds (each request's input)
        would only grow the cache."""
        return self._make_embedder(progress=False)

    @functools.cached_property
    def embedder(self):
        inner = self._make_embedder(self.options.progress)
        if self.config.task.embedder.kind != "sentence-transformers":
            return inner  # symbol embedders cost microseconds a text: a cache would cost more
        from stages.embed.cache import CachedEmbedder

        return CachedEmbedder(inner, self.cache_root / "embeddings", factory=self._embedder_factory(False))

    @functools.cached_property
    def embedder_identity(self) -> dict[str, Any]:
        """Cheap: the embedder loads its model only on the first `embed`."""
        return self._make_embedder(progress=False).identity()

    @functools.cached_property
    def backend(self) -> ParaphraseBackend:
        task = self.config.task
        context = BackendContext(task_kind=task.kind, source_lang=task.source_lang, target_lang=task.target_lang,
                                 cache_dir=self.cache_root, device=self.options.device,
                                 progress=self.options.progress, embed=lambda texts: self.embedder.embed(texts),
                                 sql=self.sql)
        return make_backend(self.config.paraphraser, self.config.paraphraser_options, context)

    @functools.cached_property
    def backend_identity(self) -> dict[str, Any]:
        return self.backend.identity()  # the `file` backend hashes its file: do it once

    def identities(self) -> dict[str, Any]:
        return {"embedder": self.embedder_identity, "paraphraser": self.backend_identity}

    def check_paraphraser(self) -> None:
        self.backend.check_ready()

    def estimate(self, results: dict[str, StageResult]) -> dict[str, Any]:
        artifacts = {name: r.artifacts for name, r in results.items()}
        kind = self.config.task.kind
        sources = backend_requests(artifacts, sources_to_paraphrase(artifacts, kind), kind)
        estimate = getattr(self.backend, "estimate", None)
        figures = estimate(sources, self.config.n_paraphrases) if estimate else {"requests": 0, "cost_usd": 0.0}
        return {"paraphraser": self.config.paraphraser, "sources": len(sources), **figures}


def make_specs(config: BuildConfig, options: RunOptions, cache_root: Path, extra: dict[str, str],
               databases: dict[str, Path] | None = None, engine: Any = None):
    """The stages in run order; `extra` fingerprints the input files (and an SQL task's databases),
    which only ingest reads directly: every later stage is keyed on them through ingest. `engine`
    (`stages.scale`) runs retrieve's top-k and embed's model; no fingerprint depends on it."""
    parts = Components(config, options, cache_root, databases)
    kind = config.task.kind
    validator = parts.sql.validator if parts.sql else None
    specs = [
        StageSpec(Ingest(config.task, config.seed, overrides(options), source_access(options, cache_root),
                         scratch_dir=cache_root), (), extra),
        StageSpec(Plan(config.weights, config.seed), ("ingest",)),
        StageSpec(Retrieve(max(config.m, config.k), config.k, config.task.retrieval_tokens, options.progress,
                            options.device, kind, engine), ("ingest",)),
        StageSpec(Paraphrase(lambda: parts.backend, parts.backend_identity, config.n_paraphrases,
                             parts.embedder_identity, bool(config.paraphraser_options.get("accept_failures")),
                             kind, validator),
                  ("ingest", "plan")),
        StageSpec(Embed(lambda: parts.embedder, parts.embedder_identity, kind, engine), ("ingest", "paraphrase")),
        StageSpec(Assemble(config, parts.sql), ("ingest", "retrieve", "plan", "paraphrase", "embed")),
    ]
    return specs, parts
