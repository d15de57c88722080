"""The Ray Data actors of `RayEngine`: one loads the BM25 index (or the embedder) once and then
handles one shard per call. Kept in their own module so Ray workers import them by name and never
pickle a class defined in the driver.

Rows travel as pickled payloads (`pack`/`unpack`): a shard's query term-count rows and exclusion
sets in, its (idx, scores) or vectors out, with the shard's start or chunk number beside them, so
the driver puts every result back in place whatever order the results come in.
"""
from __future__ import annotations

import pickle
import re
from typing import Any, Callable, Iterator

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


def worker_error(job: str, error: BaseException) -> Exception:
    """What the driver raises for a failed Ray job: a `UserError` raised in a worker (an actor's
    identity check) comes back as itself, one line for the CLI, not as Ray's traceback; any other
    failure as one line naming the job and the worker's own error line (Ray Data wraps it in a
    "UDF failed to process a data block" whose text still holds the root cause's line)."""
    texts = []
    for cause in _causes(error):
        if isinstance(cause, UserError):
            return UserError(str(cause).strip().splitlines()[0])
        texts.append(str(cause))
    lines = [line.strip() for text in texts for line in text.splitlines()
             if re.match(r"[\w.]+(Error|Exception|Exit)\b", line)]
    for line in lines:
        if line.startswith(("UserError: ", "schemas.errors.UserError: ")):
            return UserError(line.split("UserError: ", 1)[1])
    own = [line for line in lines if not line.startswith("ray.")]  # the root cause comes first
    first = (own or lines or [type(error).__name__])[0]
    return UserError(f"the Ray {job} job failed in a worker: {first}")


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error` and what caused it: Ray's `cause` attribute, then Python's own chain."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__


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
