"""The example index on disk: a folder written whole or not at all, plus its append log.

    manifest.json      IndexMeta (written last: a folder without it is not an index)
    texts.arrow        id, source, target of the base rows
    embeddings.npy     float32 (rows x dim), row i embeds texts row i
    bm25_terms.arrow   term strings by id; bm25_indptr/docs/tfs.npy the term-major postings;
    doc_len.npy        BM25 length of each base row
    appends.log        appends since creation (stages.index.log), folded in on load
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
from pydantic import BaseModel, ConfigDict

from schemas.config import TaskConfig
from schemas.errors import UserError
from stages.base import fsync_path, save_npy, write_json_atomically
from stages.index.live_bm25 import LiveBM25

FORMAT = 1
MANIFEST, LOG, LOCK = "manifest.json", "appends.log", "writer.lock"
_ARRAYS = ("bm25_indptr", "bm25_docs", "bm25_tfs", "doc_len")


class IndexMeta(BaseModel):
    """What the index serves with: the build's task (prompt template, tokens, kind), seed and
    embedder identity, and where its base rows came from."""

    model_config = ConfigDict(extra="forbid")
    format: int = FORMAT
    task: TaskConfig
    seed: int = 0
    embedder: dict[str, Any]
    exact_embeddings: bool = False
    built_from: dict[str, Any] = {}
    base_rows: int = 0
    dim: int = 0


@dataclass
class BaseRows:
    """The base part of an index as read from disk (appends come from the log)."""

    ids: list[str]
    sources: list[str]
    targets: list[str]
    embeddings: np.ndarray
    bm25: LiveBM25


def write_index(folder: Path, meta: IndexMeta, rows: BaseRows) -> Path:
    """Fill a temp sibling, manifest last, and rename it to `folder` (which must not exist). Every file,
    the folder and then its parent are fsync'd, so the index is on disk before its first append is."""
    folder = Path(folder)
    if folder.exists():
        raise UserError(f"{folder} already exists; give a new folder for the index (or delete that one)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        table = pa.table({"id": rows.ids, "source": rows.sources, "target": rows.targets})
        _write_arrow(tmp / "texts.arrow", table)
        _write_arrow(tmp / "bm25_terms.arrow", pa.table({"term": pa.array(rows.bm25.terms(), pa.string())}))
        save_npy(tmp / "embeddings.npy", np.ascontiguousarray(rows.embeddings, dtype=np.float32))
        indptr, docs, tfs = rows.bm25.base
        for name, array in zip(_ARRAYS, (indptr, docs, tfs, rows.bm25.doc_len.view())):
            save_npy(tmp / f"{name}.npy", array)
        write_json_atomically(tmp / MANIFEST, meta.model_dump(mode="json"))
        for path in (*tmp.iterdir(), tmp):
            fsync_path(path)
        os.replace(tmp, folder)
        fsync_path(folder.parent)  # the rename itself, before any append may land in the folder
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _write_arrow(path: Path, table: pa.Table) -> None:
    with ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)


def _read_arrow(path: Path) -> pa.Table:
    with ipc.open_file(str(path)) as reader:
        return reader.read_all()


def read_meta(folder: Path) -> IndexMeta:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise UserError(f"{folder}: not an example index (no {MANIFEST}); create one with `pipeline index create`")
    meta = IndexMeta.model_validate(json.loads(path.read_text(encoding="utf-8")))
    if meta.format != FORMAT:
        raise UserError(f"{folder}: index format {meta.format}, this version reads {FORMAT}; recreate the index")
    return meta


def read_base(folder: Path) -> BaseRows:
    folder = Path(folder)
    texts = _read_arrow(folder / "texts.arrow")
    terms = _read_arrow(folder / "bm25_terms.arrow").column("term").to_pylist()
    indptr, docs, tfs, doc_len = (np.load(folder / f"{name}.npy", allow_pickle=False) for name in _ARRAYS)
    return BaseRows(texts.column("id").to_pylist(), texts.column("source").to_pylist(),
                    texts.column("target").to_pylist(), np.load(folder / "embeddings.npy", allow_pickle=False),
                    LiveBM25(terms, indptr, docs, tfs, doc_len))
