"""Stage: draw each pool target's contrastive context kind, before any paraphrase is paid for.

Drawing the kinds first lets the paraphrase stage ask only for the targets that will use a
paraphrase (about ε of the pool) plus the test inputs, instead of the whole pool.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from schemas.config import ContextWeights
from stages.base import Artifacts, Stage, StageStats

KINDS = ("random", "similar", "near", "paraphrase")


class Plan(Stage):
    name = "plan"
    version = "1"

    def __init__(self, weights: ContextWeights, seed: int):
        self.weights, self.seed = weights, seed

    def params(self) -> dict[str, Any]:
        return {"weights": self.weights.model_dump(), "seed": self.seed}

    def run(self, inputs: dict[str, Artifacts], stats: StageStats) -> Artifacts:
        n = inputs["ingest"]["pool"].num_rows
        probs = np.array([getattr(self.weights, kind) for kind in KINDS], dtype=np.float64)
        rng = np.random.default_rng([self.seed, 21])
        kinds = rng.choice(len(KINDS), size=n, p=probs / probs.sum()).astype(np.int8)
        stats.rows_in = stats.rows_out = n
        stats.counters["drawn"] = {kind: int((kinds == i).sum()) for i, kind in enumerate(KINDS)}
        return Artifacts(kinds=kinds)
