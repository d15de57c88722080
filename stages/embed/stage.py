"""Stage: embeddings of every pool source, test input and paraphrase (one matrix each).

The cosines that the contexts record, the `near` sampling weights and the similar-regime τ filter
all come from these vectors. The embedder itself caches by content, so a changed paraphraser only
embeds the new paraphrases.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from stages.base import Artifacts, Stage, StageStats


class Embed(Stage):
    name = "embed"
    version = "1"

    def __init__(self, embedder_factory: Callable[[], Any], identity: dict[str, Any]):
        self.embedder_factory, self.identity = embedder_factory, identity

    def params(self) -> dict[str, Any]:
        return {"embedder": self.identity}

    def run(self, inputs: dict[str, Artifacts], stats: StageStats) -> Artifacts:
        pool = inputs["ingest"]["pool"].column("source").to_pylist()
        tests = inputs["ingest"]["tests"].column("source").to_pylist()
        lists = inputs["paraphrase"]["paraphrases"].column("paraphrases").to_pylist()
        flat = [p for found in lists for p in found]
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum([len(found) for found in lists], out=offsets[1:])
        embedder = self.embedder_factory()
        vectors = embedder.embed(pool + tests + flat)
        stats.rows_in = stats.rows_out = len(vectors)
        stats.counters.update(getattr(embedder, "stats", {}))
        n_pool, n_test = len(pool), len(tests)
        return Artifacts(pool_emb=np.ascontiguousarray(vectors[:n_pool], dtype=np.float32),
                         test_emb=np.ascontiguousarray(vectors[n_pool:n_pool + n_test], dtype=np.float32),
                         para_emb=np.ascontiguousarray(vectors[n_pool + n_test:], dtype=np.float32),
                         para_offsets=offsets)
