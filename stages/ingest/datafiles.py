"""Columns of a downloaded data file (Parquet or JSON Lines), by dotted field path.

Only the top-level columns a source needs are read; nested fields (`translation.en`) are taken
from struct columns. Errors name the file and the field path in the task YAML to fix.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from schemas.errors import UserError

# read column chunks through a 1 MiB buffer instead of pre-buffering them: pre-buffered chunks
# stay allocated until the whole file is read (100 MiB for a 600k-row file)
STREAMING = {"pre_buffer": False, "buffer_size": 1 << 20}
LOCAL_REMEDY = "re-export it"
CACHED_REMEDY = "delete it from the source cache and rerun"


def read_columns(path: Path, fields: list[str], optional: tuple[str, ...] = ()) -> dict[str, list]:
    """Dotted fields (`translation.en`) of one Parquet or JSON Lines data file; an `optional`
    field the file lacks comes back as Nones."""
    if path.suffix == ".jsonl":
        return _read_jsonl_columns(path, [*fields, *optional])
    return _read_parquet_columns(path, fields, optional)


def _read_parquet_columns(path: Path, fields: list[str], optional: tuple[str, ...]) -> dict[str, list]:
    out: dict[str, list] = {field: [] for field in (*fields, *optional)}
    for rows, columns in _parquet_field_batches(path, fields, optional, 1 << 16):
        for field in out:
            out[field].extend(columns[field].to_pylist() if field in columns else [None] * rows)
    return out


def column_batches(path: Path, fields: list[str], size: int | None = None) -> Iterator[dict[str, object]]:
    """Dotted fields of a data file, `size` rows at a time: Arrow arrays from Parquet, lists from
    JSON Lines, both read batch by batch."""
    from stages.ingest.batches import BATCH_ROWS

    size = size or BATCH_ROWS
    if path.suffix == ".jsonl":
        yield from _jsonl_column_batches(path, fields, size)
        return
    for _, columns in _parquet_field_batches(path, fields, (), size):
        yield columns


def _parquet_field_batches(path: Path, fields: list[str], optional: tuple[str, ...],
                           size: int) -> Iterator[tuple[int, dict[str, "pa.ChunkedArray"]]]:
    """(rows, the fields the file holds) of a downloaded Parquet file, `size` rows at a time."""
    handle, present = _open_parquet(path, fields, optional)
    columns = sorted({f.split(".")[0] for f in present})
    for batch in parquet_record_batches(path, handle, columns, size, CACHED_REMEDY):
        yield batch.num_rows, _fields_of(path, pa.Table.from_batches([batch]), present)


def _open_parquet(path: Path, fields: list[str], optional: tuple[str, ...]):
    """The file's reader and the fields it holds; UserError for a broken file or a missing field."""
    handle = open_parquet(path, CACHED_REMEDY)
    names = handle.schema_arrow.names
    missing = [f for f in fields if f.split(".")[0] not in names]
    if missing:
        raise UserError(f"{path.name}: no column {missing[0].split('.')[0]!r}; its columns: {names}; "
                        "fix source_field/target_field in the task YAML")
    return handle, [f for f in (*fields, *optional) if f.split(".")[0] in names]


def open_parquet(path: Path, remedy: str):
    """A Parquet file opened for streaming reads; UserError naming the file and `remedy` (what to
    do about it) when it is not Parquet."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path, **STREAMING)
    except Exception as exc:  # pyarrow raises several types for broken files
        raise _unreadable(path, exc, remedy) from None


def parquet_record_batches(path: Path, handle, columns: list[str], size: int,
                           remedy: str) -> Iterator["pa.RecordBatch"]:
    """`columns` of the open Parquet file `path`, `size` rows at a time; a body that cannot be
    read (a corrupt page, a truncated file) is a UserError naming the file, not a traceback."""
    batches = handle.iter_batches(batch_size=size, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as exc:
            raise _unreadable(path, exc, remedy) from None
        yield batch


def local_parquet_batches(path: Path, source_column: str, target_column: str,
                          size: int) -> Iterator["pa.RecordBatch"]:
    """The two columns of a local Parquet file (--train/--test or an index append), `size` rows
    at a time; UserError for a broken file or a missing column."""
    from stages.ingest.readers import missing_columns

    handle = open_parquet(path, LOCAL_REMEDY)
    names = handle.schema_arrow.names
    if source_column not in names or target_column not in names:
        raise missing_columns(path, names, (source_column, target_column))
    yield from parquet_record_batches(path, handle, [source_column, target_column], size, LOCAL_REMEDY)


def _unreadable(path: Path, exc: Exception, remedy: str) -> UserError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return UserError(f"{path}: not a readable Parquet file ({exc.__class__.__name__}: {first_line}); {remedy}")


def _fields_of(path: Path, table: "pa.Table", fields: list[str]) -> dict[str, "pa.ChunkedArray"]:
    import pyarrow.compute as pc

    out = {}
    for field in fields:
        top, *rest = field.split(".")
        column = table.column(top)
        for part in rest:
            try:
                column = pc.struct_field(column, part)
            except Exception:
                raise UserError(f"{path.name}: column {top!r} has no field {part!r}; fix the field path "
                                f"{field!r} in the task YAML") from None
        out[field] = column
    return out


def _read_jsonl_columns(path: Path, fields: list[str]) -> dict[str, list]:
    out: dict[str, list] = {field: [] for field in fields}
    for chunk in _jsonl_column_batches(path, fields, 1 << 16):
        for field, values in chunk.items():
            out[field].extend(values)
    return out


def _jsonl_column_batches(path: Path, fields: list[str], size: int) -> Iterator[dict[str, list]]:
    """Dotted fields of a JSON Lines file, `size` records at a time."""
    out: dict[str, list] = {field: [] for field in fields}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise UserError(f"{path.name} line {line_no}: not valid JSON; delete the file from the source "
                                f"cache ({path.parent}) and rerun") from None
            if line_no == 1 and isinstance(record, dict) and fields[0].split(".")[0] not in record:
                raise UserError(f"{path.name}: no field {fields[0]!r}; its fields: {sorted(record)}; "
                                "fix source_field/target_field in the task YAML")
            for field in fields:
                out[field].append(_dotted(record, field))
            if len(out[fields[0]]) >= size:
                yield out
                out = {field: [] for field in fields}
    if out[fields[0]]:
        yield out


def _dotted(record: object, path: str) -> object:
    value = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
