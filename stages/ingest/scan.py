"""Ingest's first pass over one split, batch by batch in bounded memory.

Each batch is cleaned column-wise (`stages.text.clean_column`, the same text `clean_text` gives),
its rejects are appended to an Arrow file as they are found, its usable rows are appended to a
spill file in the scratch folder, and only a 128-bit key per usable row stays in memory. Exact
duplicates are then the rows whose key occurred before (`first_occurrences`), and the sampled
rows are read back from the spill batch by batch (`take_rows`): memory grows with 16 bytes per
row, not with the corpus' text.

Why 128 bits is safe: the key is two 64-bit hashes (polars' string hash, under two different
seeds and of two different prefixes, so the halves collide independently) of an unambiguous
encoding of the cleaned (source, target, db_id). By
the birthday bound, n distinct rows collide with probability about n^2 / 2^129: 1.5e-25 for
10M rows, 1.5e-21 for 1G rows. A collision would drop a row as a duplicate; nothing else
depends on the key's value, so outputs do not depend on the polars version either.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from stages.base import StageStats
from stages.ingest.batches import RowBatch
from stages.text import clean_column

REJECT_SCHEMA = pa.schema([("file", pa.string()), ("line", pa.int64()), ("reason", pa.string()),
                           ("detail", pa.string())])
ITEM_SCHEMA = pa.schema([("source", pa.string()), ("target", pa.string()), ("db_id", pa.string())])
# lz4 cuts the spill to about 37% of its size for about 1 s more per 1M rows (write and read back)
SPILL_OPTIONS = ipc.IpcWriteOptions(compression="lz4")
REJECT_BATCH_ROWS = 1 << 16
KEY_HALVES = ((0x1C7A5EEDD0C50A11, ""), (0x9E3779B97F4A7C15, "~"))  # (seed, prefix) of each 64-bit half


class RejectLog:
    """Rejected rows, appended to an Arrow file as they are found (never held as Python objects),
    in record batches of REJECT_BATCH_ROWS whatever the input's batching, so the file's bytes
    depend on the rejects only (up to REJECT_BATCH_ROWS rejects: one batch, as an in-memory
    table writes them)."""

    def __init__(self, path: Path):
        self.path, self.first, self._closed = path, None, False
        self._writer = ipc.new_file(str(path), REJECT_SCHEMA)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def add(self, rejects: pa.RecordBatch) -> None:
        if rejects.num_rows:
            if self.first is None:
                self.first = (rejects.column("line")[0].as_py(), rejects.column("reason")[0].as_py())
            self._pending.append(rejects)
            self._pending_rows += rejects.num_rows
            while self._pending_rows >= REJECT_BATCH_ROWS:
                self._write_pending(REJECT_BATCH_ROWS)

    def _write_pending(self, rows: int) -> None:
        """Write the first `rows` pending rejects as one record batch; keep the rest pending."""
        pending = pa.Table.from_batches(self._pending, REJECT_SCHEMA)
        head = pa.Table.from_arrays([pa.concat_arrays(c.chunks) for c in pending.slice(0, rows).columns],
                                    schema=REJECT_SCHEMA)
        self._writer.write_table(head)
        self._pending = pending.slice(rows).to_batches()
        self._pending_rows -= rows

    def close(self) -> None:
        if not self._closed:
            if self._pending:
                self._write_pending(self._pending_rows)
            self._writer.close()
            self._closed = True

    def table(self) -> pa.Table:
        """Every reject in the order found, memory-mapped from the file: nothing is copied into
        memory (saving the table writes the file's batches again, byte for byte). The mapping
        outlives the file's deletion with the scratch folder (POSIX)."""
        self.close()
        with pa.memory_map(str(self.path)) as source:
            return ipc.open_file(source).read_all()


@dataclass
class SplitScan:
    rows_read: int
    spill: Path  # the usable rows (ITEM_SCHEMA), in file order
    keys: np.ndarray  # (usable rows, 2) uint64: the 128-bit key of each


def scan_split(batches: Iterable[RowBatch], sql: bool, spill: Path, rejects: RejectLog,
               stats: StageStats) -> SplitScan:
    """Pass 1 over a split: count, reject, clean, key and spill every row."""
    import polars as pl

    keys, rows_read = [], 0
    with ipc.new_file(str(spill), ITEM_SCHEMA, options=SPILL_OPTIONS) as writer:
        for batch in batches:
            rows_read += len(batch)
            table = _judge(batch, sql)
            bad = table.filter(pl.col("reason").is_not_null())
            rejects.add(_reject_batch(batch.file, bad))
            for reason, n in bad.group_by("reason").len().iter_rows():
                stats.drop(reason, n)
            items = _items(table.filter(pl.col("reason").is_null()), sql)
            writer.write_table(items)
            keys.append(row_keys(items))
    stats.rows_in += rows_read
    return SplitScan(rows_read, spill, np.concatenate(keys) if keys else np.zeros((0, 2), np.uint64))


def judge_rows(rows: list, sql: bool = False) -> tuple[pa.Table, list[dict]]:
    """Rows judged and cleaned exactly as a build judges and cleans them, for callers outside a
    build (the example index's appends): (usable rows as ITEM_SCHEMA, in order;
    [{"item": position in `rows`, "reason", "detail"}] for the rejected ones)."""
    import polars as pl

    from stages.ingest.batches import batches_from_rows
    from stages.ingest.readers import RawRow

    numbered = [RawRow(row.file, item, row.source, row.target, row.db_id) for item, row in enumerate(rows)]
    items, rejected = [], []
    for batch in batches_from_rows(numbered):
        table = _judge(batch, sql)
        rejected += [{"item": line, "reason": reason, "detail": detail or ""} for line, reason, detail
                     in table.filter(pl.col("reason").is_not_null()).select("line", "reason", "detail").iter_rows()]
        items.append(_items(table.filter(pl.col("reason").is_null()), sql))
    return (pa.concat_tables(items) if items else ITEM_SCHEMA.empty_table()), rejected


def _judge(batch: RowBatch, sql: bool):
    """The batch as a polars frame with each row's reject reason (null for a usable row), in the
    order `Ingest` has always checked: unparsable, then per side missing, undecodable, empty."""
    import polars as pl

    frame = pl.DataFrame({
        "line": batch.lines, "unparsable": pl.Series(batch.unparsable), "source": pl.Series(batch.source),
        "target": pl.Series(batch.target), "db_id": pl.Series(batch.db_id),
        "clean_source": pl.Series(clean_column(batch.source)), "clean_target": pl.Series(clean_column(batch.target)),
        "bad_source": batch.bad_source, "bad_target": batch.bad_target})
    reason, detail = pl.when(pl.col("unparsable").is_not_null()), pl.when(pl.col("unparsable").is_not_null())
    reason, detail = reason.then(pl.lit("unparsable row")), detail.then(pl.col("unparsable"))
    for side in ("source", "target"):
        for test, why, note in ((pl.col(f"bad_{side}"), "undecodable bytes", f"{side} is not valid UTF-8"),
                                (pl.col(side).is_null(), f"missing {side}", ""),
                                (pl.col(f"clean_{side}").str.len_bytes() == 0, f"empty {side}", "")):
            reason, detail = reason.when(test).then(pl.lit(why)), detail.when(test).then(pl.lit(note))
    if sql:
        reason = reason.when(pl.col("db_id").fill_null("") == "").then(pl.lit("missing db_id"))
        detail = detail.when(pl.col("db_id").fill_null("") == "").then(pl.lit(""))
    return frame.with_columns(reason.otherwise(None).alias("reason"), detail.otherwise(None).alias("detail"))


def _reject_batch(file: str, bad) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array([file] * bad.height, pa.string()), bad["line"].to_arrow().cast(pa.int64()),
         bad["reason"].to_arrow().cast(pa.string()), bad["detail"].to_arrow().cast(pa.string())],
        schema=REJECT_SCHEMA)


