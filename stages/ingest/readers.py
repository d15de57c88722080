"""Read labelled pairs from local files, keeping file and line for every row.

Readers never clean or judge rows: they yield `RawRow`s (text may hold lone surrogates where the
bytes were not valid UTF-8) and raise `UserError` only for problems of the whole file (missing,
empty, wrong columns), naming the file and what to do.
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from schemas.errors import UserError

SUFFIXES = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


@dataclass
class RawRow:
    file: str
    line: int  # 1-based line of the row in the file (header = line 1); row number for Parquet/Hub/JSON arrays
    source: object
    target: object
    db_id: object = ""  # SQL tasks: the database the pair is asked against


def file_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_local(path: Path, source_column: str, target_column: str) -> Iterator[RawRow]:
    kind = local_kind(path, source_column, target_column)
    if kind == "parquet":
        yield from _read_parquet(path, source_column, target_column)
    elif kind == "jsonl":
        yield from _read_jsonl(path, source_column, target_column)
    else:
        yield from _read_delimited(path, "\t" if kind == "tsv" else ",", source_column, target_column)


def local_kind(path: Path, source_column: str, target_column: str) -> str:
    """The reader a local file needs (tsv, csv, jsonl, parquet); UserError when it has none."""
    if not path.exists():
        raise UserError(f"{path}: file not found; check the path given to --train/--test/--test-ood")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: unknown file type {path.suffix!r}; use .tsv, .csv, .jsonl or .parquet")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty; it needs a header and rows with "
                        f"{source_column!r} and {target_column!r}")
    return kind


def missing_columns(path: Path, found: list[str], wanted: tuple[str, str]) -> UserError:
    return UserError(f"{path}: missing column(s) {[c for c in wanted if c not in found]}; found {found}. "
                     f"Rename them or map yours with source_column/target_column in the task YAML")


def _read_delimited(path: Path, delimiter: str, source_column: str, target_column: str) -> Iterator[RawRow]:
    """Rows of a TSV/CSV file, read line by line (never the whole file at once); bytes that are
    not UTF-8 become lone surrogates, which ingest rejects as undecodable."""
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        yield from _delimited_rows(path, _without_bom(handle), delimiter, source_column, target_column)


def _without_bom(lines: Iterator[str]) -> Iterator[str]:
    """The lines, with a byte-order mark dropped from the first."""
    for number, line in enumerate(lines):
        yield line[1:] if number == 0 and line.startswith("\ufeff") else line


def _delimited_rows(path: Path, lines: Iterator[str], delimiter: str, source_column: str,
                    target_column: str) -> Iterator[RawRow]:
    reader = csv.reader(lines, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE)
    header = next(reader, None)
    if not header:
        raise UserError(f"{path}: no header line; the first line must name the columns")
    header = [h.strip() for h in header]
    if source_column not in header or target_column not in header:
        raise missing_columns(path, header, (source_column, target_column))
    s_idx, t_idx = header.index(source_column), header.index(target_column)
    for record in reader:
        line = reader.line_num
        if not record or record == [""]:
            continue
        source = record[s_idx] if s_idx < len(record) else None
        target = record[t_idx] if t_idx < len(record) else None
        yield RawRow(path.name, line, source, target)


def _read_jsonl(path: Path, source_column: str, target_column: str) -> Iterator[RawRow]:
    for number, record in read_records(path):
        if isinstance(record, Invalid):
            yield RawRow(path.name, number, record, None)
            continue
        if number == 1 and source_column not in record and target_column not in record:
            raise missing_columns(path, sorted(record), (source_column, target_column))
        yield RawRow(path.name, number, record.get(source_column), record.get(target_column))


def read_records(path: Path) -> Iterator[tuple[int, dict | Invalid]]:
    """(line number, record) of a JSON Lines file, read line by line, or (item number, record) of
    a file holding one JSON array (BIRD ships `train.json`/`dev.json` that way); a line or item
    that is not a JSON object comes back as `Invalid`. A JSON array is parsed whole: such files
    are small by nature (BIRD's train.json is about 9k questions), and the standard library has
    no streaming JSON parser."""
    if path.suffix.lower() == ".json" and _starts_with(path, b"["):
        try:
            items = json.loads(path.read_bytes().decode("utf-8", errors="surrogateescape"))
        except ValueError as exc:
            raise UserError(f"{path}: not valid JSON ({exc}); fix the file or give JSON Lines") from None
        for number, record in enumerate(items, start=1):
            yield number, record if isinstance(record, dict) else Invalid("not a JSON object")
        return
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            text = raw.decode("utf-8", errors="surrogateescape").strip()
            if not text:
                continue
            try:
                record = json.loads(text)
            except ValueError:
                yield line_no, Invalid("not valid JSON")
                continue
            yield line_no, record if isinstance(record, dict) else Invalid("not a JSON object")


def _starts_with(path: Path, prefix: bytes) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(prefix)


def _read_parquet(path: Path, source_column: str, target_column: str) -> Iterator[RawRow]:
    """Rows of a local Parquet file (the example index's appends; a build reads Parquet as Arrow
    batches, `batches.parquet_batches`), through the same guarded reads."""
    from stages.ingest.datafiles import local_parquet_batches

    line = 1
    for batch in local_parquet_batches(path, source_column, target_column, 1 << 16):
        for source, target in zip(batch.column(source_column).to_pylist(), batch.column(target_column).to_pylist()):
            yield RawRow(path.name, line, source, target)
            line += 1


class Invalid(str):
    """Marks a row the reader could not parse; ingest rejects it with this text as the reason."""
