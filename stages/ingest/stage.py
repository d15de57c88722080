"""Stage 1: read, clean, de-duplicate and split the labelled pairs.

Every row that cannot be used goes to the rejects table with its file, line and reason; exact
duplicates and pool rows whose source also occurs in a test set are dropped and counted. The
test-overlap guard is by normalised content, because real corpora repeat sentences under
different ids.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pyarrow as pa

from schemas.errors import UserError
from schemas.config import TaskConfig
from schemas.rows import PAIR_SCHEMA, TEST_PAIR_SCHEMA
from stages.base import Artifacts, Stage, StageStats
from stages.ingest.access import SourceAccess
from stages.ingest.readers import Invalid, RawRow
from stages.ingest.sources import SPLITS, label, source_rows, split_source
from stages.sql.literals import one_line
from stages.text import clean_text, normalize_text, retrieval_view

REJECT_SCHEMA = pa.schema([("file", pa.string()), ("line", pa.int64()), ("reason", pa.string()),
                           ("detail", pa.string())])


class Ingest(Stage):
    name = "ingest"
    version = "6"  # 4: pairs carry db_id; SQL tasks read BIRD's fields; 5: gold SQL on one line; 6: test_labels_in_pool

    def __init__(self, task: TaskConfig, seed: int, overrides: dict[str, str | None],
                 access: SourceAccess | None = None):
        self.task, self.seed, self.overrides = task, seed, overrides
        self.access = access  # where remote sources come from; not part of the output's identity

    def params(self) -> dict[str, Any]:
        return {"task": self.task.model_dump(include={"name", "kind", "train", "test", "test_ood",
                                                      "generator", "pool_size", "test_size", "ood_size"}),
                "seed": self.seed, "overrides": sorted(k for k, v in self.overrides.items() if v)}

    def run(self, inputs: dict[str, Artifacts], stats: StageStats) -> Artifacts:
        self.read_counts: dict[str, dict] = {}
        raw = self._raw_rows()
        rejects: list[dict] = []
        sql = self.task.kind == "sql"
        cleaned = {split: _clean(rows, rejects, stats, sql) for split, rows in raw.items()}
        limits = {"train": self.task.pool_size, "test": self.task.test_size, "test_ood": self.task.ood_size}
        rng = np.random.default_rng([self.seed, 11])
        for split in SPLITS:
            if split in cleaned:
                cleaned[split] = _subsample(cleaned[split], limits[split], rng)
        view = retrieval_view(self.task.kind)
        test_keys = {normalize_text(view(row[0])) for split in ("test", "test_ood") for row in cleaned.get(split, [])}
        pool = [row for row in cleaned["train"] if normalize_text(view(row[0])) not in test_keys]
        stats.drop("pool row also in a test set", len(cleaned["train"]) - len(pool))
        stats.counters["test_overlap_removed"] = len(cleaned["train"]) - len(pool)
        if not pool:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(stats.dropped.items())) or "no rows"
            first = f"; first reject: line {rejects[0]['line']} ({rejects[0]['reason']})" if rejects else ""
            raise UserError(f"no usable training rows in {self._describe('train')} ({reasons}{first}); "
                            f"fix the file or give a training set that differs from the test sets")
        if not cleaned.get("test"):
            raise UserError(f"no usable test rows in {self._describe('test')}; give a test file with --test PATH")
        stats.rows_out = len(pool)
        stats.counters.update({"pool": len(pool), "test": len(cleaned.get("test", [])),
                               "test_ood": len(cleaned.get("test_ood", []))})
        stats.counters["test_labels_in_pool"] = labels_in_pool(pool, cleaned)
        if self.read_counts:
            stats.counters["inputs"] = self.read_counts
        tests = [(f"{split}-{i:06d}", s, t, db, "id" if split == "test" else "ood")
                 for split in ("test", "test_ood") for i, (s, t, db) in enumerate(cleaned.get(split, []))]
        return Artifacts(
            pool=pa.Table.from_pylist([{"id": f"train-{i:06d}", "source": s, "target": t, "db_id": db}
                                       for i, (s, t, db) in enumerate(pool)], schema=PAIR_SCHEMA),
            tests=pa.Table.from_pylist([dict(zip(("id", "source", "target", "db_id", "test_set"), row))
                                        for row in tests], schema=TEST_PAIR_SCHEMA),
            rejects=pa.Table.from_pylist(rejects, schema=REJECT_SCHEMA))

    def _describe(self, split: str) -> str:
        spec = split_source(self.task, split, self.overrides.get(split))
        if self.task.kind == "synthetic" and not self.overrides.get("train"):
            return f"the generated {split} split"
        return self.overrides.get(split) or (label(spec) if spec else f"the {split} split")

    def _raw_rows(self) -> dict[str, list[RawRow]]:
        if self.task.kind == "synthetic" and not self.overrides.get("train"):
            from stages.ingest.synth import generate

            generated = generate(self.task.generator, self.task.pool_size, self.task.test_size,
                                 self.task.ood_size, self.seed)
            return {split: [RawRow(f"<generated {split}>", i + 1, s, t) for i, (s, t) in enumerate(rows)]
                    for split, rows in generated.items()}
        out = {}
        for split in SPLITS:
            spec = split_source(self.task, split, self.overrides.get(split))
            if spec is None or spec.kind == "none":
                continue
            if spec.kind != "file" and self.access is None:
                raise UserError(f"the {split} source {label(spec)} needs network access settings")
            if self.task.kind == "sql":
                from stages.ingest.sqlfiles import sql_rows

                out[split] = list(sql_rows(spec))
            else:
                out[split] = list(source_rows(spec, self.access))
            self.read_counts[split] = {"source": label(spec), "rows_read": len(out[split])}
        if "train" not in out:
            raise UserError(f"task {self.task.name!r} declares no training source; pass --train PATH")
        return out


def labels_in_pool(pool: list[tuple[str, str, str]], cleaned: dict[str, list]) -> dict[str, dict[str, int]]:
    """Per test split: rows, and rows whose gold label is verbatim some pool target. A high share
    means the `similar` contexts can hand the answer over, so the High bin measures copying (the
    dataset card prints it)."""
    targets = {row[1] for row in pool}
    return {split: {"rows": len(cleaned[split]), "in_pool": sum(row[1] in targets for row in cleaned[split])}
            for split in ("test", "test_ood") if cleaned.get(split)}


def _clean(rows: Iterable[RawRow], rejects: list[dict], stats: StageStats,
           sql: bool = False) -> list[tuple[str, str, str]]:
    """(source, target, db_id) of the usable rows. An SQL source was cleaned part by part when it
    was rendered (its line break is meaningful) and an SQL query is put on one line with its
    literals untouched (`stages.sql.literals.one_line`)."""
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


def _problem(row: RawRow, sql: bool = False) -> tuple[str | None, str]:
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
    """A seeded sample that keeps file order, so the pool reads like its source."""
    if len(pairs) <= limit:
        return pairs
    keep = np.sort(rng.choice(len(pairs), size=limit, replace=False))
    return [pairs[i] for i in keep]
