"""Execution accuracy in trainer/evaluate.py: predicted and gold SQL run on each row's database,
results per similarity bin and per database, gold results cached, one-line errors for --db-dir."""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

try:
    import conftest_sql as fixtures
    import conftest_trainer as trainer_fixtures
except ImportError:  # tests/ imported as a package
    from tests import conftest_sql as fixtures
    from tests import conftest_trainer as trainer_fixtures

from trainer import evaluate, sql_metric
from trainer.sql_metric import Execution, ExecutionAccuracy, execution_summary

ENDLESS = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"


@pytest.fixture(scope="module")
def sql_version(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sql-eval")
    folder = fixtures.write_sql_version(root / "data", root / "dbs")
    return {"data": folder, "dbs": root / "dbs"}


def _eval_rows(folder: Path) -> list[dict]:
    from datasets import load_from_disk

    return load_from_disk(str(folder / "eval")).remove_columns(["examples"]).to_list()


def prediction(row: dict) -> str:
    """random: the gold query written differently (match); topk: a wrong answer; one_near: a
    runaway query on shop, a DROP TABLE on market; paraphrase: gold on shop, empty on market."""
    shop = row["db_id"] == "shop"
    return {"random": row["target"].replace("SELECT", "select") + " ;",
            "topk": "SELECT 0",
            "one_near": ENDLESS if shop else "DROP TABLE orders",
            "paraphrase": row["target"] if shop else "SELECT 1 WHERE 0"}[row["eval_context"]]


def write_predictions(path: Path, rows: list[dict], make=prediction) -> Path:
    path.write_text("".join(json.dumps({"id": r["id"], "prediction": make(r)}) + "\n" for r in rows))
    return path


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.sqlite")}


def test_execution_accuracy_by_bin_and_database(sql_version, tmp_path, capsys):
    rows = _eval_rows(sql_version["data"])
    predictions = write_predictions(tmp_path / "sql.jsonl", rows)
    before = _digests(sql_version["dbs"])
    output = tmp_path / "report.json"
    code = evaluate.cli(["--data", str(sql_version["data"]), "--predictions", str(predictions),
                         "--db-dir", str(sql_version["dbs"]), "--sql-timeout", "0.2",
                         "--output", str(output), "--resamples", "50"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(output.read_text())
    assert report["primary_metric"] == "execution_accuracy" and report["label"] == "sql"
    table = report["metrics"]["execution_accuracy"]["id"]
    assert {db: s["mean"] for db, s in table["by_database"].items()} == {"market": 0.25, "shop": 0.5}
    assert {name: s["mean"] for name, s in table["by_bin"].items()} == {
        "low": 1.0, "medium": 0.0, "high": 0.25}
    assert report["execution"]["predicted_errors"] == {"refused": 6, "timeout": 6}
    assert report["execution"]["gold_failures"] == 0
    assert report["execution"]["distinct_gold_queries"] == 12
    assert "by database: market 0.250 (n=24), shop 0.500 (n=24)" in out
    records = [json.loads(line) for line in
               output.with_name("report.predictions.jsonl").read_text().splitlines()]
    errors = {(r["db_id"], r["eval_context"]): r["execution_error"] for r in records}
    assert errors[("shop", "one_near")] == "timeout"
    assert errors[("market", "one_near")] == "refused: drop"
    assert errors[("shop", "random")] is None and records[0]["execution_accuracy"] in (0.0, 1.0)
    assert _digests(sql_version["dbs"]) == before


def test_gold_results_are_cached_per_database_and_query(sql_version, monkeypatch):
    calls = []

    def counting(db_path, sql, *args):
        calls.append((db_path.name, sql))
        return sql_metric.QueryResult([(1,)], None)

    monkeypatch.setattr(sql_metric, "run_readonly", counting)
    rows = _eval_rows(sql_version["data"])
    scorer = ExecutionAccuracy(sql_version["dbs"])
    scorer.score(["SELECT 1"] * len(rows), [r["target"] for r in rows], [r["db_id"] for r in rows])
    gold = [call for call in calls if call[1] != "SELECT 1"]
    assert len(gold) == len(set(gold)) == 12  # 48 rows, 12 items: each gold query ran once
    assert len(calls) == 12 + 12  # and each (prediction, gold) pair once


def test_a_failing_gold_query_scores_zero_and_is_reported(sql_version, capsys):
    scorer = ExecutionAccuracy(sql_version["dbs"])
    outcomes = scorer.score(["SELECT 1", "SELECT 1"], ["SELECT nope FROM customers", "SELECT 1"],
                            ["shop", "shop"])
    assert outcomes[0] == Execution(False, None, "sqlite: no such column: nope")
    assert outcomes[1] == Execution(True, None, None)
    rows = [{"id": "a", "db_id": "shop"}, {"id": "b", "db_id": "shop"}]
    summary = execution_summary(outcomes, rows, scorer)
    assert summary["gold_failures"] == 1 and summary["gold_failure_examples"][0]["id"] == "a"
    assert "the gold query of 1 eval rows failed" in capsys.readouterr().err


def _one_error(code: int, capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


def test_db_dir_is_required_by_execution_accuracy_and_only_by_it(sql_version, tmp_path, capsys):
    rows = _eval_rows(sql_version["data"])
    predictions = str(write_predictions(tmp_path / "p.jsonl", rows))
    data = str(sql_version["data"])
    err = _one_error(evaluate.cli(["--data", data, "--predictions", predictions]), capsys)
    assert "execution accuracy: pass --db-dir DIR" in err
    err = _one_error(evaluate.cli(["--data", data, "--predictions", predictions,
                                   "--db-dir", str(tmp_path / "none")]), capsys)
    assert "no such folder" in err
    partial = tmp_path / "partial"
    fixtures.make_database(partial, "shop")
    err = _one_error(evaluate.cli(["--data", data, "--predictions", predictions,
                                   "--db-dir", str(partial)]), capsys)
    assert f"database 'market' not found in --db-dir {partial}" in err
    align = trainer_fixtures.write_version(tmp_path / "align")
    capsys.readouterr()
    err = _one_error(evaluate.cli(["--data", str(align), "--predictions", predictions,
                                   "--db-dir", str(sql_version["dbs"])]), capsys)
    assert "--db-dir is for execution-accuracy tasks" in err


def test_bench_runs_at_tiny_shape(capsys):
    path = Path(__file__).resolve().parents[1] / "bench" / "bench_sql_exec.py"
    spec = importlib.util.spec_from_file_location("bench_sql_exec", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--items", "6", "--orders", "300", "--timeout", "0.05", "--slow-share", "0.3"])
    out = capsys.readouterr().out
    assert "scorer, 24 eval rows" in out and "queries/s" in out
    assert "after the limit" in out and "progress handler every" in out
