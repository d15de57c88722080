"""The check every SQL paraphrase passes before a build uses it, whichever backend wrote it.

A paraphrased query must (1) parse as one SQLite statement, (2) equal the original query once
literals are masked (`stages.sql.literals`), and (3) run read-only on the pair's database within
the time limit and return a non-empty answer: a query that returns nothing teaches a question whose
answer is empty, which is how a swapped constant that no row has shows up. An aggregate over no
rows still returns one row (`count(*)` gives 0, `sum`/`max`/`avg` give NULL), so a single row whose
values are all NULL or 0 counts as empty too ("no rows"); a paraphrase whose true answer is 0 is
therefore refused as well, which costs a few valid paraphrases and keeps the empty ones out. Each
failure has one reason, counted in the manifest.
"""
from __future__ import annotations

from pathlib import Path

from stages.sql.literals import SqlParseError, masked, parse_sql

REASONS = ("does not parse", "original does not parse", "changes more than literals", "execution error", "timeout",
           "no rows")
TIMEOUT_S = 10.0  # per paraphrase query: a build validates thousands of them
MAX_ROWS = 1  # one row (unless all NULL or 0) proves the query is not empty; no more is fetched


class SqlValidator:
    """Judges (original, candidate) query pairs on a database; results are memoised, so a query the
    `sql-values` backend already ran while choosing values is not run again by the stage."""

    def __init__(self, databases: dict[str, Path], timeout_s: float = TIMEOUT_S):
        self.databases, self.timeout_s = databases, timeout_s
        self._masked: dict[str, object] = {}
        self._runs: dict[tuple[str, str], str | None] = {}

    def identity(self) -> dict:
        return {"checks": list(REASONS), "timeout_s": self.timeout_s}

    def reason(self, db_id: str, original: str, candidate: str) -> str | None:
        """None when `candidate` may stand in for `original`; else the first failed check."""
        try:
            shape = masked(parse_sql(candidate))
        except SqlParseError:
            return "does not parse"
        try:
            if shape != self._original_shape(original):
                return "changes more than literals"
        except SqlParseError:
            return "original does not parse"
        return self.execution_reason(db_id, candidate)

    def _original_shape(self, original: str):
        if original not in self._masked:
            self._masked[original] = masked(parse_sql(original))
        return self._masked[original]

    def execution_reason(self, db_id: str, sql: str) -> str | None:
        key = (db_id, sql)
        if key not in self._runs:
            self._runs[key] = self._run(db_id, sql)
        return self._runs[key]

    def _run(self, db_id: str, sql: str) -> str | None:
        from stages.sql.sandbox import run_readonly

        result = run_readonly(self.databases[db_id], sql, timeout_s=self.timeout_s, max_rows=MAX_ROWS)
        if result.truncated:  # more than MAX_ROWS rows, which is plenty
            return None
        if result.rows and not _only_nothing(result.rows):
            return None
        if result.error is not None:
            return "timeout" if result.error == "timeout" else "execution error"
        return "no rows"


def _only_nothing(rows: list[tuple]) -> bool:
    """One row of nothing but NULL and 0: what an aggregate returns over no rows."""
    return len(rows) == 1 and all(value is None or (type(value) in (int, float) and value == 0)
                                  for value in rows[0])
