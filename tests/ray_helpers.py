"""Importable by Ray workers (the tests' embedder factories travel to them pickled by reference)."""
from __future__ import annotations

import os
import signal
from pathlib import Path

from stages.embed.models import SymbolBagEmbedder
from stages.retrieve.bm25 import BM25Index


class KillOnceFactory:
    """Makes the real embedder via `factory`, wrapped so that the first `embed` in any process
    SIGKILLs that process, once per `marker` file (created exclusively, so exactly one worker dies)."""

    def __init__(self, factory, marker: Path):
        self.factory, self.marker = factory, Path(marker)

    def __call__(self):
        return _KillingEmbedder(self.factory(), self.marker)


class _KillingEmbedder:
    def __init__(self, inner, marker: Path):
        self.inner, self.marker = inner, marker

    def identity(self) -> dict:
        return self.inner.identity()

    def embed(self, texts):
        kill_once(self.marker)
        return self.inner.embed(texts)


def kill_once(marker: Path) -> bool:
    """SIGKILLs this process if `marker` does not exist yet (creating it, exclusively); else False."""
    try:
        with open(marker, "x") as handle:
            handle.write(str(os.getpid()))
    except FileExistsError:
        return False
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: the process was killed")


class KillOnceIndex(BM25Index):
    """A BM25 index whose first `topk` in any process SIGKILLs that process, once per `marker`."""

    marker: Path

    def topk(self, *args, **kwargs):
        kill_once(self.marker)
        return super().topk(*args, **kwargs)


class PidActor:
    """A Ray Data actor that holds each call `seconds` (a busy shard) and answers with its pid. The
    first actor is ready at once, every later one `late` seconds after (a slower node, a bigger
    index to fetch): the case where the first ready actor used to take every row."""

    def __init__(self, seconds: float, late: float, marker: Path):
        import time

        self.seconds = seconds
        try:
            open(marker, "x").close()
        except FileExistsError:
            time.sleep(late)

    def __call__(self, batch):
        import time

        from stages.scale.ray_workers import result_batch

        time.sleep(self.seconds)
        return result_batch(int(batch["position"][0]), os.getpid())


class OtherIdentityFactory:
    """Makes a symbol embedder whose identity differs from the driver's (another node's packages)."""

    def __call__(self):
        return _OtherIdentity()


class _OtherIdentity(SymbolBagEmbedder):
    def identity(self) -> dict:
        return {**super().identity(), "runtime": "another node"}


class FailingFactory:
    """Makes a symbol embedder whose `embed` fails with a plain error (a bug, not a user's setting)."""

    def __call__(self):
        return _Failing()


class _Failing(SymbolBagEmbedder):
    def embed(self, texts):
        raise ValueError("embedding exploded in the worker")


class PrepareCountingIndex(BM25Index):
    """Counts `prepare` calls in this process: one per copy the engine ships to the object store."""

    prepared = 0

    def prepare(self):
        type(self).prepared += 1
        return super().prepare()


class ExportCountingEmbedder(SymbolBagEmbedder):
    """Stands in for the CPU int8 embedder: `onnx` is set and `model()` (the load that exports the
    encoder) is counted, so a test sees whether the driver exported before the actors start."""

    onnx = True

    def __init__(self):
        self.loads = 0

    def model(self):
        self.loads += 1
