"""Execution accuracy of predicted SQL, as BIRD defines it, on each eval row's own database.

A row scores 1 when its predicted query and its gold query, both run read-only on the database
named by the row's `db_id`, return the same set of rows (stages.sql.sandbox.results_match); an
error, a timeout or a truncated result on the predicted side scores 0. A gold query that fails
cannot be matched either: such rows score 0 and are counted in the report, so a broken database
or a gold query that needs more than the time limit is visible rather than silently lowering the
score.

Every test item appears once per eval context, usually with the same gold query and often with
the same prediction, so gold results are cached per (db_id, SQL) and outcomes per (db_id,
prediction, gold) for the run: each distinct query runs once.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from schemas.errors import UserError
from stages.sql.sandbox import QueryResult, database_path, results_match, run_readonly
from trainer.progress import Progress, say

METRIC = "execution_accuracy"
SHOWN = 3  # examples named in a warning


@dataclass(frozen=True)
class Execution:
    """The outcome of one (prediction, gold) pair: match, and each side's error if any."""

    match: bool
    error: str | None
    gold_error: str | None


def error_kind(error: str) -> str:
    """"sqlite: no such column: x" -> "sqlite"; "refused: attach x.db" -> "refused"."""
    return error.split(":", 1)[0]


class ExecutionAccuracy:
    """Runs predictions and gold queries on the databases of one `--db-dir`."""

    def __init__(self, db_dir: str | Path, timeout_s: float = 30.0, max_rows: int = 100_000):
        self.db_dir, self.timeout_s, self.max_rows = Path(db_dir), timeout_s, max_rows
        self._paths: dict[str, Path] = {}
        self._gold: dict[tuple[str, str], QueryResult] = {}
        self._outcomes: dict[tuple[str, str, str], Execution] = {}

    def check_databases(self, rows: list[dict[str, Any]]) -> None:
        """Every row names a database, and every database exists, before any model is loaded."""
        if not self.db_dir.is_dir():
            raise UserError(f"--db-dir {self.db_dir}: no such folder; pass the folder that holds "
                            "<db_id>/<db_id>.sqlite for every database")
        unnamed = [row["id"] for row in rows if not row.get("db_id")]
        if unnamed:
            raise UserError(f"{len(unnamed)} eval rows have no db_id (first: {unnamed[0]}); "
                            "rebuild the version with a text-to-SQL task")
        for db_id in sorted({row["db_id"] for row in rows}):
            self._path(db_id)

    def _path(self, db_id: str) -> Path:
        if db_id not in self._paths:
            self._paths[db_id] = database_path(self.db_dir, db_id)
        return self._paths[db_id]

    @property
    def distinct_gold_queries(self) -> int:
        return len(self._gold)

    def gold(self, db_id: str, sql: str) -> QueryResult:
        key = (db_id, sql)
        if key not in self._gold:
            self._gold[key] = run_readonly(self._path(db_id), sql, self.timeout_s, self.max_rows)
        return self._gold[key]

    def execute(self, db_id: str, prediction: str, gold_sql: str) -> Execution:
        key = (db_id, prediction, gold_sql)
        if key not in self._outcomes:
            gold = self.gold(db_id, gold_sql)
            predicted = run_readonly(self._path(db_id), prediction, self.timeout_s, self.max_rows)
            self._outcomes[key] = Execution(results_match(predicted, gold), predicted.error,
                                            gold.error)
        return self._outcomes[key]

    def score(self, predictions: list[str], targets: list[str],
              db_ids: list[str]) -> list[Execution]:
        """One outcome per row, in order; progress on stderr (a query may take `timeout_s`)."""
        outcomes = []
        with Progress(len(predictions), "executing SQL", unit="query") as progress:
            for prediction, target, db_id in zip(predictions, targets, db_ids):
                outcomes.append(self.execute(db_id, prediction, target))
                progress.update()
        return outcomes


def execution_summary(outcomes: list[Execution], rows: list[dict[str, Any]],
                      scorer: ExecutionAccuracy) -> dict[str, Any]:
    """What the report says about execution: the limits, prediction errors by kind, and the
    rows whose gold query failed (warned about on stderr too)."""
    failed_gold = [(row, o.gold_error) for row, o in zip(rows, outcomes) if o.gold_error]
    if failed_gold:
        shown = "; ".join(f"{row['id']} ({row['db_id']}): {error}"
                          for row, error in failed_gold[:SHOWN])
        say(f"warning: the gold query of {len(failed_gold)} eval rows failed on its database, "
            f"so they score 0 (first: {shown}); check --db-dir or raise --sql-timeout")
    return {
        "timeout_s": scorer.timeout_s, "max_rows": scorer.max_rows,
        "predicted_errors": dict(sorted(Counter(error_kind(o.error) for o in outcomes
                                                if o.error).items())),
        "gold_failures": len(failed_gold),
        "gold_failure_examples": [{"id": row["id"], "db_id": row["db_id"], "error": error}
                                  for row, error in failed_gold[:SHOWN]],
        "distinct_gold_queries": scorer.distinct_gold_queries,
    }


def databases(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The db_id of each row ("" when it has none)."""
    return [row.get("db_id") or "" for row in rows]
