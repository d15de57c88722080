"""The per-item answer cache: what makes a paid paraphrase run never pay twice and never lose work.

One SQLite file in WAL mode (readers never block the writer; several processes may write, each
transaction is atomic). A row is written as soon as its answer arrives, so a killed run keeps
every finished item. Keys are sha256 of explicit strings only (backend, model, prompt template
text, generation parameters, n, source text); values hold paraphrases and token counts, never a
key or a URL with credentials.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterable

_SCHEMA = "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
_CHUNK = 500  # keys per SELECT; well under SQLite's bound-parameter limit


def key_prefix(parts: dict[str, Any]) -> str:
    """Hash of everything but the source text, computed once per run; `item_key` adds the text."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def item_key(prefix: str, source: str) -> str:
    return hashlib.sha256(f"{prefix}\x00{source}".encode("utf-8")).hexdigest()


def _set_up(db: sqlite3.Connection, deadline_s: float = 60.0) -> None:
    """Switch to WAL and create the table, retrying while another opener holds the file.

    Turning WAL on needs an exclusive lock, and SQLite reports "database is locked" at once
    (without its busy handler) when several connections open a fresh file together, so the
    connection's own timeout does not cover this step.
    """
    give_up = time.monotonic() + deadline_s
    delay = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                raise
            if time.monotonic() > give_up:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class AnswerCache:
    """Thread-safe within a process (one connection behind a lock), process-safe through SQLite."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "answers.sqlite"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=60.0, check_same_thread=False,
                                   isolation_level=None)
        _set_up(self._db)

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start:start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, value FROM answers WHERE key IN ({marks})", chunk)
                found.update((key, json.loads(value)) for key, value in rows)
        return found

    def put_many(self, values: dict[str, dict[str, Any]]) -> None:
        if not values:
            return
        now = time.time()
        rows = [(key, json.dumps(value, ensure_ascii=False), now) for key, value in values.items()]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO answers (key, value, created) VALUES (?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "AnswerCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CacheWriter:
    """Writes answers from many workers through one thread that commits whatever has arrived
    every `interval` seconds (group commit): workers only append to a deque, so 32 of them never
    queue behind each other's commits. An answer is committed within about `interval` of its
    arrival; `close` flushes the rest and re-raises a write error."""

    def __init__(self, cache: AnswerCache, interval: float = 0.02):
        self._cache, self._interval = cache, interval
        self._pending: deque = deque()
        self._closing = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="paraphrase-cache-writer", daemon=True)
        self._thread.start()

    def put(self, values: dict[str, dict[str, Any]]) -> None:
        if values:
            self._pending.append(values)  # atomic; no lock, no wake-up

    def _drain(self) -> None:
        while True:
            closing = self._closing.wait(self._interval)
            batch: dict[str, dict[str, Any]] = {}
            while self._pending:
                batch.update(self._pending.popleft())
            if batch and self._error is None:
                try:
                    self._cache.put_many(batch)
                except BaseException as exc:  # surfaced by close()
                    self._error = exc
            if closing and not self._pending:
                return

    def close(self) -> None:
        self._closing.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
