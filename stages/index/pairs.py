"""Appended pairs read and judged by the build's own ingest: files through ingest's reader (same
formats, header columns, BOM strip, undecodable bytes kept as surrogates, one bad row rejected
rather than the whole file), rows through ingest's row checks and cleaner (`judge_rows`). So an
append is cleaned and rejected exactly as a build would clean and reject it; a lone surrogate
(undecodable bytes, or a JSON escape such as "\\ud800") is rejected as "undecodable bytes".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas.errors import UserError
from stages.ingest.readers import SUFFIXES, RawRow, read_local
from stages.ingest.scan import judge_rows


def has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def has_surrogate(text: str) -> bool:
    """A query holding a lone surrogate cannot be encoded, hashed or tokenised as text."""
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def clean_pairs(pairs: list[tuple[Any, Any]]) -> tuple[list[tuple[str, str]], list[dict]]:
    """(cleaned pairs, [{"item": position in `pairs`, "reason", "detail"}] for the rejected ones)."""
    items, rejected = judge_rows([RawRow("", 0, source, target) for source, target in pairs])
    return list(zip(items.column("source").to_pylist(), items.column("target").to_pylist())), rejected


def read_pair_file(path: Path) -> list[RawRow]:
    """Every row of a pairs file (columns `source` and `target`, named in its header or keys), by
    ingest's reader; rows it cannot parse come back marked for `pair_problem` to reject."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found; give the file of pairs to add")
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"{path}: unknown file type {path.suffix!r}; give a .tsv, .csv, .jsonl or .parquet "
                        "file with source and target columns")
    return list(read_local(path, "source", "target"))
