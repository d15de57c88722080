"""Untrusted SQL on a real SQLite database: BIRD's execution-accuracy semantics, the time limit,
the row cap, and that no predicted statement changes the database or writes any file."""
from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest

try:
    import conftest_sql as fixtures
except ImportError:  # tests/ imported as a package
    from tests import conftest_sql as fixtures

from schemas.errors import UserError
from stages.sql import sandbox, sandbox_worker
from stages.sql.sandbox import QueryResult, database_path, results_match, run_readonly
from stages.sql.statements import leading_keyword, split_statements

ENDLESS = ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
           "SELECT count(*) FROM r")


@pytest.fixture()
def db(tmp_path) -> Path:
    return fixtures.make_database(tmp_path / "dbs")


def matches(db: Path, predicted: str, gold: str) -> bool:
    return results_match(run_readonly(db, predicted), run_readonly(db, gold))


def test_database_path_follows_birds_layout_and_names_what_is_missing(db, tmp_path):
    assert database_path(tmp_path / "dbs", "shop") == db
    with pytest.raises(UserError, match=r"'nowhere' not found in --db-dir .*dbs"):
        database_path(tmp_path / "dbs", "nowhere")
    for bad in ("../shop", "shop/../shop", "", ".hidden", "a\\b", "/etc"):
        with pytest.raises(UserError, match="not a plain database name"):
            database_path(tmp_path / "dbs", bad)


def test_row_order_and_duplicates_are_ignored_as_in_bird(db):
    assert matches(db, "SELECT id FROM customers ORDER BY id DESC", "SELECT id FROM customers")
    assert matches(db, "SELECT city FROM customers", "SELECT DISTINCT city FROM customers")
    assert not matches(db, "SELECT id FROM customers WHERE id > 1", "SELECT id FROM customers")
    assert not matches(db, "SELECT city, id FROM customers", "SELECT id, city FROM customers")


def test_nulls_integers_floats_and_empty_results(db):
    assert matches(db, "SELECT email FROM customers WHERE id IN (7, 14)", "SELECT NULL")
    assert not matches(db, "SELECT email FROM customers WHERE id IN (1, 7)", "SELECT NULL")
    assert matches(db, "SELECT 1", "SELECT 1.0")  # Python equality, as BIRD's own script
    assert matches(db, "SELECT id FROM customers WHERE id < 0", "SELECT 1 WHERE 0")
    assert run_readonly(db, "SELECT email FROM customers WHERE id = 7").rows == [(None,)]


def test_an_error_on_either_side_is_never_a_match(db):
    broken = run_readonly(db, "SELECT nope FROM customers")
    assert broken.rows is None and broken.error.startswith("sqlite: no such column")
    assert not results_match(broken, run_readonly(db, "SELECT 1"))
    assert not results_match(broken, broken)
    assert not results_match(run_readonly(db, "SELECT 1"), broken)
    assert run_readonly(db, "").error == "not one statement"
    assert run_readonly(db, "-- nothing\n;").error == "not one statement"


def test_a_runaway_query_is_aborted_at_the_limit(db):
    """Run in a thread so that a query that is never aborted fails the test instead of hanging."""
    results: list[QueryResult] = []
    worker = threading.Thread(target=lambda: results.append(run_readonly(db, ENDLESS, 0.5)),
                              daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout=0.5 + 0.5)
    assert results == [QueryResult(None, "timeout")], "still running past the limit + 0.5 s"
    assert time.monotonic() - started < 0.5 + 0.5
    assert not results_match(results[0], run_readonly(db, "SELECT 1"))


def test_nothing_is_left_running_after_a_timeout(db):
    """A query still running would hold a read lock; a writer's exclusive lock proves none."""
    run_readonly(db, ENDLESS, timeout_s=0.2)
    writer = sqlite3.connect(db, timeout=0)
    try:
        writer.execute("BEGIN EXCLUSIVE")
        writer.rollback()
    finally:
        writer.close()


def test_a_query_within_the_limit_completes(db):
    slow = ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 200000) "
            "SELECT count(*) FROM r")
    assert run_readonly(db, slow, timeout_s=10).rows == [(200000,)]


def test_rows_beyond_the_cap_are_not_fetched_and_never_match(db):
    result = run_readonly(db, "SELECT * FROM orders", max_rows=10)
    assert result.truncated and result.error == "too many rows" and len(result.rows) == 10
    assert not results_match(result, result)
    assert run_readonly(db, "SELECT * FROM orders", max_rows=300).ok


