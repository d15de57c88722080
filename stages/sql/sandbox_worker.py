"""The child process that runs untrusted SQL for `stages.sql.sandbox`, one query at a time.

It is started as a plain script (`python -I -S sandbox_worker.py`), so it imports nothing but the
standard library and nothing of the parent's program (a `multiprocessing` spawn or forkserver
child would import the parent's `__main__`, which for the evaluator means torch, in every fresh
worker). The parent sends one marshalled message per query over stdin and reads one answer from
stdout, each prefixed by its length. What the child bounds itself:

- memory: `RLIMIT_AS` is set before any query, so a query that allocates too much fails ("out of
  memory") instead of taking the machine; new files cannot grow (`RLIMIT_FSIZE` 0, `SIGXFSZ`
  ignored) and temporary tables and sorts stay in memory, under the same cap;
- values and SQL text: `SQLITE_LIMIT_LENGTH` and `SQLITE_LIMIT_SQL_LENGTH` (Python 3.11+);
- time while running: a progress handler every `PROGRESS_STEPS` VM steps and a watchdog thread
  that calls `connection.interrupt()` at the deadline (one long function call ends there too);
- result size: rows are fetched in chunks while their value sizes are summed, and the query stops
  with "too large" past the byte budget.

Time spent preparing a statement is bounded by the parent alone, which kills this process.
"""
from __future__ import annotations

import marshal
import os
import resource
import signal
import sqlite3
import struct
import sys
import threading
import time

PROGRESS_STEPS = 1_000  # virtual-machine steps between two looks at the clock
HEADER = struct.Struct("<Q")
_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ,
                              sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE})
# Built-in functions a query may call (core, date and time, aggregate, window, math, JSON). Any
# other name is refused: load_extension, fts3_tokenizer (its two-argument form registers a
# pointer), sqlite_compileoption_get, and whatever a future SQLite adds.
ALLOWED_FUNCTIONS = frozenset("""
abs char coalesce concat concat_ws format glob hex ifnull iif if instr length like likelihood likely
lower ltrim max min nullif octet_length printf quote random randomblob replace round rtrim sign
soundex substr substring trim typeof unhex unicode unlikely upper zeroblob unistr
avg count group_concat string_agg sum total median
date time datetime julianday unixepoch strftime timediff current_date current_time
current_timestamp
row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10 log2
mod pi pow power radians sin sinh sqrt tan tanh trunc
json json_array json_array_length json_error_position json_extract json_insert json_object
json_patch json_pretty json_quote json_remove json_replace json_set json_type json_valid
json_group_array json_group_object jsonb jsonb_array jsonb_extract jsonb_insert jsonb_object
jsonb_patch jsonb_remove jsonb_replace jsonb_set jsonb_group_array jsonb_group_object -> ->>
""".split())
_ACTION_NAMES = {getattr(sqlite3, name): name.removeprefix("SQLITE_").replace("_", " ").lower()
                 for name in dir(sqlite3)
                 if name.startswith(("SQLITE_CREATE_", "SQLITE_DROP_", "SQLITE_ALTER_"))
                 or name in {"SQLITE_INSERT", "SQLITE_UPDATE", "SQLITE_DELETE", "SQLITE_PRAGMA",
                             "SQLITE_ATTACH", "SQLITE_DETACH", "SQLITE_TRANSACTION",
                             "SQLITE_SAVEPOINT", "SQLITE_REINDEX", "SQLITE_ANALYZE",
                             "SQLITE_FUNCTION"}}


def authorizer(refused: list[str]):
    """Allow reading and the functions of ALLOWED_FUNCTIONS only; remember each action denied
    with its object ("delete sqlite_master", "attach x.db"), for the error message."""
    def authorize(action: int, arg1, arg2, _db, _trigger) -> int:
        if action in _ALLOWED_ACTIONS and not (
                action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() not in ALLOWED_FUNCTIONS):
            return sqlite3.SQLITE_OK
        what = _ACTION_NAMES.get(action, f"action {action}")
        target = arg2 if action == sqlite3.SQLITE_FUNCTION else arg1
        refused.append(f"{what} {target}" if target else what)
        return sqlite3.SQLITE_DENY

    return authorize


