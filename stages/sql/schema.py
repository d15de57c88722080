"""What a build knows about a SQLite database: its identity, its tables and sample cell values.

Only fixed, trusted introspection queries run here (`sqlite_master`, `PRAGMA table_info`, a
bounded `SELECT *`), on a connection opened read-only; model-written or paraphrased SQL never
does (that goes through `stages.sql.sandbox`).

Identity (`database_fingerprint`): the sha256 of the schema's DDL (every `sqlite_master` entry,
sorted), the file size, and a content hash: of the whole file up to FULL_HASH_BYTES, else of
SAMPLED_PAGES pages spread evenly over the file (the first, with SQLite's header and its change
counter, and the last included). Hashing every byte of BIRD's largest databases (gigabytes) on
every build would cost more than the build; the DDL catches any schema change, the size any
growth, the header's change counter every committed write in SQLite's default (rollback-journal)
mode, and the sampled pages most edits. An in-place edit of a large database in WAL mode that
touches no sampled page can keep the fingerprint: rebuild with a fresh --cache-dir after one.
The path is not part of it, so a copy of the databases elsewhere gives the same version.
"""
from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from stages.sql.sandbox_worker import readonly_uri

SAMPLE_ROWS = 10_000  # rows read per table to sample cell values (the first ones, in storage order)
VALUES_PER_COLUMN = 50  # distinct non-null values kept per column
MAX_VALUE_CHARS = 80  # longer values (free text, blobs) are not kept as samples
FULL_HASH_BYTES = 64 << 20  # databases up to this size are hashed whole
SAMPLED_PAGES = 256
PAGE = 4096


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    primary_key: bool
    values: tuple = ()  # distinct sample values (str, int or float), in storage order


@dataclass(frozen=True)
class ForeignKey:
    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()

    def column(self, name: str) -> Column | None:
        """Case-insensitive, as SQLite resolves column names."""
        key = name.casefold()
        return next((c for c in self.columns if c.name.casefold() == key), None)


@dataclass(frozen=True)
class DatabaseSchema:
    db_id: str
    tables: tuple[Table, ...]
    _by_name: dict = field(default_factory=dict, compare=False, repr=False)

    def table(self, name: str) -> Table | None:
        if not self._by_name:
            self._by_name.update({t.name.casefold(): t for t in self.tables})
        return self._by_name.get(name.casefold())


@contextlib.contextmanager
def connect_readonly(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection for the trusted introspection queries of this module."""
    connection = sqlite3.connect(readonly_uri(str(path)), uri=True)
    try:
        connection.execute("PRAGMA query_only = ON")
        yield connection
    finally:
        connection.close()


def quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def database_fingerprint(path: Path) -> dict:
    """The database's identity by content (see the module docstring); no path in it."""
    path = Path(path)
    with connect_readonly(path) as db:
        ddl = db.execute("SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name").fetchall()
    digest = hashlib.sha256("\n".join("\t".join(row) for row in ddl).encode("utf-8")).hexdigest()
    size = path.stat().st_size
    return {"schema_sha256": digest, "bytes": size, "content": "whole" if size <= FULL_HASH_BYTES else "sampled",
            "content_sha256": _content_hash(path, size)}


def _content_hash(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            return digest.hexdigest()
        pages = size // PAGE
        for index in sorted({round(i * (pages - 1) / (SAMPLED_PAGES - 1)) for i in range(SAMPLED_PAGES)}):
            handle.seek(index * PAGE)
            digest.update(handle.read(PAGE))
    return digest.hexdigest()


def read_schema(path: Path, db_id: str) -> DatabaseSchema:
    """Tables (sorted by name), their columns in declaration order, foreign keys, sample values."""
    with connect_readonly(Path(path)) as db:
        names = [row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return DatabaseSchema(db_id, _resolve_foreign_keys([_read_table(db, name) for name in names]))


def _read_table(db: sqlite3.Connection, name: str) -> Table:
    info = db.execute(f"PRAGMA table_info({quote_name(name)})").fetchall()
    keys = db.execute(f"PRAGMA foreign_key_list({quote_name(name)})").fetchall()
    samples = _sample_values(db, name, len(info))
    columns = tuple(Column(row[1], (row[2] or "").upper(), bool(row[5]), samples[i]) for i, row in enumerate(info))
    foreign = tuple(ForeignKey(row[3], row[2], row[4] or "") for row in keys)
    return Table(name, columns, foreign)


def _resolve_foreign_keys(tables: list[Table]) -> tuple[Table, ...]:
    """`REFERENCES other` without a column means other's primary key, known only once every
    table is read; a referenced table without one (or missing) leaves the column's own name."""
    keys = {t.name.casefold(): next((c.name for c in t.columns if c.primary_key), None) for t in tables}
    return tuple(replace(table, foreign_keys=tuple(
        key if key.ref_column else
        replace(key, ref_column=keys.get(key.ref_table.casefold()) or key.column)
        for key in table.foreign_keys)) for table in tables)


def _sample_values(db: sqlite3.Connection, table: str, width: int) -> list[tuple]:
    """Distinct short values per column among the table's first SAMPLE_ROWS rows."""
    found: list[dict] = [{} for _ in range(width)]
    try:
        rows = db.execute(f"SELECT * FROM {quote_name(table)} LIMIT {SAMPLE_ROWS}")
        for row in rows:
            for i, value in enumerate(row[:width]):
                if _usable(value) and len(found[i]) < VALUES_PER_COLUMN:
                    found[i].setdefault((type(value) is str, value), value)
    except sqlite3.DatabaseError:  # a virtual table whose module is missing, a corrupt page
        pass
    return [tuple(values.values()) for values in found]


def _usable(value: object) -> bool:
    if isinstance(value, str):
        return 0 < len(value.strip()) <= MAX_VALUE_CHARS and "\n" not in value
    return isinstance(value, (int, float)) and not isinstance(value, bool)
