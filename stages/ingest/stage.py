"""Stage 1: read, clean, de-duplicate and split the labelled pairs.

Every row that cannot be used goes to the rejects table with its file, line and reason; exact
duplicates and pool rows whose source also occurs in a test set are dropped and counted. The
test-overlap guard is by normalised content, because real corpora repeat sentences under
different ids. Sources are read as Arrow batches and only the sampled rows are ever held
(`stages/ingest/scan.py`), so a 10M-pair corpus ingests in well under 1 GiB.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from schemas.errors import UserError
from schemas.config import TaskConfig
from schemas.rows import PAIR_SCHEMA, TEST_PAIR_SCHEMA
from stages.base import Artifacts, Stage, StageStats
from stages.ingest.access import SourceAccess
from stages.ingest.batches import RowBatch, batches_from_rows
from stages.ingest.readers import RawRow
from stages.ingest.scan import ITEM_SCHEMA, RejectLog, SplitScan, first_occurrences, scan_split, take_rows
from stages.ingest.scratch import scratch_folder
from stages.ingest.sources import SPLITS, label, source_batches, split_source
from stages.text import normalize_text, retrieval_view


class Ingest(Stage):
    name = "ingest"
    # 4: pairs carry db_id; SQL tasks read BIRD's fields; 5: gold SQL on one line; 6: test_labels_in_pool;
    # 7: a lone surrogate (a JSON "\ud800" escape) is rejected as undecodable bytes, where version 6
    # finished on such inputs with other output; rejects are saved in batches of 65,536 rows
    version = "7"

    def __init__(self, task: TaskConfig, seed: int, overrides: dict[str, str | None],
                 access: SourceAccess | None = None, scratch_dir: Path | None = None):
        self.task, self.seed, self.overrides = task, seed, overrides
        self.access = access  # where remote sources come from; not part of the output's identity
        self.scratch_dir = scratch_dir  # where the usable rows are spilled while sampling (default: the temp dir)

    def params(self) -> dict[str, Any]:
        return {"task": self.task.model_dump(include={"name", "kind", "train", "test", "test_ood",
                                                      "generator", "pool_size", "test_size", "ood_size"}),
                "seed": self.seed, "overrides": sorted(k for k, v in self.overrides.items() if v)}

    def run(self, inputs: dict[str, Artifacts], stats: StageStats) -> Artifacts:
        self.read_counts: dict[str, dict] = {}
        cleaned, rejects, first_reject = self._sampled_splits(stats)
        pool = _without_test_sources(cleaned, retrieval_view(self.task.kind))
        stats.drop("pool row also in a test set", cleaned["train"].num_rows - pool.num_rows)
        stats.counters["test_overlap_removed"] = cleaned["train"].num_rows - pool.num_rows
        if not pool.num_rows:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(stats.dropped.items())) or "no rows"
            first = f"; first reject: line {first_reject[0]} ({first_reject[1]})" if first_reject else ""
            raise UserError(f"no usable training rows in {self._describe('train')} ({reasons}{first}); "
                            f"fix the file or give a training set that differs from the test sets")
        if "test" not in cleaned or not cleaned["test"].num_rows:
            raise UserError(f"no usable test rows in {self._describe('test')}; give a test file with --test PATH")
        stats.rows_out = pool.num_rows
        stats.counters.update({"pool": pool.num_rows, **{split: cleaned[split].num_rows if split in cleaned else 0
                                                         for split in ("test", "test_ood")}})
        stats.counters["test_labels_in_pool"] = labels_in_pool(pool, cleaned)
        if self.read_counts:
            stats.counters["inputs"] = self.read_counts
        return Artifacts(pool=_with_ids(pool, "train", PAIR_SCHEMA), tests=_test_table(cleaned), rejects=rejects)

    def _sampled_splits(self, stats: StageStats) -> tuple[dict[str, pa.Table], pa.Table, tuple | None]:
        """Each split's sampled rows, the rejects and the first of them. Pass 1 streams every split
        (clean, reject, key, spill to a scratch folder); then one rng draws the sample of each split
        in SPLITS order over its distinct rows, and only those are read back from the spill."""
        with scratch_folder(self.scratch_dir) as scratch:
            log = RejectLog(scratch / "rejects.arrow")
            try:
                scans = {split: scan_split(rows, self.task.kind == "sql", scratch / f"{split}.arrow", log, stats)
                         for split, rows in self._batches().items()}
            finally:
                log.close()
            rejects = log.table()
            for split, scan in scans.items():
                if split in self.read_counts:
                    self.read_counts[split]["rows_read"] = scan.rows_read
            limits = {"train": self.task.pool_size, "test": self.task.test_size, "test_ood": self.task.ood_size}
            rng = np.random.default_rng([self.seed, 11])
            cleaned = {split: _sample(scans[split], limits[split], rng, stats) for split in SPLITS if split in scans}
        return cleaned, rejects, log.first

    def _describe(self, split: str) -> str:
        spec = split_source(self.task, split, self.overrides.get(split))
        if self.task.kind == "synthetic" and not self.overrides.get("train"):
            return f"the generated {split} split"
        return self.overrides.get(split) or (label(spec) if spec else f"the {split} split")

    def _batches(self) -> dict[str, Iterator[RowBatch]]:
        """Each split's rows as batches, read lazily (the SQL files and the generators are small
        and go through their row readers)."""
        if self.task.kind == "synthetic" and not self.overrides.get("train"):
            return {split: batches_from_rows(rows) for split, rows in generated_rows(self.task, self.seed).items()}
        out = {}
        for split in SPLITS:
            spec = split_source(self.task, split, self.overrides.get(split))
            if spec is None or spec.kind == "none":
                continue
            if spec.kind != "file" and self.access is None:
                raise UserError(f"the {split} source {label(spec)} needs network access settings")
            if self.task.kind == "sql":
                from stages.ingest.sqlfiles import sql_rows

                out[split] = batches_from_rows(sql_rows(spec))
            else:
                out[split] = source_batches(spec, self.access)
            self.read_counts[split] = {"source": label(spec), "rows_read": 0}
        if "train" not in out:
            raise UserError(f"task {self.task.name!r} declares no training source; pass --train PATH")
        return out


def generated_rows(task: TaskConfig, seed: int) -> dict[str, list[RawRow]]:
    """The splits of a synthetic task, made by its generator (small: sized by the task)."""
    from stages.ingest.synth import generate

    generated = generate(task.generator, task.pool_size, task.test_size, task.ood_size, seed)
    return {split: [RawRow(f"<generated {split}>", i + 1, s, t) for i, (s, t) in enumerate(rows)]
            for split, rows in generated.items()}


def _sample(scan: SplitScan, limit: int, rng: np.random.Generator, stats: StageStats) -> pa.Table:
    """The split's distinct rows (first occurrence kept), then a seeded sample of `limit` of them
    that keeps file order, so the pool reads like its source; the draw depends on the number of
    distinct rows only, never on how they were batched."""
    positions = first_occurrences(scan.keys)
    stats.drop("exact duplicate", len(scan.keys) - len(positions))
    if len(positions) > limit:
        positions = positions[np.sort(rng.choice(len(positions), size=limit, replace=False))]
    return take_rows(scan.spill, positions)


def _without_test_sources(cleaned: dict[str, pa.Table], view) -> pa.Table:
    """The pool less every row whose normalised source (its retrieval view) occurs in a test set."""
    test_keys = {normalize_text(view(source)) for split in ("test", "test_ood") if split in cleaned
                 for source in cleaned[split].column("source").to_pylist()}
    pool = cleaned["train"]
    keep = [normalize_text(view(source)) not in test_keys for source in pool.column("source").to_pylist()]
    return pool.filter(pa.array(keep, pa.bool_())) if pool.num_rows else pool


def _with_ids(rows: pa.Table, split: str, schema: pa.Schema, extra: dict | None = None) -> pa.Table:
    ids = pa.array([f"{split}-{i:06d}" for i in range(rows.num_rows)], pa.string())
    columns = {"id": ids, **{name: rows.column(name) for name in ITEM_SCHEMA.names}, **(extra or {})}
    return pa.Table.from_pydict(columns, schema=schema).combine_chunks()


def _test_table(cleaned: dict[str, pa.Table]) -> pa.Table:
    parts = [_with_ids(cleaned[split], split, TEST_PAIR_SCHEMA,
                       {"test_set": pa.array(["id" if split == "test" else "ood"] * cleaned[split].num_rows,
                                             pa.string())})
             for split in ("test", "test_ood") if split in cleaned]
    return pa.concat_tables(parts).combine_chunks() if parts else TEST_PAIR_SCHEMA.empty_table()


def labels_in_pool(pool: pa.Table, cleaned: dict[str, pa.Table]) -> dict[str, dict[str, int]]:
    """Per test split: rows, and rows whose gold label is verbatim some pool target. A high share
    means the `similar` contexts can hand the answer over, so the High bin measures copying (the
    dataset card prints it)."""
    import pyarrow.compute as pc

    targets = pool.column("target").combine_chunks()
    return {split: {"rows": cleaned[split].num_rows,
                    "in_pool": int(pc.sum(pc.is_in(cleaned[split].column("target"), value_set=targets)).as_py() or 0)}
            for split in ("test", "test_ood") if split in cleaned and cleaned[split].num_rows}
