"""Importable by Ray workers (the tests' embedder factories travel to them pickled by reference)."""
from __future__ import annotations

import os
import signal
from pathlib import Path

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