def open_readonly(db_path: str, limits: dict) -> sqlite3.Connection:
    """A read-only connection (`readonly_uri`) with the limits and the in-memory temp store."""
    connection = sqlite3.connect(readonly_uri(db_path), uri=True, timeout=1.0, isolation_level=None,
                                 check_same_thread=False)
    try:
        connection.text_factory = _text
        connection.execute("PRAGMA query_only = ON")
        connection.execute("PRAGMA temp_store = MEMORY")
        if hasattr(connection, "setlimit"):  # Python >= 3.11
            connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits["value_bytes"])
            connection.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, limits["sql_bytes"])
    except BaseException:
        connection.close()
        raise
    return connection


def readonly_uri(db_path: str) -> str:
    """The URI every read of a database uses: `mode=ro`, plus `immutable=1` (no locks, no
    `-wal`/`-shm` files created next to a WAL-mode database) unless a `-wal` file already
    exists, whose content must then be read."""
    from urllib.parse import quote

    immutable = "" if os.path.exists(db_path + "-wal") else "&immutable=1"
    return f"file:{quote(os.path.abspath(db_path), safe='/')}?mode=ro{immutable}"


def _text(raw: bytes) -> str:
    """Text values decoded leniently: a cell of invalid UTF-8 must not fail one side of a
    comparison (both sides decode it the same way)."""
    return raw.decode("utf-8", errors="replace")


def _size(row: tuple) -> int:
    return sum(len(value) if isinstance(value, (str, bytes)) else 8 for value in row)


def fetch(cursor: sqlite3.Cursor, max_rows: int, result_bytes: int) -> tuple:
    """(rows, error, truncated): at most `max_rows` rows, "too large" past `result_bytes`. Rows
    are taken one at a time, so no more than one row is held beyond the budget."""
    rows: list[tuple] = []
    total = 0
    for row in cursor:
        if len(rows) == max_rows:
            return rows, "too many rows", True
        total += _size(row)
        if total > result_bytes:
            return None, "too large", False
        rows.append(row)
    return rows, None, False


def run_query(request: dict, limits: dict) -> tuple:
    """(rows, error, truncated) of one query; never raises for anything the query does."""
    refused: list[str] = []
    deadline = time.monotonic() + request["timeout_s"]
    connection = open_readonly(request["db_path"], limits)
    watchdog = threading.Timer(request["timeout_s"], connection.interrupt)
    try:
        connection.set_authorizer(authorizer(refused))
        connection.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
        watchdog.start()
        cursor = connection.execute(request["sql"])
        return fetch(cursor, request["max_rows"], limits["result_bytes"])
    except (sqlite3.Error, sqlite3.Warning) as err:  # 3.10: "one statement at a time" is a Warning
        if refused:
            return None, f"refused: {refused[0]}", False
        if time.monotonic() > deadline:
            return None, "timeout", False
        if "out of memory" in str(err):
            return None, "out of memory", False
        return None, f"sqlite: {err}", False
    except MemoryError:
        return None, "out of memory", False
    finally:
        watchdog.cancel()
        connection.close()


def _read_exact(fd: int, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        block = os.read(fd, size - len(data))
        if not block:
            return None
        data += block
    return bytes(data)


def receive(fd: int):
    """One message from `fd` (None at end of input)."""
    header = _read_exact(fd, HEADER.size)
    if header is None:
        return None
    payload = _read_exact(fd, HEADER.unpack(header)[0])
    return None if payload is None else marshal.loads(payload)


def send(fd: int, payload: bytes) -> None:
    """Write one marshalled message (see `receive`)."""
    view = memoryview(HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


def confine(limits: dict) -> None:
    """Cap this process's address space and forbid growing files, before any query runs."""
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def main() -> None:
    """Read the limits, confine, say ready, then answer queries until stdin closes."""
    limits = receive(0)
    if limits is None:
        return
    confine(limits)
    send(1, marshal.dumps("ready"))
    while (request := receive(0)) is not None:
        try:
            payload = marshal.dumps(run_query(request, limits))
        except MemoryError:
            payload = marshal.dumps((None, "out of memory", False))
        send(1, payload)


if __name__ == "__main__":
    sys.exit(main())
