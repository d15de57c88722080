"""Content-addressed on-disk cache of embedding vectors, so no text is embedded twice.

Layout: `<cache_dir>/<sha256(identity)[:24]>/shard-*.npz`, one folder per embedder identity (a
changed model, precision or batching scheme never reads another's vectors) and one shard per
chunk of newly embedded texts, holding `keys` (sha256 of identity + text, uint8 (n, 32)) and
`vectors` (float32 (n, d)). A shard is written to a temp name and renamed into place, so readers
only ever see whole shards; names carry pid, time and a random part, so processes writing at
the same time never collide. Shards are read lazily, on the first `embed`, and re-scanned on every
call to pick up what other processes added. Embedding in chunks lets an interrupted run keep every
finished chunk.
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from stages.base import fingerprint, write_json_atomically

KEY_BYTES = 32


def text_key(identity_fingerprint: str, text: str) -> bytes:
    return hashlib.sha256(f"{identity_fingerprint}\0{text}".encode("utf-8")).digest()


class ShardStore:
    """The vectors of one identity folder, indexed by key across every whole shard in it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.dim: int | None = None
        self._seen: set[str] = set()
        self._blocks: list[np.ndarray] = []
        self._where: dict[bytes, tuple[int, int]] = {}

    def __contains__(self, key: bytes) -> bool:
        return key in self._where

    def refresh(self) -> None:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("shard-*.npz")):
            if path.name not in self._seen:
                self._seen.add(path.name)
                self._load(path)

    def _load(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as data:
                keys, vectors = data["keys"], data["vectors"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            warnings.warn(f"{path}: unreadable embedding shard skipped ({error}); its texts are embedded again")
            return
        if (keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != KEY_BYTES or vectors.ndim != 2
                or len(vectors) != len(keys) or (self.dim is not None and vectors.shape[1] != self.dim)):
            warnings.warn(f"{path}: embedding shard of unexpected shape skipped; its texts are embedded again")
            return
        self._add(keys, vectors.astype(np.float32, copy=False))

    def _add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.dim = vectors.shape[1]
        block = len(self._blocks)
        self._blocks.append(vectors)
        raw = keys.tobytes()
        for row in range(len(keys)):
            self._where.setdefault(raw[row * KEY_BYTES:(row + 1) * KEY_BYTES], (block, row))

    def write(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Temp file, fsync, rename: a crash leaves at most an ignored `.tmp-*` file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), KEY_BYTES)
        name = f"shard-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.folder / f".tmp-{name}"
        try:
            with open(tmp, "wb") as handle:
                np.savez(handle, keys=key_array, vectors=vectors)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.folder / name)
        finally:
            tmp.unlink(missing_ok=True)
        self._seen.add(name)
        self._add(key_array, vectors)

    def gather(self, keys: list[bytes]) -> np.ndarray:
        where = np.array([self._where[key] for key in keys], dtype=np.int64).reshape(-1, 2)
        out = np.empty((len(keys), self.dim or 0), dtype=np.float32)
        for block in np.unique(where[:, 0]):
            rows = where[:, 0] == block
            out[rows] = self._blocks[block][where[rows, 1]]
        return out


def identity_folder(cache_dir: Path, identity: dict) -> Path:
    """The folder of one embedder identity: its vector shards and any model files made for it."""
    return Path(cache_dir) / fingerprint(identity)[:24]


class CachedEmbedder:
    """Any Embedder plus the cache: only texts never embedded under this identity reach `inner`,
    each once however often it repeats. `stats` counts over the instance's life. `factory`, when
    given, is a picklable zero-argument callable that makes an embedder equal to `inner` in another
    process: what an engine embedding on other workers (`stages.scale`) loads there."""

    def __init__(self, inner, cache_dir: Path, chunk_size: int = 8192, factory: Callable[[], Any] | None = None):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.inner, self.chunk_size, self.factory = inner, chunk_size, factory
        self._identity = inner.identity()
        self.identity_fingerprint = fingerprint(self._identity)
        self.folder = identity_folder(cache_dir, self._identity)
        self.store = ShardStore(self.folder)
        self.stats = {"texts": 0, "unique": 0, "cache_hits": 0, "embedded": 0, "shards_written": 0}

    def identity(self) -> dict:
        return self._identity

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.embed_with(texts, lambda chunks: enumerate(map(self.inner.embed, chunks)))

    def embed_with(self, texts: list[str], run: Callable[[list[list[str]]], Iterable[tuple[int, Any]]]) -> np.ndarray:
        """`embed`, with the cache misses embedded by `run`: given the chunks of missing texts (at
        most `chunk_size` each, always cut the same way), it yields (chunk number, vectors) in any
        order; each chunk is checked and kept as one shard as it arrives, so an interrupted run
        keeps every finished chunk."""
        keys = [text_key(self.identity_fingerprint, text) for text in texts]
        first_row = {}
        for row, key in enumerate(keys):
            first_row.setdefault(key, row)
        self.store.refresh()
        missing = [key for key in first_row if key not in self.store]
        chunks = [missing[start:start + self.chunk_size] for start in range(0, len(missing), self.chunk_size)]
        if chunks:
            self._keep_all(chunks, run([[texts[first_row[key]] for key in chunk] for chunk in chunks]))
        self.stats["texts"] += len(texts)
        self.stats["unique"] += len(first_row)
        self.stats["cache_hits"] += len(first_row) - len(missing)
        self.stats["embedded"] += len(missing)
        if not texts and self.store.dim is None:
            return np.asarray(self.inner.embed([]), dtype=np.float32)
        return self.store.gather(keys)

    def _keep_all(self, chunks: list[list[bytes]], results: Iterable[tuple[int, Any]]) -> None:
        """Keeps every chunk `run` returned, and checks each came back exactly once: a lost chunk
        is one clear error here, not a missing key later in `gather`."""
        arrived: set[int] = set()
        for number, vectors in results:
            if number in arrived or not 0 <= number < len(chunks):
                raise RuntimeError(f"embedding returned chunk {number} again or out of range (0-{len(chunks) - 1})")
            arrived.add(number)
            self._keep(chunks[number], vectors)
        if len(arrived) != len(chunks):
            raise RuntimeError(f"embedding returned {len(arrived)} of {len(chunks)} chunks; "
                               f"{len(chunks) - len(arrived)} never came back (their texts are not in the cache)")

    def _keep(self, keys: list[bytes], vectors: Any) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys) or not np.isfinite(vectors).all():
            raise ValueError(f"embedder {self._identity.get('kind')} returned shape {vectors.shape} "
                             f"(or non-finite values) for {len(keys)} texts")
        if self.store.dim is not None and vectors.shape[1] != self.store.dim:
            raise ValueError(f"embedder returned dimension {vectors.shape[1]}, the cache holds {self.store.dim}")
        if not (self.folder / "identity.json").exists():
            write_json_atomically(self.folder / "identity.json", self._identity)
        self.store.write(keys, vectors)
        self.stats["shards_written"] += 1
