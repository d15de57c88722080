"""Engines: where the two embarrassingly parallel steps of a build run, BM25 top-k and embedding.

`LocalEngine` runs them in this process (the code path of every build without `--engine`).
`RayEngine` (`stages.scale.ray_engine`) runs them as Ray Data jobs on a local or joined Ray
cluster. Both give the same bytes, so an engine is never part of a stage's fingerprint or of the
version id: it is handed to the Retrieve and Embed stages beside their parameters, like a device.

The surface both offer (the scale benchmark calls it directly):
    engine.topk(index, queries, k, exclude, progress) -> (int64 idx, float32 scores)
    engine.embed(embedder, texts) -> float32 vectors
    with engine: ...   # closes what the engine started (a local Ray), nothing it joined
"""
from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from schemas.errors import UserError

ENGINES = ("local", "ray")
SCALE_INSTALL = "pip install 'ictrain[scale]'"


class LocalEngine:
    """Everything in this process, exactly as the stages always ran."""

    name = "local"

    def topk(self, index, queries: list[list[str]], k: int, exclude: list[set[int]] | None = None,
             progress: bool = False, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
        """`index.topk` (a `BM25Index`) over every query."""
        return index.topk(queries, k, exclude=exclude, progress=progress, device=device)

    def embed(self, embedder: Any, texts: list[str]) -> np.ndarray:
        """`embedder.embed(texts)`: a `CachedEmbedder` embeds only its cache misses."""
        return embedder.embed(texts)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_engine(kind: str = "local", workers: int | None = None, address: str | None = None,
                progress: bool = True, device: str = "cpu"):
    """The engine named by `pipeline build --engine`. Ray is imported here, only for `ray`, and a
    missing install is a one-line error naming the extra to install."""
    if kind == "local":
        return LocalEngine()
    if kind != "ray":
        raise UserError(f"--engine {kind!r} is unknown; use one of {', '.join(ENGINES)}")
    try:
        importlib.import_module("ray")
        importlib.import_module("ray.data")
    except ImportError:
        raise UserError(f"--engine ray needs Ray Data, which is not installed; run `{SCALE_INSTALL}` "
                        "or build with --engine local") from None
    from stages.scale.ray_engine import RayEngine

    return RayEngine(workers=workers, address=address, progress=progress, device=device)