def test_statements_split_like_sqlite():
    assert split_statements("SELECT 1; -- done\n") == ["SELECT 1"]
    assert split_statements("SELECT 'a;b', \"c;d\", [e;f], `g;h` /* ; */") == [
        "SELECT 'a;b', \"c;d\", [e;f], `g;h` /* ; */"]
    assert split_statements("SELECT 'it''s;'; DROP TABLE t") == ["SELECT 'it''s;'", "DROP TABLE t"]
    assert split_statements(" ; ;") == []
    assert leading_keyword("/* x */ -- y\n  with a AS (SELECT 1) SELECT * FROM a") == "WITH"
    assert leading_keyword("(SELECT 1)") == ""


def _files(*folders: Path) -> set[Path]:
    return {path for folder in folders for path in folder.rglob("*")}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def harmful(tmp_path: Path) -> dict[str, str]:
    """Predictions that would change the database or write a file, with the refusal expected."""
    return {
        "DROP TABLE customers": "refused: drop",
        "UPDATE customers SET city = 'x'": "refused: update",
        f"ATTACH DATABASE '{tmp_path / 'x.db'}' AS x": "refused: attach",
        "ATTACH DATABASE 'relative.db' AS r": "refused: attach",
        f"VACUUM INTO '{tmp_path / 'copy.db'}'": "refused: vacuum",
        "VACUUM INTO 'relative-copy.db'": "refused: vacuum",
        "SELECT 1; DROP TABLE customers": "not one statement",
        "PRAGMA writable_schema=1": "refused: pragma",
        "WITH a AS (SELECT 1) DELETE FROM orders": "refused: delete",
        "WITH a AS (SELECT 1) INSERT INTO orders SELECT * FROM orders": "refused: insert",
        "SELECT * FROM pragma_table_info('customers')": "refused: ",
    }


def _assert_untouched(db: Path, tmp_path: Path, monkeypatch, expected: dict[str, str]) -> None:
    sandbox.close_workers()
    monkeypatch.chdir(tmp_path)  # relative file names would land here (in a worker started now)
    before_files, before_digest = _files(tmp_path, db.parent), _digest(db)
    for sql, error in expected.items():
        result = run_readonly(db, sql)
        assert result.rows is None and result.error.startswith(error), (sql, result)
        assert _digest(db) == before_digest, sql
        assert _files(tmp_path, db.parent) == before_files, sql
    assert run_readonly(db, "SELECT count(*) FROM customers").rows == [(120,)]


def test_harmful_predictions_leave_the_database_identical_and_write_no_file(db, tmp_path,
                                                                            monkeypatch):
    _assert_untouched(db, tmp_path, monkeypatch, harmful(tmp_path))


def test_the_authorizer_refuses_them_without_the_keyword_check(db, tmp_path, monkeypatch):
    """Each layer holds alone: with every leading keyword let through, the authorizer still
    refuses (VACUUM INTO attaches its target, so it is refused as an attach; DROP TABLE first
    deletes its row of sqlite_master)."""
    monkeypatch.setattr(sandbox, "QUERY_KEYWORDS", ("SELECT", "WITH", "VALUES", "DROP", "UPDATE",
                                                    "ATTACH", "VACUUM", "PRAGMA"))
    renamed = {"refused: vacuum": "refused: attach", "refused: drop": "refused: delete"}
    expected = {sql: renamed.get(error, error) for sql, error in harmful(tmp_path).items()}
    _assert_untouched(db, tmp_path, monkeypatch, expected)


@pytest.mark.skipif(not sandbox.CAN_SET_LIMITS, reason="sqlite3 sets limits from Python 3.11")
def test_the_attach_limit_holds_without_the_authorizer(db, tmp_path, monkeypatch):
    """The worker's query function, run in this process with an authorizer that allows all."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sandbox_worker, "authorizer", lambda refused: lambda *args: sqlite3.SQLITE_OK)
    before_files, before_digest = _files(tmp_path, db.parent), _digest(db)
    limits = asdict(sandbox.DEFAULT_LIMITS)
    for sql in harmful(tmp_path):
        if sql.startswith(("ATTACH", "VACUUM")):
            request = {"db_path": str(db), "sql": sql, "timeout_s": 5.0, "max_rows": 10}
            assert sandbox_worker.run_query(request, limits)[1].startswith(
                "sqlite: too many attached databases")
    assert _digest(db) == before_digest and _files(tmp_path, db.parent) == before_files