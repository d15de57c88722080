"""The Ray Data actors of `RayEngine`: one loads the BM25 index (or the embedder) once and then
handles one shard per call. Kept in their own module so Ray workers import them by name and never
pickle a class defined in the driver.

Rows travel as pickled payloads (`pack`/`unpack`): a shard's token lists and exclusion sets in, its
(idx, scores) or vectors out, with the shard's start or chunk number beside them, so the driver
puts every result back in place whatever order the results come in.
"""
from __future__ import annotations

import pickle
from typing import Any, Callable

import numpy as np

from schemas.errors import UserError
from stages.base import fingerprint


def pack(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(payload: bytes) -> Any:
    return pickle.loads(payload)


def result_batch(position: int, value: Any) -> dict[str, np.ndarray]:
    """One output row: its position (shard start, chunk number) and the pickled result."""
    payload = np.empty(1, dtype=object)
    payload[0] = pack(value)
    return {"position": np.array([position], dtype=np.int64), "payload": payload}


class ShardScorer:
    """Holds one copy of the index, fetched once from the object store (`boxed_index` wraps the
    reference in a list, so Ray hands it over unresolved and the numpy parts are read zero-copy)."""

    def __init__(self, boxed_index: list, k: int):
        import ray

        self.index, self.k = ray.get(boxed_index[0]), k

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        queries, exclude = unpack(batch["payload"][0])
        return result_batch(int(batch["position"][0]), self.index.topk(queries, self.k, exclude=exclude))


class ChunkEmbedder:
    """One embedder per actor, made by `factory` and checked against the driver's identity: a
    worker whose model, packages or CPU make other vectors must not add them to the cache."""

    def __init__(self, factory: Callable[[], Any], identity_fingerprint: str):
        self.embedder = factory()
        if fingerprint(self.embedder.identity()) != identity_fingerprint:
            raise UserError(f"a Ray worker's embedder identity {self.embedder.identity()} differs from the "
                            "driver's; install the same ictrain, model and packages on every node")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = unpack(batch["payload"][0])
        vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        return result_batch(int(batch["position"][0]), vectors)
