"""How `RayEngine` cuts BM25 queries into shards: by work, in whole scoring blocks.

A shard is `m` whole `BM25Index.query_step` blocks ([s, s + m * step)), so every float32 block has
the shape it has locally. `m` is the smaller of two counts: the blocks that keep a shard's work
(queries x docs scored) near `PAIRS_PER_SHARD`, so a shard at 10M x 10M is seconds to minutes, not
hours, and a retried shard redoes little; and the blocks that give every worker at least
`SHARDS_PER_WORKER` shards, so the pool stays balanced on small pools. Never less than one block.
"""
from __future__ import annotations

import math

PAIRS_PER_SHARD = 2_000_000_000  # query x doc scores per shard: seconds to minutes of one core
SHARDS_PER_WORKER = 4  # more shards than workers: balance, and a retry redoes less


def shard_rows(n_queries: int, n_docs: int, step: int, workers: int) -> int:
    """Queries per shard (a multiple of `step`) for `n_queries` against `n_docs` on `workers` actors."""
    blocks = math.ceil(n_queries / step)
    by_work = max(1, PAIRS_PER_SHARD // (step * max(n_docs, 1)))
    by_balance = max(1, blocks // (SHARDS_PER_WORKER * max(workers, 1)))  # floor: >= 4 shards each
    return step * min(by_work, by_balance)
