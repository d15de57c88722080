"""Rows of a source as columnar batches, so ingest never holds a corpus as Python objects.

A `RowBatch` is a slice of one file: its line numbers, the raw source/target/db_id as Arrow
string arrays (null where the value is missing or could not be decoded) and what the reader
already knows is wrong with a row (unparsable, or a side that is not valid UTF-8). Parquet files
are read batch by batch straight into Arrow; every other reader (delimited text, JSON Lines,
OPUS, SQL files, the generators) yields `RawRow`s, which `batches_from_rows` groups.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa

from stages.ingest.datafiles import local_parquet_batches
from stages.ingest.readers import Invalid, RawRow

BATCH_ROWS = 1 << 16
STRING_TYPES = (pa.string(), pa.large_string(), pa.string_view())


@dataclass
class RowBatch:
    file: str
    lines: np.ndarray  # int64, as `RawRow.line`
    source: pa.Array  # large_string; null where missing or undecodable
    target: pa.Array
    db_id: pa.Array  # large_string ("" when the source has none)
    unparsable: pa.Array  # large_string: the reader's reason for a row it could not parse, else null
    bad_source: np.ndarray  # bool: the source was not valid UTF-8
    bad_target: np.ndarray

    def __len__(self) -> int:
        return len(self.lines)


def batches_from_rows(rows: Iterable[RawRow], size: int | None = None) -> Iterator[RowBatch]:
    """Group a reader's rows into batches of at most `size` rows (a new batch at each new file)."""
    size = size or BATCH_ROWS
    chunk: list[RawRow] = []
    for row in rows:
        if chunk and (len(chunk) >= size or row.file != chunk[0].file):
            yield _batch_of(chunk)
            chunk = []
        chunk.append(row)
    if chunk:
        yield _batch_of(chunk)


def _batch_of(rows: list[RawRow]) -> RowBatch:
    unparsable = [str(r.source) if isinstance(r.source, Invalid) else None for r in rows]
    source, bad_source = _text_array([None if isinstance(r.source, Invalid) else r.source for r in rows])
    target, bad_target = _text_array([r.target for r in rows])
    db_id, _ = _text_array([r.db_id for r in rows])
    return RowBatch(rows[0].file, np.fromiter((r.line for r in rows), np.int64, len(rows)), source, target,
                    db_id, pa.array(unparsable, pa.large_string()), bad_source, bad_target)


def _text_array(values: list[object]) -> tuple[pa.Array, np.ndarray]:
    """Values as `str(value)` (None stays null), and which were not valid UTF-8 (lone surrogates
    from decoding with `surrogateescape`, or from a JSON escape); those become null."""
    texts = [v if v is None or type(v) is str else str(v) for v in values]
    bad = np.zeros(len(texts), bool)
    try:
        return pa.array(texts, pa.large_string()), bad
    except (UnicodeEncodeError, pa.ArrowException):
        pass
    for i, text in enumerate(texts):
        if text is not None and not _encodes(text):
            bad[i], texts[i] = True, None
    return pa.array(texts, pa.large_string()), bad


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def arrow_batch(file: str, first_line: int, source, target) -> RowBatch:
    """A batch from two Arrow columns (Parquet, Hub shards); row numbers start at `first_line`.
    A column that does not hold strings is turned into text value by value, as `str(value)`."""
    n = len(source)
    source, bad_source = _as_text(source)
    target, bad_target = _as_text(target)
    return RowBatch(file, np.arange(first_line, first_line + n, dtype=np.int64), source, target,
                    pa.array([""] * n, pa.large_string()), pa.nulls(n, pa.large_string()), bad_source, bad_target)


def _as_text(column: pa.Array | pa.ChunkedArray | list) -> tuple[pa.Array, np.ndarray]:
    if isinstance(column, list):
        return _text_array(column)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.type in STRING_TYPES:
        return column.cast(pa.large_string()), np.zeros(len(column), bool)
    return _text_array(column.to_pylist())


def parquet_batches(path: Path, source_column: str, target_column: str,
                    size: int | None = None) -> Iterator[RowBatch]:
    """A local Parquet file, `size` rows at a time (row numbers from 1, as `RawRow.line`)."""
    line = 1
    for batch in local_parquet_batches(path, source_column, target_column, size or BATCH_ROWS):
        yield arrow_batch(path.name, line, batch.column(source_column), batch.column(target_column))
        line += batch.num_rows
