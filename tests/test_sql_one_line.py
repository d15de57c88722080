"""Gold SQL goes on one line (models answer on one line), with literals and their white space intact."""
import sqlite3

import pytest

from stages.sql.literals import one_line

CASES = [
    ("SELECT a,\n  b\nFROM t", "SELECT a, b FROM t"),
    ("SELECT a -- the a column\nFROM t", "SELECT a FROM t"),
    ("SELECT /* all */ a FROM t", "SELECT a FROM t"),
    ("SELECT a FROM t WHERE s = 'two  spaces\nand a line'", "SELECT a FROM t WHERE s = 'two  spaces\nand a line'"),
    ("SELECT \"my  col\" FROM [my  table]", "SELECT \"my  col\" FROM [my  table]"),
    ("SELECT 'it''s  --not a comment'  FROM t", "SELECT 'it''s  --not a comment' FROM t"),
    ("  SELECT 1  ", "SELECT 1"),
]


@pytest.mark.parametrize("sql, expected", CASES)
def test_one_line_folds_only_outside_quotes(sql, expected):
    assert one_line(sql) == expected


def test_the_folded_query_returns_the_same_rows():
    db = sqlite3.connect(":memory:")
    db.executescript("CREATE TABLE t (a INT, s TEXT); INSERT INTO t VALUES (1, 'x  y'), (2, 'z');")
    sql = "SELECT a -- keep\nFROM t\nWHERE s = 'x  y' /* spaced */\n  OR a = 2\nORDER BY a"
    assert "\n" not in one_line(sql)
    assert db.execute(one_line(sql)).fetchall() == db.execute(sql).fetchall() == [(1,), (2,)]


def test_bird_ingest_puts_gold_sql_on_one_line(tmp_path):
    import json

    from pipeline.tasks import load_task
    from stages.base import StageStats
    from stages.ingest.stage import Ingest

    rows = [{"question": f"How many rows have a = {i}?", "evidence": "", "db_id": "d",
             "SQL": f"SELECT count(*)\nFROM t -- table t\nWHERE a = {i}"} for i in range(6)]
    for name in ("train.json", "dev.json"):
        (tmp_path / name).write_text(json.dumps(rows[:4] if name == "train.json" else rows[4:]))
    stage = Ingest(load_task("bird"), 0, {"train": str(tmp_path / "train.json"), "test": str(tmp_path / "dev.json")})
    out = stage.run({}, StageStats())
    assert out["pool"].column("target").to_pylist()[0] == "SELECT count(*) FROM t WHERE a = 0"
