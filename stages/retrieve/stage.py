"""Stage 2: exact BM25 candidates for every pool target and every test input.

Each pool target gets its top-M pool neighbours, never one whose normalised source equals its own
(the leakage guard by content); each test input gets its top-M pool neighbours likewise. The
`similar` regime, the `near` kind and the `topk`/`one_near` eval contexts all read these lists.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from schemas.errors import UserError
from stages.base import Artifacts, Stage, StageStats
from stages.retrieve.bm25 import BM25Index, tokenize_many
from stages.embed.symbols import symbol_run_features
from stages.scale import LocalEngine
from stages.text import normalize_text, retrieval_view


def retrieval_tokenizer(kind: str, task_kind: str = "mt") -> Callable[[list[str]], list[list[str]]]:
    """BM25 terms for a task: `words` (the documented tokenizer) or align-synth's symbol runs, of
    the text `retrieval_view` keeps (an SQL task's question, any other task's source)."""
    view = retrieval_view(task_kind)
    if kind == "symbol-runs":
        return lambda texts: [[f.replace(" ", "") for f in symbol_run_features(view(t))] for t in texts]
    return lambda texts: tokenize_many([view(t) for t in texts])


def source_groups(sources: list[str], task_kind: str = "mt") -> tuple[np.ndarray, dict[str, int]]:
    """Group id per row: rows whose normalised sources (an SQL task: questions) are equal share a
    group; the keys are those normalised texts."""
    view = retrieval_view(task_kind)
    keys: dict[str, int] = {}
    groups = np.fromiter((keys.setdefault(normalize_text(view(s)), len(keys)) for s in sources),
                         dtype=np.int64, count=len(sources))
    return groups, keys


def group_key(source: str, task_kind: str = "mt") -> str:
    """The key `source_groups` files a source under."""
    return normalize_text(retrieval_view(task_kind)(source))


def same_source_exclusions(groups: np.ndarray) -> dict[int, set[int]]:
    """For every group with more than one row: the set of its rows (sparse: most groups have one)."""
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    out: dict[int, set[int]] = {}
    for members in np.split(order, bounds):
        if len(members) > 1:
            out[int(groups[members[0]])] = set(members.tolist())
    return out


class Retrieve(Stage):
    name = "retrieve"
    version = "1"

    def __init__(self, candidates: int, k: int, tokens: str = "words", progress: bool = True, device: str = "cpu",
                 task_kind: str = "mt", engine: Any = None):
        self.candidates, self.k, self.tokens, self.progress = candidates, k, tokens, progress
        # exact either way, so neither is part of the fingerprint
        self.device, self.engine = device, engine or LocalEngine()
        self.task_kind = task_kind

    def params(self) -> dict[str, Any]:
        text = {"text": "question"} if self.task_kind == "sql" else {}
        return {"candidates": self.candidates, "tokens": self.tokens, "k1": 1.5, "b": 0.75, "epsilon": 0.25, **text}

    def check(self, inputs: dict[str, Artifacts]) -> None:
        """k is not in `params` (the candidates do not depend on it), so a cached retrieval made
        for a smaller k must not let a k the pool cannot serve through to assemble."""
        distinct = len(source_groups(inputs["ingest"]["pool"].column("source").to_pylist(), self.task_kind)[1])
        if distinct <= self.k:
            raise UserError(f"k={self.k} is larger than the pool allows: only {distinct} distinct sources, "
                            f"and a context needs k examples other than the target; lower --k or add data")

    def run(self, inputs: dict[str, Artifacts], stats: StageStats) -> Artifacts:
        pool = inputs["ingest"]["pool"]
        tests = inputs["ingest"]["tests"]
        pool_sources = pool.column("source").to_pylist()
        tokenize = retrieval_tokenizer(self.tokens, self.task_kind)
        groups, keys = source_groups(pool_sources, self.task_kind)
        index = BM25Index(tokenize(pool_sources))
        shared = same_source_exclusions(groups)
        exclude_pool = [shared.get(int(g), {i}) for i, g in enumerate(groups)]
        pool_idx, pool_scores = self.engine.topk(index, tokenize(pool_sources), self.candidates,
                                                 exclude_pool, self.progress, device=self.device)
        test_sources = tests.column("source").to_pylist()
        first_row = np.empty(len(keys), dtype=np.int64)
        first_row[groups[::-1]] = np.arange(len(groups))[::-1]
        exclude_test = [shared.get(keys[key], {int(first_row[keys[key]])}) if key in keys else set()
                        for key in (group_key(s, self.task_kind) for s in test_sources)]
        test_idx, test_scores = self.engine.topk(index, tokenize(test_sources), self.candidates,
                                                 exclude_test, self.progress, device=self.device)
        stats.rows_in = len(pool_sources) + len(test_sources)
        stats.rows_out = stats.rows_in
        stats.counters["pool_rows_sharing_a_source"] = int(sum(len(v) for v in shared.values()))
        return Artifacts(pool_idx=pool_idx.astype(np.int64), pool_bm25=pool_scores.astype(np.float32),
                         test_idx=test_idx.astype(np.int64), test_bm25=test_scores.astype(np.float32))
