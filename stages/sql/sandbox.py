"""Running untrusted SQL (model predictions, paraphrased queries) read-only on a SQLite database.

A predicted query is untrusted input. Opening the file read-only (URI `mode=ro`) and setting
`PRAGMA query_only` stop writes to the database, but not everything that writes a file:
`ATTACH DATABASE 'x.db'` creates x.db and `VACUUM INTO 'path'` writes a copy anywhere, even on a
read-only connection. So every query also goes through these layers:

- the text must be exactly one statement, and that statement must start with SELECT, WITH or
  VALUES (checked before SQLite sees it; VACUUM, PRAGMA, DROP, ... are refused by name);
- an authorizer allows reading only (SQLITE_SELECT, SQLITE_READ, SQLITE_FUNCTION and
  SQLITE_RECURSIVE) and denies every other action: writes, schema changes, transactions,
  ATTACH/DETACH (VACUUM INTO attaches its target, so it is denied here too) and PRAGMA, including
  the pragma table-valued functions;
- the attached-databases limit is 0, so no ATTACH can succeed whatever the authorizer says
  (Python 3.10's sqlite3 cannot set limits: there the authorizer alone refuses ATTACH);
- a progress handler, called every few thousand virtual-machine steps, aborts the query once its
  time limit has passed (fetching included), so no query is left running;
- at most `max_rows` rows are fetched, and no single string or blob may exceed 100 MB.

The connection is closed before `run_readonly` returns, whatever happened. Large sorts may still
spill to SQLite's own temporary files, which SQLite opens already deleted.
"""
from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import UserError
from stages.sql.statements import leading_keyword, split_statements

QUERY_KEYWORDS = ("SELECT", "WITH", "VALUES")
PROGRESS_STEPS = 5_000  # virtual-machine steps between two looks at the clock
MAX_VALUE_BYTES = 100_000_000
CAN_SET_LIMITS = hasattr(sqlite3.Connection, "setlimit")  # Python >= 3.11
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ,
                              sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE})
_REFUSED_FUNCTIONS = frozenset({"load_extension"})
_ACTION_NAMES = {getattr(sqlite3, name): name.removeprefix("SQLITE_").replace("_", " ").lower()
                 for name in dir(sqlite3)
                 if name.startswith(("SQLITE_CREATE_", "SQLITE_DROP_", "SQLITE_ALTER_"))
                 or name in {"SQLITE_INSERT", "SQLITE_UPDATE", "SQLITE_DELETE", "SQLITE_PRAGMA",
                             "SQLITE_ATTACH", "SQLITE_DETACH", "SQLITE_TRANSACTION",
                             "SQLITE_SAVEPOINT", "SQLITE_REINDEX", "SQLITE_ANALYZE",
                             "SQLITE_FUNCTION"}}


@dataclass(frozen=True)
class QueryResult:
    """What one query returned. `rows` is None when it failed, and `error` then says why in a
    few words: "timeout", "refused: <what>", "sqlite: <message>", "not one statement" or "too
    many rows". A query with more than `max_rows` rows keeps its first `max_rows` rows with
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


def run_readonly(db_path: Path, sql: str, timeout_s: float = 30.0,
                 max_rows: int = 100_000) -> QueryResult:
    """Run one untrusted query read-only, within `timeout_s` seconds, fetching at most `max_rows`
    rows. Never raises for anything the query does; a missing database file is a `UserError`."""
    statements = split_statements(sql)
    if len(statements) != 1:
        return QueryResult(None, "not one statement")
    keyword = leading_keyword(statements[0])
    if keyword not in QUERY_KEYWORDS:
        return QueryResult(None, f"refused: {keyword.lower() or 'not a query'}")
    connection = _open_readonly(Path(db_path))
    refused: list[str] = []
    deadline = time.monotonic() + timeout_s
    timed_out = [False]

    def past_deadline() -> bool:
        timed_out[0] = time.monotonic() > deadline
        return timed_out[0]

    try:
        connection.set_authorizer(_authorizer(refused))
        connection.set_progress_handler(past_deadline, PROGRESS_STEPS)
        return _fetch(connection, statements[0], max_rows)
    except sqlite3.Error as err:
        if refused:
            return QueryResult(None, f"refused: {refused[0]}")
        if timed_out[0]:
            return QueryResult(None, "timeout")
        return QueryResult(None, f"sqlite: {err}")
    finally:
        connection.close()


def results_match(predicted: QueryResult, gold: QueryResult) -> bool:
    """BIRD's execution accuracy: the two results hold the same *set* of rows (order and
    duplicates ignored; 1 equals 1.0 as in Python). A predicted error, timeout or truncated result
    is wrong, and so is any comparison with a gold query that failed."""
    if not (predicted.ok and gold.ok):
        return False
    return set(predicted.rows) == set(gold.rows)


def _open_readonly(db_path: Path) -> sqlite3.Connection:
    if not db_path.is_file():
        raise UserError(f"{db_path}: database file not found; check --db-dir")
    uri = f"{db_path.resolve().as_uri()}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=1.0, isolation_level=None,
                                 check_same_thread=True)
    try:
        connection.text_factory = _text
        connection.execute("PRAGMA query_only = ON")
        if CAN_SET_LIMITS:
            connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    except BaseException:
        connection.close()
        raise
    return connection


def _text(raw: bytes) -> str:
    """Text values decoded leniently: a cell of invalid UTF-8 must not fail one side of a
    comparison (both sides decode it the same way)."""
    return raw.decode("utf-8", errors="replace")


def _authorizer(refused: list[str]):
    """Allow reading only; remember each action denied with its object ("delete sqlite_master",
    "attach x.db"), for the error message."""
    def authorize(action: int, arg1, arg2, _db, _trigger) -> int:
        if action in _ALLOWED_ACTIONS and not (
                action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _REFUSED_FUNCTIONS):
            return sqlite3.SQLITE_OK
        what = _ACTION_NAMES.get(action, f"action {action}")
        target = arg2 if action == sqlite3.SQLITE_FUNCTION else arg1
        refused.append(f"{what} {target}" if target else what)
        return sqlite3.SQLITE_DENY

    return authorize


def _fetch(connection: sqlite3.Connection, statement: str, max_rows: int) -> QueryResult:
    cursor = connection.execute(statement)
    try:
        rows = cursor.fetchmany(max_rows + 1)
    finally:
        cursor.close()
    if len(rows) > max_rows:
        return QueryResult([tuple(row) for row in rows[:max_rows]], "too many rows", truncated=True)
    return QueryResult([tuple(row) for row in rows], None)
