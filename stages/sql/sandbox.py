"""Running untrusted SQL (model predictions, paraphrased queries) read-only on a SQLite database.

A predicted query is untrusted input. Opening the file read-only (URI `mode=ro`) and setting
`PRAGMA query_only` stop writes to the database, but not everything that writes a file:
`ATTACH DATABASE 'x.db'` creates x.db and `VACUUM INTO 'path'` writes a copy anywhere, even on a
read-only connection. And a query can cost without bound: SQLite's statement preparation runs
no progress handler and ignores `interrupt()` (nested `NOT MATERIALIZED` CTEs take minutes and
gigabytes to prepare), one function call can allocate gigabytes, and so can the fetched rows.
So every query goes through these layers:

- the text must be exactly one statement, and that statement must start with SELECT, WITH or
  VALUES (checked here, before SQLite sees it; VACUUM, PRAGMA, DROP, ... are refused by name);
- it runs in a long-lived child process (`stages.sql.sandbox_worker`) whose address space is
  capped (`SandboxLimits.memory_bytes`), which cannot grow files, and which this process kills
  when no answer came by the deadline plus `kill_margin_s` (error "timeout"; preparation
  included); the next query starts a fresh worker;
- inside the worker: a read-only connection (`immutable=1`, so a WAL-mode database leaves no
  `-wal`/`-shm` files), an authorizer that allows reading and a list of built-in functions only
  (writes, schema changes, transactions, ATTACH/DETACH, PRAGMA and the pragma table-valued
  functions, load_extension, fts3_tokenizer are denied), the attached-databases limit 0, value
  and SQL-text length limits, a progress handler and a watchdog `interrupt()` at the deadline;
- at most `max_rows` rows are fetched, and at most `result_bytes` bytes of values ("too large").
"""
from __future__ import annotations

import atexit
import marshal
import os
import re
import select
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from schemas.errors import UserError
from stages.sql import sandbox_worker
from stages.sql.sandbox_worker import HEADER, PROGRESS_STEPS  # noqa: F401 (bench reads it)
from stages.sql.statements import leading_keyword, split_statements

QUERY_KEYWORDS = ("SELECT", "WITH", "VALUES")
MAX_VALUE_BYTES = 10_000_000
CAN_SET_LIMITS = hasattr(sqlite3.Connection, "setlimit")  # Python >= 3.11
STARTUP_TIMEOUT_S = 60.0  # a fresh worker must say ready within this
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class SandboxLimits:
    """What one query may use besides time: the worker's address space, the bytes of values
    fetched, one value's length and the SQL text's length (SQLite limits, Python 3.11+), and how
    long past its time limit the worker gets to answer before it is killed."""

    memory_bytes: int = 2 << 30
    result_bytes: int = 256 << 20
    value_bytes: int = MAX_VALUE_BYTES
    sql_bytes: int = 1_000_000
    kill_margin_s: float = 0.5


DEFAULT_LIMITS = SandboxLimits()


@dataclass(frozen=True)
class QueryResult:
    """What one query returned. `rows` is None when it failed, and `error` then says why in a
    few words: "timeout", "refused: <what>", "sqlite: <message>", "not one statement", "too many
    rows", "too large" (the rows' values exceed the byte budget), "out of memory" or "worker
    died". A query with more than `max_rows` rows keeps its first `max_rows` rows with
    `truncated` set and the error "too many rows": a partial result is never a match."""

    rows: list[tuple] | None
    error: str | None
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def database_path(db_dir: str | Path, db_id: str) -> Path:
    """`<db_dir>/<db_id>/<db_id>.sqlite` (BIRD's unzipped layout), checked to exist. A db_id is
    a plain name; anything that could climb out of `db_dir` is refused."""
    if not isinstance(db_id, str) or not _PLAIN_NAME.fullmatch(db_id):
        raise UserError(f"db_id {db_id!r} is not a plain database name (letters, digits, _ . -); "
                        "fix the db_id field of the data")
    path = Path(db_dir) / db_id / f"{db_id}.sqlite"
    if not path.is_file():
        raise UserError(f"database {db_id!r} not found in --db-dir {db_dir}: expected {path}; "
                        "pass the folder that holds <db_id>/<db_id>.sqlite for every database")
    return path


