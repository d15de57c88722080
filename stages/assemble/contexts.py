"""Context construction: which pool rows (or paraphrases) go in front of which query.

Contexts are first drawn as index lists (cheap, seeded), then scored in bulk (BM25 and cosine of
every example to its query) and only then turned into rows, so 50k targets x 4 regimes stay fast.
The leakage guard lives here: no context ever holds a pool row whose normalised source equals the
query's (`group` equality), whatever the kind.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from stages.retrieve.bm25 import BM25Index

PARAPHRASE_SLOT = -1


@dataclass
class Query:
    """A training target or test input, with its retrieval candidates and paraphrases."""

    id: str
    source: str
    target: str
    tokens: list[str]
    emb: np.ndarray
    group: int  # its normalised-source group in the pool, -1 when it matches no pool row
    candidates: np.ndarray  # top-M BM25 pool indices, best first, -1 padded
    paraphrases: list[str] = field(default_factory=list)
    paraphrase_embs: np.ndarray | None = None
    test_set: str = ""  # "id" / "ood" for test inputs, "" for pool targets
    db_id: str = ""
    paraphrase_targets: list[str] = field(default_factory=list)  # SQL: each paraphrase's own query


@dataclass
class Context:
    """One context in index form: pool indices, PARAPHRASE_SLOT for the query's paraphrase."""

    query: Query
    slots: list[int]
    origins: list[str]
    kind: str
    paraphrase: str = ""
    paraphrase_emb: np.ndarray | None = None
    paraphrase_target: str = ""  # the paraphrase's label: the query's target unless it has its own
    close_position: int = -1


class ContextSampler:
    def __init__(self, pool_ids: list[str], pool_sources: list[str], pool_targets: list[str],
                 pool_emb: np.ndarray, groups: np.ndarray, index: BM25Index, k: int,
                 tokenize: Callable[[list[str]], list[list[str]]], pool_db_ids: list[str] | None = None):
        self.ids, self.sources, self.targets = pool_ids, pool_sources, pool_targets
        self.emb, self.groups, self.index, self.k = pool_emb, groups, index, k
        self.tokenize = tokenize
        self.db_ids = pool_db_ids or [""] * len(pool_ids)

    def random(self, q: Query, n: int, rng: np.random.Generator, avoid: tuple[int, ...] = ()) -> list[int]:
        chosen: list[int] = []
        size = len(self.ids)
        while len(chosen) < n:
            for j in rng.integers(size, size=2 * n + 4).tolist():
                if self.groups[j] != q.group and j not in chosen and j not in avoid:
                    chosen.append(j)
                    if len(chosen) == n:
                        break
        return chosen

    def nearest(self, q: Query, n: int) -> list[int]:
        return [int(j) for j in q.candidates[q.candidates >= 0][:n]]

    def near(self, q: Query, rng: np.random.Generator) -> int:
        """One neighbour sampled from the top-M candidates with probability ∝ its cosine (≥ 0)."""
        cands = q.candidates[q.candidates >= 0]
        weights = np.clip(self.emb[cands] @ q.emb, 0.0, None).astype(np.float64)
        if weights.sum() <= 0:
            return int(cands[rng.integers(len(cands))])
        return int(cands[rng.choice(len(cands), p=weights / weights.sum())])

    def context(self, q: Query, kind: str, rng: np.random.Generator) -> Context:
        """kind: random | similar | near | paraphrase (falls back to near without paraphrases)."""
        k = self.k
        if kind == "random":
            return Context(q, self.random(q, k, rng), ["random"] * k, "random")
        if kind == "similar":
            slots = self.nearest(q, k)
            slots = slots + self.random(q, k - len(slots), rng, tuple(slots))
            order = rng.permutation(k).tolist()
            return Context(q, [slots[i] for i in order], ["similar"] * k, "similar")
        if kind == "paraphrase" and q.paraphrases:
            pick = int(rng.integers(len(q.paraphrases)))
            ctx = self._one_close(q, PARAPHRASE_SLOT, "paraphrase", rng)
            ctx.paraphrase, ctx.paraphrase_emb = q.paraphrases[pick], q.paraphrase_embs[pick]
            ctx.paraphrase_target = q.paraphrase_targets[pick] if q.paraphrase_targets else q.target
            return ctx
        return self._one_close(q, self.near(q, rng), "near", rng)

    def one_near(self, q: Query, rng: np.random.Generator) -> Context:
        """The eval context: k-1 random plus the single BM25-nearest row."""
        return self._one_close(q, self.nearest(q, 1)[0], "near", rng)

    def _one_close(self, q: Query, close: int, origin: str, rng: np.random.Generator) -> Context:
        others = self.random(q, self.k - 1, rng, (close,))
        position = int(rng.integers(self.k))
        slots = others[:position] + [close] + others[position:]
        origins = ["random"] * position + [origin] + ["random"] * (self.k - 1 - position)
        return Context(q, slots, origins, origin, close_position=position)

    def score(self, contexts: list[Context]) -> tuple[np.ndarray, np.ndarray]:
        """(bm25, cosine) arrays of shape (len(contexts), k) for the examples of each context."""
        if not contexts:
            return np.zeros((0, self.k), np.float32), np.zeros((0, self.k), np.float32)
        slots = np.array([c.slots for c in contexts], dtype=np.int64)
        safe = np.where(slots >= 0, slots, 0)
        bm25 = np.asarray(self.index.score_pairs([c.query.tokens for c in contexts], safe), dtype=np.float32)
        cosine = np.empty(slots.shape, dtype=np.float32)
        for start in range(0, len(contexts), 4096):  # chunks: the gathered (rows, k, dim) block stays small
            rows = slice(start, start + 4096)
            query_emb = np.stack([c.query.emb for c in contexts[rows]])
            cosine[rows] = np.einsum("rkd,rd->rk", self.emb[safe[rows]], query_emb)
        for r in np.flatnonzero((slots < 0).any(axis=1)):  # only the few rows holding a paraphrase
            c = contexts[r]
            for s in np.flatnonzero(slots[r] < 0):
                bm25[r, s] = self.index.score_external(c.query.tokens, self.tokenize([c.paraphrase])[0])
                cosine[r, s] = float(c.paraphrase_emb @ c.query.emb)
        return bm25, cosine

    def examples(self, ctx: Context, bm25: np.ndarray, cosine: np.ndarray) -> list[dict]:
        out = []
        for s, (slot, origin) in enumerate(zip(ctx.slots, ctx.origins)):
            if slot == PARAPHRASE_SLOT:
                item = {"id": f"{ctx.query.id}~paraphrase", "source": ctx.paraphrase, "target": ctx.paraphrase_target,
                        "db_id": ctx.query.db_id}
            else:
                item = {"id": self.ids[slot], "source": self.sources[slot], "target": self.targets[slot],
                        "db_id": self.db_ids[slot]}
            item.update(origin=origin, bm25=float(bm25[s]), cosine=float(cosine[s]))
            out.append(item)
        return out