def _items(good, sql: bool) -> pa.Table:
    """(source, target, db_id) of the usable rows: cleaned text; for SQL the rendered source as it
    is and the query on one line with its literals untouched (`stages.sql.literals.one_line`)."""
    if sql:
        from stages.sql.literals import one_line

        source, target = good["source"].to_arrow(), pa.array([one_line(q) for q in good["target"].to_list()],
                                                              pa.string())
        db_id = good["db_id"].to_arrow()
    else:
        source, target = good["clean_source"].to_arrow(), good["clean_target"].to_arrow()
        db_id = pa.array([""] * good.height, pa.string())
    return pa.Table.from_arrays([c.cast(pa.string()) for c in (source, target, db_id)], schema=ITEM_SCHEMA)


def row_keys(items: pa.Table) -> np.ndarray:
    """(rows, 2) uint64: each row's 128-bit key, from `len(source):len(target):source target db_id`
    (byte lengths make the encoding unambiguous whatever the text holds)."""
    import polars as pl

    frame = pl.from_arrow(items)
    encoded = frame.select(pl.concat_str([
        pl.col("source").str.len_bytes().cast(pl.String), pl.lit(":"),
        pl.col("target").str.len_bytes().cast(pl.String), pl.lit(":"),
        pl.col("source"), pl.col("target"), pl.col("db_id")]).alias("key"))["key"]
    return np.stack([(prefix + encoded).hash(seed).to_numpy() for seed, prefix in KEY_HALVES], axis=1)


