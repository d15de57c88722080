"""Stage: embeddings of every pool source, test input and paraphrase (one matrix each).

The cosines that the contexts record, the `near` sampling weights and the similar-regime τ filter
all come from these vectors. The embedder itself caches by content, so a changed paraphraser only
embeds the new paraphrases.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from stages.base import Artifacts, Stage, StageStats
from stages.scale import LocalEngine
from stages.text import retrieval_view


class Embed(Stage):
    name = "embed"
    version = "1"

    def __init__(self, embedder_factory: Callable[[], Any], identity: dict[str, Any], task_kind: str = "mt",
                 engine: Any = None):
        self.embedder_factory, self.identity, self.task_kind = embedder_factory, identity, task_kind
        self.engine = engine or LocalEngine()  # same vectors on any engine: not in the fingerprint

    def params(self) -> dict[str, Any]:
        # SQL tasks embed the question alone (`retrieval_view`); others the whole source
        return {"embedder": self.identity, **({"text": "question"} if self.task_kind == "sql" else {})}

    def run(self, inputs: dict[str, Artifacts], stats: StageStats) -> Artifacts:
        view = retrieval_view(self.task_kind)
        pool = [view(s) for s in inputs["ingest"]["pool"].column("source").to_pylist()]
        tests = [view(s) for s in inputs["ingest"]["tests"].column("source").to_pylist()]
        lists = inputs["paraphrase"]["paraphrases"].column("paraphrases").to_pylist()
        flat = [view(p) for found in lists for p in found]
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum([len(found) for found in lists], out=offsets[1:])
        embedder = self.embedder_factory()
        vectors = self.engine.embed(embedder, pool + tests + flat)
        stats.rows_in = stats.rows_out = len(vectors)
        stats.counters.update(getattr(embedder, "stats", {}))
        n_pool, n_test = len(pool), len(tests)
        return Artifacts(pool_emb=np.ascontiguousarray(vectors[:n_pool], dtype=np.float32),
                         test_emb=np.ascontiguousarray(vectors[n_pool:n_pool + n_test], dtype=np.float32),
                         para_emb=np.ascontiguousarray(vectors[n_pool + n_test:], dtype=np.float32),
                         para_offsets=offsets)
