"""Text-to-SQL pairs from local files in BIRD's own format.

BIRD ships `train.json` and `dev.json` as one JSON array of objects with `question`, `evidence`
(an external-knowledge hint, often empty), `SQL` and `db_id`; JSON Lines and Parquet files with
the same fields are read too. The question field and the SQL field are the split's
`source_column`/`target_column` (the `bird` task declares `question` and `SQL`). The source of a
pair is the question with its evidence on a second line (`stages.text.render_question`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from schemas.config import SourceSpec
from schemas.errors import UserError
from stages.ingest.readers import Invalid, RawRow, read_records
from stages.text import render_question

EVIDENCE_FIELD = "evidence"
DB_FIELD = "db_id"


def sql_rows(spec: SourceSpec) -> Iterator[RawRow]:
    """The pairs of one local file; a row lacking a field keeps None there, for ingest to reject."""
    if not spec.path:
        raise UserError("SQL tasks read local files: pass --train PATH and --test PATH (BIRD's train.json/dev.json)")
    path = Path(spec.path)
    if not path.is_file():
        raise UserError(f"{path}: file not found; check the path given to --train/--test")
    fields = (spec.source_column, spec.target_column, DB_FIELD)
    for number, record in _records(path):
        if isinstance(record, Invalid):
            yield RawRow(path.name, number, record, None)
            continue
        if number == 1 and not any(name in record for name in fields):
            raise UserError(f"{path}: no field {spec.source_column!r}, {spec.target_column!r} or {DB_FIELD!r}; "
                            f"its fields: {sorted(record)}. Give BIRD's train.json/dev.json (or JSONL/Parquet "
                            f"with the same fields)")
        question, sql = record.get(spec.source_column), record.get(spec.target_column)
        source = render_question(str(question), _text(record.get(EVIDENCE_FIELD))) if question is not None else None
        db_id = record.get(DB_FIELD)
        yield RawRow(path.name, number, source, sql, "" if db_id is None else str(db_id).strip())


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _records(path: Path) -> Iterator[tuple[int, dict | Invalid]]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for broken files
            raise UserError(f"{path}: not a readable Parquet file ({exc.__class__.__name__}); re-export it") from None
        return enumerate(rows, start=1)
    if path.suffix.lower() not in (".json", ".jsonl"):
        raise UserError(f"{path}: unknown file type {path.suffix!r}; SQL pairs are read from .json, .jsonl or .parquet")
    return read_records(path)


def database_ids(spec: SourceSpec) -> set[str]:
    """Every db_id a file names (rows without one are left to ingest's rejects)."""
    return {row.db_id for row in sql_rows(spec) if row.db_id}
