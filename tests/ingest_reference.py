"""The row-by-row ingest that the streaming ingest replaced, kept as the test oracle: for the same
inputs and seed the streaming stage must give the same tables, byte for byte, and the same
counts (tests/test_ingest_streaming.py)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from schemas.rows import PAIR_SCHEMA, TEST_PAIR_SCHEMA
from stages.base import Artifacts, StageStats
from stages.ingest.readers import Invalid, RawRow
from stages.ingest.scan import REJECT_SCHEMA
from stages.ingest.sources import SPLITS, source_rows, split_source
from stages.sql.literals import one_line
from stages.text import clean_text, normalize_text, retrieval_view


def reference_run(stage, stats: StageStats) -> Artifacts:
    raw = _raw_rows(stage)
    rejects: list[dict] = []
    sql = stage.task.kind == "sql"
    cleaned = {split: _clean(rows, rejects, stats, sql) for split, rows in raw.items()}
    limits = {"train": stage.task.pool_size, "test": stage.task.test_size, "test_ood": stage.task.ood_size}
    rng = np.random.default_rng([stage.seed, 11])
    for split in SPLITS:
        if split in cleaned:
            cleaned[split] = _subsample(cleaned[split], limits[split], rng)
    view = retrieval_view(stage.task.kind)
    test_keys = {normalize_text(view(row[0])) for split in ("test", "test_ood") for row in cleaned.get(split, [])}
    pool = [row for row in cleaned["train"] if normalize_text(view(row[0])) not in test_keys]
    stats.drop("pool row also in a test set", len(cleaned["train"]) - len(pool))
    stats.counters["test_overlap_removed"] = len(cleaned["train"]) - len(pool)
    stats.rows_out = len(pool)
    stats.counters.update({"pool": len(pool), "test": len(cleaned.get("test", [])),
                           "test_ood": len(cleaned.get("test_ood", []))})
    targets = {row[1] for row in pool}
    stats.counters["test_labels_in_pool"] = {
        split: {"rows": len(cleaned[split]), "in_pool": sum(row[1] in targets for row in cleaned[split])}
        for split in ("test", "test_ood") if cleaned.get(split)}
    if stage.read_counts:
        stats.counters["inputs"] = {split: {"source": stage.read_counts[split]["source"], "rows_read": len(rows)}
                                    for split, rows in raw.items()}
    tests = [(f"{split}-{i:06d}", s, t, db, "id" if split == "test" else "ood")
             for split in ("test", "test_ood") for i, (s, t, db) in enumerate(cleaned.get(split, []))]
    return Artifacts(
        pool=pa.Table.from_pylist([{"id": f"train-{i:06d}", "source": s, "target": t, "db_id": db}
                                   for i, (s, t, db) in enumerate(pool)], schema=PAIR_SCHEMA),
        tests=pa.Table.from_pylist([dict(zip(("id", "source", "target", "db_id", "test_set"), row))
                                    for row in tests], schema=TEST_PAIR_SCHEMA),
        rejects=pa.Table.from_pylist(rejects, schema=REJECT_SCHEMA))


def _raw_rows(stage) -> dict[str, list[RawRow]]:
    if stage.task.kind == "synthetic" and not stage.overrides.get("train"):
        from stages.ingest.stage import generated_rows

        return generated_rows(stage.task, stage.seed)
    out = {}
    for split in SPLITS:
        spec = split_source(stage.task, split, stage.overrides.get(split))
        if spec is None or spec.kind == "none":
            continue
        if stage.task.kind == "sql":
            from stages.ingest.sqlfiles import sql_rows

            out[split] = list(sql_rows(spec))
        else:
            out[split] = list(source_rows(spec, stage.access))
    return out


def _clean(rows, rejects: list[dict], stats: StageStats, sql: bool) -> list[tuple[str, str, str]]:
    seen: set[tuple[str, str, str]] = set()
    kept: list[tuple[str, str, str]] = []
    for row in rows:
        stats.rows_in += 1
        reason, detail = _problem(row, sql)
        if reason:
            rejects.append({"file": row.file, "line": row.line, "reason": reason, "detail": detail})
            stats.drop(reason)
            continue
        if sql:
            item = (str(row.source), one_line(str(row.target)), str(row.db_id))
        else:
            item = (clean_text(str(row.source)), clean_text(str(row.target)), "")
        if item in seen:
            stats.drop("exact duplicate")
            continue
        seen.add(item)
        kept.append(item)
    return kept


def _problem(row: RawRow, sql: bool) -> tuple[str | None, str]:
    if isinstance(row.source, Invalid):
        return "unparsable row", str(row.source)
    for side, value in (("source", row.source), ("target", row.target)):
        if value is None:
            return f"missing {side}", ""
        text = str(value)
        if any("\udc80" <= ch <= "\udcff" for ch in text):
            return "undecodable bytes", f"{side} is not valid UTF-8"
        if not clean_text(text):
            return f"empty {side}", ""
    if sql and not row.db_id:
        return "missing db_id", ""
    return None, ""


def _subsample(pairs: list[tuple], limit: int, rng: np.random.Generator) -> list[tuple]:
    if len(pairs) <= limit:
        return pairs
    keep = np.sort(rng.choice(len(pairs), size=limit, replace=False))
    return [pairs[i] for i in keep]
