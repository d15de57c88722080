"""What a query may cost in the sandbox: time including statement preparation, memory, result
size; plus the parameter-token split, WAL-mode databases and the function allowlist."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

try:
    import conftest_sql as fixtures
except ImportError:  # tests/ imported as a package
    from tests import conftest_sql as fixtures

from stages.sql import sandbox, sandbox_worker
from stages.sql.sandbox import SandboxLimits, run_readonly
from stages.sql.statements import split_statements

SHORT = 0.3  # seconds: the time limit of the runaway queries below
MARGIN = 0.2  # how long past the limit the parent waits before killing the worker


@pytest.fixture()
def db(tmp_path) -> Path:
    return fixtures.make_database(tmp_path / "dbs")


def _timed(db: Path, sql: str, limits: SandboxLimits) -> tuple[sandbox.QueryResult, float]:
    run_readonly(db, "SELECT 1", limits=limits)  # a warm worker: its start is not the query's
    started = time.monotonic()
    result = run_readonly(db, sql, SHORT, limits=limits)
    return result, time.monotonic() - started


def _nested_ctes(depth: int) -> str:
    """Each CTE doubles the one before without materializing it: preparing this takes time and
    memory exponential in `depth`, and SQLite runs no progress handler while preparing."""
    ctes = ["a0(x) AS NOT MATERIALIZED (SELECT 1)"] + [
        f"a{i}(x) AS NOT MATERIALIZED (SELECT x FROM a{i - 1} UNION ALL SELECT x FROM a{i - 1})"
        for i in range(1, depth)]
    return "WITH " + ", ".join(ctes) + f" SELECT x FROM a{depth - 1} LIMIT 1"


def test_statement_preparation_is_killed_at_the_limit(db):
    limits = SandboxLimits(kill_margin_s=MARGIN)
    result, elapsed = _timed(db, _nested_ctes(19), limits)
    assert result == sandbox.QueryResult(None, "timeout")
    assert elapsed < SHORT + MARGIN + 1.0
    assert run_readonly(db, "SELECT count(*) FROM customers", limits=limits).rows == [(120,)]


def test_one_long_function_call_is_stopped_at_the_limit(db):
    """Without the length limit each call runs for tens of seconds between two progress checks."""
    limits = SandboxLimits(value_bytes=1_000_000_000, kill_margin_s=MARGIN)
    for sql in ("SELECT length(randomblob(50000000)) FROM orders",
                "SELECT " + ", ".join(["length(printf('%.*c', 2000000000, 'x'))"] * 4)):
        result, elapsed = _timed(db, sql, limits)
        assert result.error in ("timeout", "out of memory"), (sql, result)
        assert elapsed < SHORT + MARGIN + 1.0, sql


@pytest.mark.skipif(not sandbox.CAN_SET_LIMITS, reason="sqlite3 sets limits from Python 3.11")
def test_a_value_longer_than_the_length_limit_fails_at_once(db):
    result = run_readonly(db, "SELECT length(randomblob(50000000)) FROM orders", 5.0)
    assert result.error == "sqlite: string or blob too big"


def test_rows_past_the_byte_budget_are_too_large(db):
    limits = SandboxLimits(result_bytes=1_000_000)
    result = run_readonly(db, "SELECT zeroblob(100000) FROM orders", 5.0, limits=limits)
    assert result == sandbox.QueryResult(None, "too large")
    assert run_readonly(db, "SELECT zeroblob(1000) FROM orders LIMIT 10", 5.0,
                        limits=limits).rows == [(bytes(1000),)] * 10


def test_memory_past_the_cap_fails_the_query_not_the_machine(db):
    limits = SandboxLimits(memory_bytes=300 << 20)
    sql = "SELECT zeroblob(5000000) AS z FROM orders ORDER BY random()"
    assert run_readonly(db, sql, 5.0, limits=limits).error == "out of memory"
    assert run_readonly(db, "SELECT count(*) FROM orders", limits=limits).ok  # a fresh worker


def test_a_parameter_token_hides_no_statement():
    """SQLite reads `$a(')` as one parameter token, so the quote starts no string there."""
    sql = "SELECT $a(');ATTACH/**/'c.db'/**/AS/**/c;SELECT/**/')"
    assert len(split_statements(sql)) == 3
    assert split_statements("SELECT :a, @b, $c::d(1) FROM t WHERE x = ';'") == [
        "SELECT :a, @b, $c::d(1) FROM t WHERE x = ';'"]


def test_a_python_warning_from_sqlite3_is_an_error_result(db, monkeypatch):
    """Python 3.10 raises sqlite3.Warning (not an sqlite3.Error) for a second statement."""
    class Refusing:
        def __getattr__(self, name):
            return lambda *args, **kwargs: None

        def execute(self, sql):
            raise sqlite3.Warning("You can only execute one statement at a time.")

    monkeypatch.setattr(sandbox_worker, "open_readonly", lambda path, limits: Refusing())
    request = {"db_path": str(db), "sql": "SELECT 1", "timeout_s": 5.0, "max_rows": 10}
    rows, error, _ = sandbox_worker.run_query(request, {})
    assert rows is None and error == "sqlite: You can only execute one statement at a time."


def test_a_wal_mode_database_is_read_without_leaving_files(db):
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.close()
    before = sorted(p.name for p in db.parent.iterdir())
    assert run_readonly(db, "SELECT count(*) FROM customers").rows == [(120,)]
    from stages.sql.schema import read_schema

    assert read_schema(db, db.stem).table("customers") is not None  # the build's introspection too
    assert sorted(p.name for p in db.parent.iterdir()) == before == [db.name]


@pytest.mark.parametrize("sql", ["SELECT fts3_tokenizer('simple')",
                                 "SELECT sqlite_compileoption_get(0)",
                                 "SELECT load_extension('x')"])
def test_functions_outside_the_allowlist_are_refused(db, sql):
    assert run_readonly(db, sql).error.startswith("refused: function")


def test_common_functions_are_allowed(db):
    sql = ("SELECT count(*), sum(quantity), round(avg(quantity), 2), max(order_date), "
           "substr(min(order_date), 1, 4), iif(count(*) > 0, 'y', 'n'), "
           "CAST(strftime('%Y', max(order_date)) AS INTEGER), instr('abc', 'b'), "
           "group_concat(DISTINCT quantity), abs(-1), coalesce(NULL, 1), julianday('2020-01-01') "
           "FROM orders")
    assert run_readonly(db, sql).ok, run_readonly(db, sql)


def _idle_pids() -> set[int]:
    return {worker.process.pid for worker in sandbox._POOL._idle.get(sandbox.DEFAULT_LIMITS, [])}


def test_one_worker_serves_query_after_query_and_a_dead_one_is_replaced(db):
    sandbox.close_workers()
    run_readonly(db, "SELECT 1")
    pids = _idle_pids()
    assert len(pids) == 1 and run_readonly(db, "SELECT 2").rows == [(2,)] and _idle_pids() == pids
    ended = sandbox._POOL._idle[sandbox.DEFAULT_LIMITS][0].process
    ended.kill()
    ended.wait()
    assert run_readonly(db, "SELECT 3").rows == [(3,)] and _idle_pids() != pids