def run_readonly(db_path: Path, sql: str, timeout_s: float = 30.0, max_rows: int = 100_000,
                 *, limits: SandboxLimits = DEFAULT_LIMITS) -> QueryResult:
    """Run one untrusted query read-only in a worker process, within `timeout_s` seconds
    (preparation included), fetching at most `max_rows` rows. Never raises for anything the
    query does; a missing database file is a `UserError`."""
    statements = split_statements(sql)
    if len(statements) != 1:
        return QueryResult(None, "not one statement")
    keyword = leading_keyword(statements[0])
    if keyword not in QUERY_KEYWORDS:
        return QueryResult(None, f"refused: {keyword.lower() or 'not a query'}")
    if not Path(db_path).is_file():
        raise UserError(f"{db_path}: database file not found; check --db-dir")
    request = {"db_path": str(Path(db_path).resolve()), "sql": statements[0],
               "timeout_s": float(timeout_s), "max_rows": int(max_rows)}
    worker = _POOL.take(limits)
    answer = worker.ask(request, timeout_s + limits.kill_margin_s)
    if worker.alive and answer.error != "out of memory":
        _POOL.give_back(limits, worker)
    else:
        worker.close()
    return answer


def results_match(predicted: QueryResult, gold: QueryResult) -> bool:
    """BIRD's execution accuracy: the two results hold the same *set* of rows (order and
    duplicates ignored; 1 equals 1.0 as in Python). A predicted error, timeout or truncated result
    is wrong, and so is any comparison with a gold query that failed."""
    if not (predicted.ok and gold.ok):
        return False
    return set(predicted.rows) == set(gold.rows)


def close_workers() -> None:
    """End every idle worker process (they also end on their own when this process exits)."""
    _POOL.close()


class _Worker:
    """One child process running `sandbox_worker.py`, reused for query after query."""

    def __init__(self, limits: SandboxLimits):
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", sandbox_worker.__file__], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)
        self.alive = True
        self._send(asdict(limits))
        if self._receive(time.monotonic() + STARTUP_TIMEOUT_S) != "ready":
            self.close()
            raise RuntimeError("the SQL sandbox worker did not start")

    def ask(self, request: dict, wait_s: float) -> QueryResult:
        """The worker's answer, or "timeout" (and the worker killed) after `wait_s` seconds."""
        try:
            self._send(request)
            answer = self._receive(time.monotonic() + wait_s)
        except (OSError, ValueError, EOFError, TypeError):
            answer = None
        if answer == "timeout-wait":
            self.close()
            return QueryResult(None, "timeout")
        if not isinstance(answer, tuple) or len(answer) != 3:
            self.close()
            return QueryResult(None, "worker died")
        rows, error, truncated = answer
        return QueryResult(rows, error, truncated)

    def _send(self, message) -> None:
        payload = marshal.dumps(message)
        self.process.stdin.write(HEADER.pack(len(payload)) + payload)
        self.process.stdin.flush()

    def _receive(self, deadline: float):
        """One message, "timeout-wait" when the deadline passes first, None at end of output."""
        header = self._read(HEADER.size, deadline)
        if not isinstance(header, bytes):
            return header
        payload = self._read(HEADER.unpack(header)[0], deadline)
        return marshal.loads(payload) if isinstance(payload, bytes) else payload

    def _read(self, size: int, deadline: float):
        fd, data = self.process.stdout.fileno(), bytearray()
        while len(data) < size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return "timeout-wait"
            block = os.read(fd, min(size - len(data), 1 << 24))
            if not block:
                return None
            data += block
        return bytes(data)

    def close(self) -> None:
        """Kill the process (it may be stuck preparing a statement) and reap it."""
        self.alive = False
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


class _WorkerPool:
    """Idle workers per set of limits; a query takes one (or starts one) and gives it back, so
    threads may run queries side by side, each in its own process."""

    def __init__(self):
        self._idle: dict[SandboxLimits, list[_Worker]] = {}
        self._lock = threading.Lock()
        self._registered = False

    def take(self, limits: SandboxLimits) -> _Worker:
        with self._lock:
            idle = self._idle.get(limits, [])
            while idle:
                worker = idle.pop()
                if worker.process.poll() is None:  # not ended while idle (killed from outside)
                    return worker
                worker.close()
            if not self._registered:
                atexit.register(self.close)
                self._registered = True
        return _Worker(limits)

    def give_back(self, limits: SandboxLimits, worker: _Worker) -> None:
        with self._lock:
            self._idle.setdefault(limits, []).append(worker)

    def close(self) -> None:
        with self._lock:
            workers = [w for idle in self._idle.values() for w in idle]
            self._idle.clear()
        for worker in workers:
            worker.close()


_POOL = _WorkerPool()