def first_occurrences(keys: np.ndarray, part_rows: int = 1 << 20) -> np.ndarray:
    """Positions of the rows whose key did not occur before, ascending (exact dedupe, first kept).
    The keys are split by their low bits into parts of about `part_rows` (equal keys share a
    part, and a part keeps file order), so the hash table polars builds stays that small."""
    parts = max(1, -(-len(keys) // part_rows))
    if parts == 1:
        return np.flatnonzero(_first_distinct(keys))
    part_of = keys[:, 0] % np.uint64(parts)
    order = np.argsort(part_of, kind="stable")  # rows grouped by part, file order kept within each
    keep = np.zeros(len(keys), bool)
    for rows in np.split(order, np.cumsum(np.bincount(part_of.astype(np.int64), minlength=parts))[:-1]):
        keep[rows[_first_distinct(keys[rows])]] = True
    return np.flatnonzero(keep)


def _first_distinct(keys: np.ndarray) -> np.ndarray:
    """Whether each 128-bit key is the first of its value, as polars Int128 (16 bytes a row)."""
    return int128_keys(keys).is_first_distinct().to_numpy()


def int128_keys(keys: np.ndarray):
    """(rows, 2) uint64 keys as one polars Int128 each: high half read as signed, times 2^64, plus
    the low half, which maps every 128-bit pattern to a distinct Int128 (no decimal128(38) on the
    way: 41% of the keys exceed its 38 digits)."""
    import polars as pl

    high = pl.Series(np.ascontiguousarray(keys[:, 1]).view(np.int64)).cast(pl.Int128)
    low = pl.Series(np.ascontiguousarray(keys[:, 0])).cast(pl.Int128)
    return high * pl.Series([2**64], dtype=pl.Int128) + low


def take_rows(spill: Path, positions: np.ndarray) -> pa.Table:
    """The spilled rows at `positions` (ascending), read batch by batch and only the chosen rows
    kept. Plain reads, not a memory map: a sample touches nearly every page of the spill, and a
    map would count all of them as resident."""
    parts = []
    with pa.OSFile(str(spill)) as source:
        reader = ipc.open_file(source)
        start = 0
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            lo, hi = np.searchsorted(positions, [start, start + batch.num_rows])
            if hi > lo:
                parts.append(pa.Table.from_batches([batch.take(pa.array(positions[lo:hi] - start))]).combine_chunks())
            start += batch.num_rows
    return pa.concat_tables(parts).combine_chunks() if parts else ITEM_SCHEMA.empty_table()
