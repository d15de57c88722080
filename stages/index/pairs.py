"""Appended pairs read and judged by the build's own ingest: files through ingest's reader (same
formats, header columns, BOM strip, undecodable bytes kept as surrogates, one bad row rejected
rather than the whole file), rows through ingest's row checks, text cleaned as ingest cleans a
pool row. So an append is cleaned and rejected exactly as a build would clean and reject it.

One check more than ingest's: a lone surrogate from a JSON escape ("\\ud800") is not text either
(it cannot be encoded, hashed or stored), so it is rejected as not valid Unicode.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas.errors import UserError
from stages.ingest.readers import SUFFIXES, RawRow, read_local
from stages.ingest.stage import _problem as ingest_problem
from stages.text import clean_text


def has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def pair_problem(source: Any, target: Any) -> tuple[str | None, str]:
    """(reason, detail) ingest would reject this pair for, or (None, "") for a good pair."""
    reason, detail = ingest_problem(RawRow("", 0, source, target))
    if reason:
        return reason, detail
    for side, value in (("source", source), ("target", target)):
        if has_surrogate(str(value)):
            return "not valid Unicode", f"{side} holds a lone surrogate"
    return None, ""


def clean_pairs(pairs: list[tuple[Any, Any]]) -> tuple[list[tuple[str, str]], list[dict]]:
    """(cleaned pairs, [{"item": position in `pairs`, "reason", "detail"}] for the rejected ones)."""
    kept, rejected = [], []
    for item, (source, target) in enumerate(pairs):
        reason, detail = pair_problem(source, target)
        if reason:
            rejected.append({"item": item, "reason": reason, "detail": detail})
        else:
            kept.append((clean_text(str(source)), clean_text(str(target))))
    return kept, rejected


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
